package resource

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
)

// Grafana's dashboard sidecar (the kube-prometheus-stack and grafana
// charts) loads every ConfigMap carrying this label.
const (
	GrafanaDashboardLabel = "grafana_dashboard"
	dashboardName         = "dashboard"
)

// dashboardJSON is the platform's dashboard, with __NAMESPACE__,
// __PLATFORM__ and __UID__ for the platform it is rendered for: requests
// and latency, queue depths, worker replicas, shard, cache and load
// balancer health, conditions and the operator's errors.
//
//go:embed dashboards/platform.json
var dashboardJSON string

// DashboardConfigMapName is the ConfigMap holding the dashboard.
func DashboardConfigMapName(p *platformv1.ParserPlatform) string { return Name(p.Name, dashboardName) }

// DashboardKey is the file name the sidecar writes the dashboard to: unique
// per platform, as the sidecar puts every dashboard in one folder.
func DashboardKey(p *platformv1.ParserPlatform) string {
	return "parser-platform-" + p.Namespace + "-" + p.Name + ".json"
}

// RenderDashboard is the dashboard JSON for p; its uid is a hash of the
// platform's namespace and name (Grafana allows 40 characters).
func RenderDashboard(p *platformv1.ParserPlatform) string {
	sum := sha256.Sum256([]byte(p.Namespace + "/" + p.Name))
	return strings.NewReplacer(
		"__NAMESPACE__", p.Namespace, "__PLATFORM__", p.Name, "__UID__", "parser-platform-"+hex.EncodeToString(sum[:])[:16],
	).Replace(dashboardJSON)
}

// DashboardConfigMap is the dashboard for Grafana's sidecar; the platform
// has it while spec.monitoring.dashboard is on (default).
func DashboardConfigMap(p *platformv1.ParserPlatform) *corev1.ConfigMap {
	meta := objectMeta(p, DashboardConfigMapName(p), dashboardName, "monitoring")
	meta.Labels[GrafanaDashboardLabel] = "1"
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: meta,
		Data:       map[string]string{DashboardKey(p): RenderDashboard(p)},
	}
}
