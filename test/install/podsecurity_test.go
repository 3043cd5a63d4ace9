package install

import (
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

// restricted is the Pod Security level the operator and its helm test run
// under, at the newest policy version: the namespace may enforce it.
var restricted = psaapi.LevelVersion{Level: psaapi.LevelRestricted, Version: psaapi.LatestVersion()}

// podSecurityViolations runs a pod through the upstream evaluator, the code
// the admission plugin runs.
func podSecurityViolations(t *testing.T, meta *metav1.ObjectMeta, spec *corev1.PodSpec) []string {
	t.Helper()
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatalf("building the Pod Security evaluator: %v", err)
	}
	var out []string
	for _, r := range evaluator.EvaluatePod(restricted, meta, spec) {
		if !r.Allowed {
			out = append(out, fmt.Sprintf("%s (%s)", r.ForbiddenReason, r.ForbiddenDetail))
		}
	}
	return out
}

// renderedPods are the pods an install creates: the operator's template and
// the helm test Pod.
func renderedPods(t *testing.T, objs objects) map[string]*corev1.Pod {
	t.Helper()
	pods := map[string]*corev1.Pod{}
	for _, u := range objs.ofKind("Deployment") {
		d := typed[appsv1.Deployment](t, u)
		pods["Deployment/"+d.Name] = &corev1.Pod{ObjectMeta: d.Spec.Template.ObjectMeta, Spec: d.Spec.Template.Spec}
	}
	for _, u := range objs.ofKind("Pod") {
		pods["Pod/"+u.GetName()] = typed[corev1.Pod](t, u)
	}
	return pods
}

func TestPodsMeetPodSecurityRestricted(t *testing.T) {
	installs := map[string]objects{
		"kustomize": kustomize(t),
		"defaults":  mustHelmTemplate(t),
		"ha":        mustHelmTemplate(t, haValues...),
		"tuned":     mustHelmTemplate(t, tunedValues...),
	}
	for name, objs := range installs {
		pods := renderedPods(t, objs)
		want := 2 // the operator and the helm test
		if name == "kustomize" {
			want = 1
		}
		if len(pods) != want {
			t.Fatalf("%s: %d pods rendered, want %d", name, len(pods), want)
		}
		for pod, p := range pods {
			t.Run(name+"/"+pod, func(t *testing.T) {
				if v := podSecurityViolations(t, &p.ObjectMeta, &p.Spec); len(v) > 0 {
					t.Errorf("violates Pod Security %q:\n  %s", restricted.Level, strings.Join(v, "\n  "))
				}
				for _, c := range p.Spec.Containers {
					if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
						t.Errorf("container %s has a writable root file system", c.Name)
					}
				}
			})
		}
	}
}

// TestPodSecurityEvaluatorRefusesAnUnsafeOperator is the control: the chart
// rendered with an unsafe security context must be refused by the same
// evaluator, so the test above cannot pass vacuously.
func TestPodSecurityEvaluatorRefusesAnUnsafeOperator(t *testing.T) {
	unsafe := map[string][]string{
		"root allowed":         {"--set", "podSecurityContext.runAsNonRoot=false"},
		"privilege escalation": {"--set", "securityContext.allowPrivilegeEscalation=true"},
		"capabilities kept":    {"--set-json", `securityContext.capabilities={"drop":[]}`},
	}
	for name, args := range unsafe {
		t.Run(name, func(t *testing.T) {
			p := renderedPods(t, mustHelmTemplate(t, args...))["Deployment/"+release+"-controller-manager"]
			if p == nil {
				t.Fatal("no operator Deployment rendered")
			}
			if v := podSecurityViolations(t, &p.ObjectMeta, &p.Spec); len(v) == 0 {
				t.Errorf("the evaluator accepts the operator with %v", args)
			}
		})
	}
}
