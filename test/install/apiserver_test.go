package install

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// apiServer is a kube-apiserver and etcd (the envtest binaries) with an admin
// kubeconfig, driven with the real helm and kubectl. There is no
// kube-controller-manager, so nothing runs: this checks what the API server
// itself decides (every rendered object valid, strict field validation, the
// CRD served, Helm's ownership across uninstall and reinstall). Pods coming
// up are the simulated cluster's job (test/e2e).
type apiServer struct {
	kubeconfig string
	helmHome   string
}

func startAPIServer(t *testing.T) *apiServer {
	t.Helper()
	env := &envtest.Environment{BinaryAssetsDirectory: envtestAssets(t)}
	if _, err := env.Start(); err != nil {
		t.Fatalf("starting kube-apiserver and etcd: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	user, err := env.ControlPlane.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	config, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := &apiServer{kubeconfig: filepath.Join(dir, "kubeconfig"), helmHome: filepath.Join(dir, "helm")}
	if err := os.WriteFile(s.kubeconfig, config, 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// envtestAssets: KUBEBUILDER_ASSETS when set (make test sets it), else the
// project's script, which builds kube-apiserver and etcd once and caches them.
func envtestAssets(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir
	}
	out, err := run(t, filepath.Join(repoRoot(t), "hack", "envtest-assets.sh"))
	if err != nil {
		t.Fatalf("hack/envtest-assets.sh: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// exec runs helm or kubectl against this API server, with a private Helm home.
func (s *apiServer) exec(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+s.kubeconfig,
		"HELM_CACHE_HOME="+s.helmHome+"/cache", "HELM_CONFIG_HOME="+s.helmHome+"/config", "HELM_DATA_HOME="+s.helmHome+"/data")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (s *apiServer) must(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := s.exec(t, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return out
}

// eventually retries a command until it succeeds (the CRD takes a moment to
// be Established after helm creates it).
func (s *apiServer) eventually(t *testing.T, name string, args ...string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := s.exec(t, name, args...)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s still fails after 30s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func TestHelmLifecycleOnAnAPIServer(t *testing.T) {
	s := startAPIServer(t)
	h := helm(t)
	install := []string{"install", release, chartDir, "--namespace", namespace, "--create-namespace"}

	// Every object of the default install is accepted by the API server.
	s.must(t, h, install...)
	s.eventually(t, "kubectl", "get", "--raw", "/apis/platform.vkparser.io/v1alpha1")
	s.must(t, "kubectl", "create", "namespace", "parser")
	s.eventually(t, "kubectl", "apply", "-n", "parser", "-f", "config/samples/")

	// Namespace scope: Roles in the watched namespaces replace the ClusterRole.
	// (No Prometheus Operator CRDs here, so no ServiceMonitor.)
	for _, ns := range watched {
		s.must(t, "kubectl", "create", "namespace", ns)
	}
	s.must(t, h, append([]string{"upgrade", release, chartDir, "--namespace", namespace, "--set", "serviceMonitor.enabled=false"}, haValues...)...)
	for _, ns := range watched {
		s.must(t, "kubectl", "get", "-n", ns, "role/"+release+"-manager-role", "rolebinding/"+release+"-manager-rolebinding")
	}
	if out, err := s.exec(t, "kubectl", "get", "clusterrole", release+"-manager-role"); err == nil {
		t.Errorf("after the upgrade to namespace scope the cluster-wide manager role is still there:\n%s", out)
	}
	if got := s.must(t, "kubectl", "get", "deployment", "-n", namespace, release+"-controller-manager", "-o", "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].args}"); !strings.Contains(got, "2 ") || !strings.Contains(got, "--watch-namespaces=team-a,team-b") {
		t.Errorf("the upgraded Deployment has replicas and args %q", got)
	}

	// helm uninstall keeps the CRD, so the platform (and its data) stays.
	s.must(t, h, "uninstall", release, "--namespace", namespace)
	s.must(t, "kubectl", "get", "crd", "parserplatforms.platform.vkparser.io")
	s.must(t, "kubectl", "get", "parserplatform", "-n", "parser", "vk")
	if out, err := s.exec(t, "kubectl", "get", "deployment", "-n", namespace, release+"-controller-manager"); err == nil {
		t.Errorf("helm uninstall left the operator running:\n%s", out)
	}

	// Installing again adopts the kept CRD instead of failing on it.
	s.must(t, h, install...)
	s.must(t, "kubectl", "get", "parserplatform", "-n", "parser", "vk")
}

// TestRenderedObjectsPassStrictServerValidation sends every profile to the
// API server with strict field validation (dry run): a misspelt field
// anywhere in a template is refused, which rendering alone cannot see.
func TestRenderedObjectsPassStrictServerValidation(t *testing.T) {
	s := startAPIServer(t)
	s.must(t, "kubectl", "apply", "--server-side", "-f", "config/crd/bases")
	for _, ns := range append([]string{namespace}, watched...) {
		s.must(t, "kubectl", "create", "namespace", ns)
	}
	s.eventually(t, "kubectl", "get", "--raw", "/apis/platform.vkparser.io/v1alpha1")
	profiles := map[string][]string{"defaults": nil, "ha": haValues, "minimal": minimalValues, "tuned": tunedValues}
	for name, values := range profiles {
		t.Run(name, func(t *testing.T) {
			var items []any
			for _, u := range mustHelmTemplate(t, values...) {
				// The Prometheus Operator's CRD is not installed here; the
				// ServiceMonitor's content is checked in TestHANamespacedMonitoredValues.
				if u.GetKind() != "ServiceMonitor" {
					items = append(items, u.Object)
				}
			}
			list, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(t.TempDir(), name+".json")
			if err := os.WriteFile(file, list, 0o600); err != nil {
				t.Fatal(err)
			}
			s.must(t, "kubectl", "apply", "--dry-run=server", "--validate=strict", "--server-side", "--field-manager=chart-check", "-f", file)
		})
	}
}
