package testutil

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// MonitoringCRDDir is a directory of the Prometheus Operator's
// (ServiceMonitor, PodMonitor, PrometheusRule) and KEDA's (ScaledObject,
// TriggerAuthentication) CRDs, from their Go modules
// (hack/monitoring-crds.sh), for envtest's CRDInstallOptions: install them
// to let the API server validate what the operator writes. Without them
// (no module proxy) the test is skipped, or fails in CI (MissingTool).
func MonitoringCRDDir(t testing.TB) string {
	t.Helper()
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	out, err := exec.Command(filepath.Join(root, "hack", "monitoring-crds.sh")).Output() //nolint:gosec // G204: the repository's own script.
	if err != nil {
		MissingTool(t, "the Prometheus Operator and KEDA CRDs (hack/monitoring-crds.sh)", err)
	}
	return strings.TrimSpace(string(out))
}
