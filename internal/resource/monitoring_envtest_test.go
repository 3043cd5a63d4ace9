package resource

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/testutil"
)

// TestAPIServerAcceptsMonitoringAndKEDAObjects creates every PodMonitor,
// ServiceMonitor, PrometheusRule, ScaledObject, TriggerAuthentication and
// dashboard ConfigMap the builders make, on a real API server with the
// upstream CRDs (their own modules' files), with strict field validation:
// a field the schema does not know, or a value it refuses, fails here.
func TestAPIServerAcceptsMonitoringAndKEDAObjects(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kube-apiserver")
	}
	ctrllog.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{testutil.MonitoringCRDDir(t)},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: envtestAssetsDir(t),
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting envtest: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	c, err := client.New(cfg, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	keda, every, redis := kedaPlatform(), promtoolPlatform(), redisBrokerPlatform()
	every.Name = "vk-every"
	redis.Name = "vk-redis"
	redis.Spec.Queues.Queues[0].Autoscaling = &platformv1.QueueAutoscaling{TargetQueueLength: ptr32(5)}
	created := 0
	for _, p := range []*platformv1.ParserPlatform{keda, every, redis} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: p.Namespace}}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		objs := []client.Object{ServiceMonitor(p), PodMonitor(p), PrometheusRule(p), DashboardConfigMap(p)}
		for _, o := range KEDAObjects(p) {
			objs = append(objs, o)
		}
		for _, o := range objs {
			if err := c.Create(ctx, o, client.FieldValidation(metav1.FieldValidationStrict)); err != nil {
				t.Errorf("%s %s/%s refused: %v", o.GetObjectKind().GroupVersionKind().Kind, o.GetNamespace(), o.GetName(), err)
			} else {
				created++
			}
		}
	}
	if created < 14 {
		t.Errorf("%d objects created, want every builder's", created)
	}

	// The control: the same server refuses a field the schema does not
	// know, so the creations above were validated.
	bad := PodMonitor(keda)
	bad.SetName("unknown-field")
	eps, _, _ := unstructured.NestedSlice(bad.Object, "spec", "podMetricsEndpoints")
	eps[0].(map[string]any)["scrapeEvery"] = "30s"
	_ = unstructured.SetNestedSlice(bad.Object, eps, "spec", "podMetricsEndpoints")
	if err := c.Create(ctx, bad, client.FieldValidation(metav1.FieldValidationStrict)); err == nil {
		t.Error("the API server accepted a PodMonitor endpoint with an unknown field: the CRDs do not validate")
	}
}

func ptr32(v int32) *int32 { return &v }

// envtestAssetsDir: KUBEBUILDER_ASSETS, else hack/envtest-assets.sh (as
// the controller suite finds them).
func envtestAssetsDir(t *testing.T) string {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir
	}
	out, err := exec.Command(filepath.Join("..", "..", "hack", "envtest-assets.sh")).Output()
	if err != nil {
		testutil.MissingTool(t, "envtest binaries (hack/envtest-assets.sh)", err)
	}
	return strings.TrimSpace(string(out))
}
