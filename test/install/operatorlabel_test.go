package install

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/vkparser/parser-operator/internal/resource"
)

// TestPlatformPoliciesAdmitTheOperatorHoweverInstalled: the platforms'
// NetworkPolicies let the operator into the cache and the broker by a pod
// label from its own namespace (resource.OperatorPeer). Every way of
// installing it must put that label on the operator's pods, and the
// operator's namespace (which it reads from its service account) is the
// Deployment's: kustomize, the chart as the README installs it, and the
// chart under another release name with nameOverride and podLabels that try
// to override the label (app.kubernetes.io/name, which the policies used to
// trust, follows nameOverride).
func TestPlatformPoliciesAdmitTheOperatorHoweverInstalled(t *testing.T) {
	other, err := run(t, helm(t), "template", "platform-ops", chartDir, "--namespace", "ops",
		"--set", "nameOverride=vk-operator", "--set-string", "podLabels.platform\\.vkparser\\.io/operator=false")
	if err != nil {
		t.Fatal(err)
	}
	for name, objs := range map[string]objects{
		"kustomize":                       kustomize(t),
		"chart as the README installs it": mustHelmTemplate(t),
		"chart: another release, nameOverride, podLabels": objects(decode(t, other)),
	} {
		t.Run(name, func(t *testing.T) {
			var d *appsv1.Deployment
			for _, u := range objs.ofKind("Deployment") {
				d = &appsv1.Deployment{}
				if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, d); err != nil {
					t.Fatal(err)
				}
			}
			if d == nil {
				t.Fatal("no operator Deployment rendered")
			}
			peer := resource.OperatorPeer(d.Namespace)
			pods, err := metav1.LabelSelectorAsSelector(peer.PodSelector)
			if err != nil {
				t.Fatal(err)
			}
			if !pods.Matches(labels.Set(d.Spec.Template.Labels)) {
				t.Errorf("the operator's pods %v are not selected by the platforms' policies (%v)", d.Spec.Template.Labels, pods)
			}
			if got := peer.NamespaceSelector.MatchLabels[corev1.LabelMetadataName]; got != d.Namespace {
				t.Errorf("policies admit the operator from namespace %q, it runs in %q", got, d.Namespace)
			}
		})
	}
}
