package install

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The value files of charts/parser-operator/ci (the chart-testing convention:
// `make chart-check` lints and renders each, and `ct install` would install
// each).
var (
	haValues      = []string{"-f", chartDir + "/ci/ha-namespaced-values.yaml"}
	minimalValues = []string{"-f", chartDir + "/ci/minimal-values.yaml"}
	tunedValues   = []string{"-f", chartDir + "/ci/tuned-values.yaml"}
)

func operatorDeployment(t *testing.T, objs objects, fullname string) *appsv1.Deployment {
	t.Helper()
	return get[appsv1.Deployment](t, objs, "Deployment", fullname+"-controller-manager")
}

func TestDefaultValues(t *testing.T) {
	objs := mustHelmTemplate(t)
	d := operatorDeployment(t, objs, release)
	if *d.Spec.Replicas != 1 {
		t.Errorf("replicas = %d, want 1", *d.Spec.Replicas)
	}
	if !slices.Contains(d.Spec.Template.Spec.Containers[0].Args, "--leader-elect") {
		t.Error("leader election is not on by default")
	}
	if got := d.Spec.Template.Spec.Containers[0].Image; got != "ghcr.io/vkparser/parser-operator:0.1.0" {
		t.Errorf("image = %q, want the chart's appVersion", got)
	}
	// One replica: a PDB would block node drains. No Prometheus Operator assumed.
	for _, kind := range []string{"PodDisruptionBudget", "ServiceMonitor"} {
		for _, u := range objs.ofKind(kind) {
			t.Errorf("the defaults render %s %s", kind, u.GetName())
		}
	}
	// Cluster scope: the only Role is the Lease's.
	for _, u := range append(objs.ofKind("Role"), objs.ofKind("RoleBinding")...) {
		if !strings.Contains(u.GetName(), "leader-election") {
			t.Errorf("the defaults render %s %s", u.GetKind(), u.GetName())
		}
	}
	crd := objs.find("CustomResourceDefinition", "parserplatforms.platform.vkparser.io")
	if crd == nil || crd.GetAnnotations()[annotationKeep] != "keep" {
		t.Errorf("the defaults must install the CRD with %s: keep", annotationKeep)
	}
}

func TestHANamespacedMonitoredValues(t *testing.T) {
	objs := mustHelmTemplate(t, haValues...)
	d := operatorDeployment(t, objs, release)
	if *d.Spec.Replicas != 2 || !slices.Contains(d.Spec.Template.Spec.Containers[0].Args, "--leader-elect") {
		t.Errorf("want 2 replicas electing a leader, got %d replicas, args %v", *d.Spec.Replicas, d.Spec.Template.Spec.Containers[0].Args)
	}
	pdb := get[policyv1.PodDisruptionBudget](t, objs, "PodDisruptionBudget", release+"-controller-manager")
	if pdb.Spec.MinAvailable == nil || *pdb.Spec.MinAvailable != intstr.FromInt32(1) {
		t.Errorf("PDB minAvailable = %v, want 1", pdb.Spec.MinAvailable)
	}
	sm := objs.find("ServiceMonitor", release+"-controller-manager-metrics-monitor")
	if sm == nil {
		t.Fatalf("no ServiceMonitor: %v", objs.keys())
	}
	if sm.GetAPIVersion() != "monitoring.coreos.com/v1" || sm.GetLabels()["release"] != "kube-prometheus-stack" {
		t.Errorf("ServiceMonitor %s with labels %v, want monitoring.coreos.com/v1 with release=kube-prometheus-stack", sm.GetAPIVersion(), sm.GetLabels())
	}
	endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	want := []any{map[string]any{
		"path": "/metrics", "port": "https", "scheme": "https", "interval": "30s", "scrapeTimeout": "10s",
		"honorLabels":     true, // the platforms' rules select the operator's namespace label
		"bearerTokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token",
		"tlsConfig":       map[string]any{"insecureSkipVerify": true},
	}}
	if d := cmp.Diff(want, endpoints); d != "" {
		t.Errorf("ServiceMonitor endpoints (-want +got):\n%s", d)
	}
}

func TestMinimalValues(t *testing.T) {
	objs := mustHelmTemplate(t, minimalValues...)
	var kinds []string
	for _, u := range objs {
		if !isHelmHook(u) {
			kinds = append(kinds, u.GetKind())
		}
	}
	if !slices.Equal(kinds, []string{"Deployment"}) {
		t.Errorf("the minimal values install %v, want the Deployment only", objs.keys())
	}
	d := operatorDeployment(t, objs, release)
	args := d.Spec.Template.Spec.Containers[0].Args
	if want := []string{"--health-probe-bind-address=:8081", "--metrics-bind-address=0"}; !slices.Equal(args, want) {
		t.Errorf("args = %v, want %v", args, want)
	}
	if len(d.Spec.Template.Spec.Containers[0].Ports) != 0 {
		t.Errorf("metrics off, but the container declares ports %v", d.Spec.Template.Spec.Containers[0].Ports)
	}
	if d.Spec.Template.Spec.ServiceAccountName != "parser-operator" {
		t.Errorf("serviceAccountName = %q, want the existing parser-operator", d.Spec.Template.Spec.ServiceAccountName)
	}
}

func TestTunedValues(t *testing.T) {
	objs := mustHelmTemplate(t, tunedValues...)
	d := operatorDeployment(t, objs, "vk-operator")
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]
	wantArgs := []string{
		"--leader-elect", "--health-probe-bind-address=:9440", "--metrics-bind-address=:8080", "--metrics-secure=false",
		"--max-concurrent-reconciles=8", "--kube-api-qps=75.5", "--kube-api-burst=150", "--kube-api-compression",
		"--zap-log-level=debug", "--zap-encoder=console", "--zap-stacktrace-level=panic",
	}
	if d := cmp.Diff(wantArgs, c.Args); d != "" {
		t.Errorf("args (-want +got):\n%s", d)
	}
	if c.Image != "registry.example.com:5000/platform/parser-operator:1.2.3" || c.ImagePullPolicy != corev1.PullAlways {
		t.Errorf("image %s (%s)", c.Image, c.ImagePullPolicy)
	}
	if c.LivenessProbe.HTTPGet.Port.IntValue() != 9440 || c.ReadinessProbe.HTTPGet.Port.IntValue() != 9440 {
		t.Error("the probes do not follow healthProbe.port")
	}
	checks := map[string]bool{
		"imagePullSecrets":      slices.Equal(pod.ImagePullSecrets, []corev1.LocalObjectReference{{Name: "regcred"}}),
		"nodeSelector":          pod.NodeSelector["kubernetes.io/os"] == "linux",
		"tolerations":           len(pod.Tolerations) == 1 && pod.Tolerations[0].Key == "dedicated",
		"affinity":              pod.Affinity != nil && pod.Affinity.PodAntiAffinity != nil,
		"podAnnotations":        d.Spec.Template.Annotations["example.com/scrape"] == "false",
		"podLabels":             d.Spec.Template.Labels["team"] == "platform" && d.Spec.Template.Labels["control-plane"] == "controller-manager",
		"serviceAccount.name":   pod.ServiceAccountName == "vk-operator-sa" && objs.find("ServiceAccount", "vk-operator-sa") != nil,
		"resources":             c.Resources.Limits.Cpu().String() == "1" && c.Resources.Requests.Memory().String() == "128Mi",
		"replicas":              *d.Spec.Replicas == 3,
		"metrics.secure=false":  objs.find("ClusterRole", "vk-operator-metrics-auth-role") == nil,
		"metrics.port":          len(c.Ports) == 1 && c.Ports[0].ContainerPort == 8080,
		"fullnameOverride":      objs.find("ClusterRole", "vk-operator-manager-role") != nil,
		"serviceAccount.annot.": objs.find("ServiceAccount", "vk-operator-sa").GetAnnotations()["iam.example.com/role"] == "parser-operator",
	}
	for value, ok := range checks {
		if !ok {
			t.Errorf("%s is not applied", value)
		}
	}
	svc := get[corev1.Service](t, objs, "Service", "vk-operator-controller-manager-metrics-service")
	if p := svc.Spec.Ports[0]; p.Name != "http" || p.Port != 8080 {
		t.Errorf("plain-HTTP metrics Service port %s:%d, want http:8080", p.Name, p.Port)
	}
	pdb := get[policyv1.PodDisruptionBudget](t, objs, "PodDisruptionBudget", "vk-operator-controller-manager")
	if *pdb.Spec.MinAvailable != intstr.FromString("50%") {
		t.Errorf("PDB minAvailable = %v, want 50%%", pdb.Spec.MinAvailable)
	}
}

func TestCRDValues(t *testing.T) {
	const crd = "parserplatforms.platform.vkparser.io"
	if u := mustHelmTemplate(t, "--set", "crds.keep=false").find("CustomResourceDefinition", crd); u == nil {
		t.Error("crds.keep=false dropped the CRD")
	} else if _, ok := u.GetAnnotations()[annotationKeep]; ok {
		t.Errorf("crds.keep=false still annotates the CRD with %s", annotationKeep)
	}
	if mustHelmTemplate(t, "--set", "crds.install=false").find("CustomResourceDefinition", crd) != nil {
		t.Error("crds.install=false still renders the CRD")
	}
}

// TestRefusedValues: values.schema.json refuses bad values before anything
// reaches the cluster, and the chart's own checks refuse bad combinations,
// each with a message that names the value.
func TestRefusedValues(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no replicas", []string{"--set", "replicas=0"}, "at '/replicas': minimum: got 0, want 1"},
		{"too many replicas", []string{"--set", "replicas=4"}, "at '/replicas': maximum: got 4, want 3"},
		{"replicas as text", []string{"--set-string", "replicas=two"}, "at '/replicas': got string, want integer"},
		{"typo", []string{"--set", "replica=2"}, "additional properties 'replica' not allowed"},
		{"nested typo", []string{"--set", "metrics.enable=false"}, "additional properties 'enable' not allowed"},
		{"pull policy", []string{"--set", "image.pullPolicy=Sometimes"}, "at '/image/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'"},
		{"image with tag", []string{"--set", "image.repository=ghcr.io/x/y:1.0"}, "at '/image/repository'"},
		{"bad tag", []string{"--set", "image.tag=v1 beta"}, "at '/image/tag'"},
		{"namespace name", []string{"--set-json", `watchNamespaces=["Team_A"]`}, "at '/watchNamespaces/0': 'Team_A' does not match pattern"},
		{"namespace twice", []string{"--set-json", `watchNamespaces=["a","a"]`}, "at '/watchNamespaces': items at 0 and 1 are equal"},
		{"port range", []string{"--set", "metrics.port=70000"}, "at '/metrics/port': maximum: got 70,000, want 65,535"},
		{"scrape interval", []string{"--set", "serviceMonitor.interval=30 seconds"}, "at '/serviceMonitor/interval'"},
		{"quantity", []string{"--set", "resources.limits.memory=lots"}, "at '/resources/limits/memory'"},
		{"log level", []string{"--set", "logging.level=verbose"}, "at '/logging/level': value must be one of"},
		{"not a flag", []string{"--set-json", `extraArgs=["leader-elect"]`}, "at '/extraArgs/0'"},
		{"pdb zero", []string{"--set", "podDisruptionBudget.minAvailable=0"}, "at '/podDisruptionBudget/minAvailable'"},
		{"long name", []string{"--set", "fullnameOverride=a-very-long-release-name-for-parsers"}, "at '/fullnameOverride': maxLength: got 36, want 28"},
		{"qps negative", []string{"--set", "kubeAPI.qps=-1"}, "at '/kubeAPI/qps': minimum: got -1, want 0"},
		{"crds.install text", []string{"--set-string", "crds.install=yes"}, "at '/crds/install': got string, want boolean"},
		{"toleration operator", []string{"--set-json", `tolerations=[{"key":"a","operator":"Is"}]`}, "at '/tolerations/0/operator'"},
		// Rules between two values (templates/_helpers.tpl).
		{"replicas without leader", []string{"--set", "replicas=2", "--set", "leaderElection.enabled=false"}, "replicas=2 needs leaderElection.enabled=true"},
		{"monitor without metrics", []string{"--set", "serviceMonitor.enabled=true", "--set", "metrics.enabled=false"}, "serviceMonitor.enabled=true needs metrics.enabled=true"},
		{"same ports", []string{"--set", "healthProbe.port=8443"}, "metrics.port and healthProbe.port are both 8443"},
		{"no service account", []string{"--set", "serviceAccount.create=false"}, "serviceAccount.create=false needs serviceAccount.name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := helmTemplate(t, tc.args...)
			if err == nil {
				t.Fatalf("helm template %v succeeded, want it refused with %q", tc.args, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("helm template %v was refused, but the message lacks %q:\n%v", tc.args, tc.want, err)
			}
		})
	}
}
