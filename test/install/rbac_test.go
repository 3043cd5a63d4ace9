package install

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

var watched = []string{"team-a", "team-b"}

// controllerGenRules are the operator's permissions as controller-gen writes
// them from the +kubebuilder:rbac markers.
func controllerGenRules(t *testing.T) []rbacv1.PolicyRule {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs := decode(t, data)
	if len(objs) != 1 {
		t.Fatalf("config/rbac/role.yaml holds %d objects, want 1", len(objs))
	}
	role := typed[rbacv1.ClusterRole](t, objs[0])
	if len(role.Rules) == 0 {
		t.Fatal("config/rbac/role.yaml has no rules")
	}
	return role.Rules
}

// grant is one verb on one resource: rules compared this way are equal however
// they are grouped.
type grant struct{ Group, Resource, Verb string }

func grants(rules []rbacv1.PolicyRule) map[grant]bool {
	out := map[grant]bool{}
	for _, r := range rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					out[grant{g, res, v}] = true
				}
			}
		}
		for _, u := range r.NonResourceURLs {
			for _, v := range r.Verbs {
				out[grant{"(url)", u, v}] = true
			}
		}
	}
	return out
}

func TestChartClusterRoleIsTheControllerGenRole(t *testing.T) {
	role := get[rbacv1.ClusterRole](t, mustHelmTemplate(t), "ClusterRole", release+"-manager-role")
	if d := cmp.Diff(controllerGenRules(t), role.Rules); d != "" {
		t.Errorf("the chart's manager rules are not config/rbac/role.yaml's: run 'make manifests chart' (-controller-gen +chart):\n%s", d)
	}
}

// clusterScoped are the resources of config/rbac/role.yaml that exist once per
// cluster. A new marker on another cluster-scoped resource makes this test
// fail until it is added here and, if Kubernetes does not already list it, to
// parser-operator.clusterScopedResources in the chart's _helpers.tpl.
var clusterScoped = []string{"customresourcedefinitions", "storageclasses"}

func TestWatchNamespacesGrantsRolesPerNamespace(t *testing.T) {
	objs := mustHelmTemplate(t, "--set-json", `watchNamespaces=["team-a","team-b"]`)
	want := grants(controllerGenRules(t))

	for _, kind := range []string{"ClusterRole", "ClusterRoleBinding"} {
		for _, name := range []string{release + "-manager-role", release + "-manager-rolebinding"} {
			if objs.find(kind, name) != nil {
				t.Errorf("with watchNamespaces the chart still creates cluster-wide %s %s", kind, name)
			}
		}
	}
	cluster := grants(get[rbacv1.ClusterRole](t, objs, "ClusterRole", release+"-manager-cluster-role").Rules)
	if !cluster[grant{"apiextensions.k8s.io", "customresourcedefinitions", "watch"}] {
		t.Error("the cluster-scoped ClusterRole does not let the operator watch CustomResourceDefinitions")
	}
	for g := range cluster {
		if !slices.Contains(clusterScoped, g.Resource) {
			t.Errorf("the ClusterRole of a namespaced install grants %v: a namespaced resource belongs in the Roles", g)
		}
	}
	if get[rbacv1.ClusterRoleBinding](t, objs, "ClusterRoleBinding", release+"-manager-cluster-rolebinding").RoleRef.Name != release+"-manager-cluster-role" {
		t.Error("the cluster-scoped binding does not bind the cluster-scoped role")
	}

	for _, ns := range watched {
		t.Run(ns, func(t *testing.T) {
			role := findIn(objs, "Role", ns, release+"-manager-role")
			binding := findIn(objs, "RoleBinding", ns, release+"-manager-rolebinding")
			if role == nil || binding == nil {
				t.Fatalf("no Role and RoleBinding %s-manager-role(binding) in %s: %v", release, ns, objs.keys())
			}
			local := grants(typed[rbacv1.Role](t, role).Rules)
			for g := range local {
				if cluster[g] {
					t.Errorf("%v is granted both in %s and cluster-wide", g, ns)
				}
			}
			union := map[grant]bool{}
			for g := range local {
				union[g] = true
			}
			for g := range cluster {
				union[g] = true
			}
			if d := cmp.Diff(want, union); d != "" {
				t.Errorf("Role in %s + ClusterRole != config/rbac/role.yaml (-controller-gen +chart):\n%s", ns, d)
			}
			if b := typed[rbacv1.RoleBinding](t, binding); b.RoleRef.Kind != "Role" || b.RoleRef.Name != role.GetName() {
				t.Errorf("RoleBinding in %s binds %s %s", ns, b.RoleRef.Kind, b.RoleRef.Name)
			}
		})
	}

	args := get[appsv1.Deployment](t, objs, "Deployment", release+"-controller-manager").Spec.Template.Spec.Containers[0].Args
	if flag := "--watch-namespaces=" + strings.Join(watched, ","); !slices.Contains(args, flag) {
		t.Errorf("the operator's args %v lack %s", args, flag)
	}
}

func TestClusterScopeWatchesEverything(t *testing.T) {
	args := get[appsv1.Deployment](t, mustHelmTemplate(t), "Deployment", release+"-controller-manager").Spec.Template.Spec.Containers[0].Args
	for _, a := range args {
		if strings.HasPrefix(a, "--watch-namespaces") {
			t.Errorf("without watchNamespaces the operator gets %s", a)
		}
	}
}

// findIn is find within one namespace.
func findIn(o objects, kind, namespace, name string) *unstructured.Unstructured {
	for _, u := range o {
		if u.GetKind() == kind && u.GetNamespace() == namespace && u.GetName() == name {
			return u
		}
	}
	return nil
}
