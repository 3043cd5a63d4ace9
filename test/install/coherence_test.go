package install

import (
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
)

// checkCoherent proves that one rendering works as a whole.
func checkCoherent(t *testing.T, objs objects) {
	deployments := objs.ofKind("Deployment")
	if len(deployments) != 1 {
		t.Fatalf("%d Deployments, want the operator's only", len(deployments))
	}
	d := typed[appsv1.Deployment](t, deployments[0])
	pods := labels.Set(d.Spec.Template.Labels)
	if !selects(t, d.Spec.Selector, pods) {
		t.Errorf("the Deployment's selector %v does not select its pods %v", d.Spec.Selector.MatchLabels, pods)
	}
	checkServices(t, objs, d)
	checkOthersNotSelected(t, objs, d)
	for _, u := range objs.ofKind("PodDisruptionBudget") {
		pdb := typed[policyv1.PodDisruptionBudget](t, u)
		if !selects(t, pdb.Spec.Selector, pods) {
			t.Errorf("PDB %s does not select the operator pods", pdb.Name)
		}
	}
	checkBindings(t, objs, d)
}

func selects(t *testing.T, s *metav1.LabelSelector, set labels.Set) bool {
	t.Helper()
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		t.Fatalf("selector %v: %v", s, err)
	}
	return !sel.Empty() && sel.Matches(set)
}

// checkServices: the metrics Service reaches the container's metrics port,
// and a ServiceMonitor, when there is one, scrapes that Service's port.
func checkServices(t *testing.T, objs objects, d *appsv1.Deployment) {
	ports := map[string]bool{}
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, p := range c.Ports {
			ports[p.Name] = true
		}
	}
	servicePorts := map[string]bool{}
	for _, u := range objs.ofKind("Service") {
		s := typed[corev1.Service](t, u)
		if !selects(t, &metav1.LabelSelector{MatchLabels: s.Spec.Selector}, d.Spec.Template.Labels) {
			t.Errorf("Service %s selects %v, not the operator pods %v", s.Name, s.Spec.Selector, d.Spec.Template.Labels)
		}
		for _, p := range s.Spec.Ports {
			if !ports[p.TargetPort.String()] {
				t.Errorf("Service %s port %s targets %q, which no container port is called", s.Name, p.Name, p.TargetPort.String())
			}
			if len(s.Labels) > 0 {
				servicePorts[p.Name] = true
			}
		}
	}
	for _, u := range objs.ofKind("ServiceMonitor") {
		sel, _, _ := unstructured.NestedStringMap(u.Object, "spec", "selector", "matchLabels")
		matched := false
		for _, s := range objs.ofKind("Service") {
			matched = matched || selects(t, &metav1.LabelSelector{MatchLabels: sel}, s.GetLabels())
		}
		if !matched {
			t.Errorf("ServiceMonitor %s selects %v: no Service has those labels", u.GetName(), sel)
		}
		endpoints, _, _ := unstructured.NestedSlice(u.Object, "spec", "endpoints")
		for _, e := range endpoints {
			if port := e.(map[string]any)["port"]; !servicePorts[port.(string)] {
				t.Errorf("ServiceMonitor %s scrapes port %q, which the Service does not have", u.GetName(), port)
			}
		}
	}
}

// checkOthersNotSelected: the helm test Pod must not become an endpoint of the
// metrics Service or count in the operator's PDB.
func checkOthersNotSelected(t *testing.T, objs objects, d *appsv1.Deployment) {
	for _, u := range objs.ofKind("Pod") {
		if selects(t, d.Spec.Selector, u.GetLabels()) {
			t.Errorf("Pod %s carries the operator's selector labels %v", u.GetName(), u.GetLabels())
		}
	}
}

// checkBindings: every binding names a role of the install and the operator's
// ServiceAccount, which exists and is the one the Deployment runs as; with
// --leader-elect a bound Role grants the Lease in the operator's namespace.
func checkBindings(t *testing.T, objs objects, d *appsv1.Deployment) {
	sa := d.Spec.Template.Spec.ServiceAccountName
	if objs.find("ServiceAccount", sa) == nil {
		t.Errorf("the Deployment runs as ServiceAccount %q, which the install does not create", sa)
	}
	leaseRole := ""
	for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
		for _, u := range objs.ofKind(kind) {
			b := typed[rbacv1.RoleBinding](t, u) // the same shape as a ClusterRoleBinding
			// A RoleBinding's Role is in the binding's namespace; a ClusterRole has none.
			roleNamespace := ""
			if b.RoleRef.Kind == "Role" {
				roleNamespace = b.Namespace
			}
			role := findIn(objs, b.RoleRef.Kind, roleNamespace, b.RoleRef.Name)
			if role == nil {
				t.Errorf("%s %s/%s binds %s %s, which the install does not create there", kind, b.Namespace, b.Name, b.RoleRef.Kind, b.RoleRef.Name)
				continue
			}
			want := rbacv1.Subject{Kind: "ServiceAccount", Name: sa, Namespace: d.Namespace}
			if !slices.Equal(b.Subjects, []rbacv1.Subject{want}) {
				t.Errorf("%s %s binds %v, want only the operator's ServiceAccount %v", kind, b.Name, b.Subjects, want)
			}
			if b.RoleRef.Kind == "Role" && b.Namespace == d.Namespace && grantsLeases(t, typed[rbacv1.Role](t, role)) {
				leaseRole = b.RoleRef.Name
			}
		}
	}
	if slices.Contains(d.Spec.Template.Spec.Containers[0].Args, "--leader-elect") && leaseRole == "" {
		t.Errorf("the operator elects a leader, but no Role bound to it grants Leases in %s", d.Namespace)
	}
}

func grantsLeases(t *testing.T, r *rbacv1.Role) bool {
	t.Helper()
	for _, rule := range r.Rules {
		if slices.Contains(rule.APIGroups, "coordination.k8s.io") && slices.Contains(rule.Resources, "leases") &&
			slices.Contains(rule.Verbs, "update") && slices.Contains(rule.Verbs, "create") {
			return true
		}
	}
	return false
}
