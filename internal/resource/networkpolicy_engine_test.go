package resource

import (
	"slices"
	"testing"

	"github.com/mattfenwick/cyclonus/pkg/matcher"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// compileCyclonus judges with the upstream NetworkPolicy engine: the matcher
// of github.com/mattfenwick/cyclonus, which its conformance suite checks
// against real network plugins. The policies are copied as the API server
// stores them first (asStored; the engine must not change what the test
// holds), and built without simplification so each rendered rule is judged
// as written.
func compileCyclonus(t *testing.T, policies []*networkingv1.NetworkPolicy) netJudge {
	t.Helper()
	copies := make([]*networkingv1.NetworkPolicy, 0, len(policies))
	for _, np := range policies {
		copies = append(copies, asStored(np))
	}
	engine := matcher.BuildNetworkPolicies(false, copies)
	return func(src, dst netPod, probe netProbe, ingress bool) bool {
		traffic := &matcher.Traffic{
			Source:           cyclonusPeer(src),
			Destination:      cyclonusPeer(dst),
			ResolvedPort:     int(probe.port),
			ResolvedPortName: portName(dst, probe.port),
			Protocol:         probe.proto,
		}
		return engine.IsIngressOrEgressAllowed(traffic, ingress).IsAllowed()
	}
}

// asStored is the policy as the API server stores it: policyTypes left out
// default to Ingress, plus Egress when there are egress rules (what
// kube-apiserver's SetDefaults_NetworkPolicy does). The engine takes stored
// objects and panics on a policy without types; the hand evaluator applies
// the same default itself.
func asStored(np *networkingv1.NetworkPolicy) *networkingv1.NetworkPolicy {
	out := np.DeepCopy()
	if len(out.Spec.PolicyTypes) == 0 {
		out.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
		if len(out.Spec.Egress) > 0 {
			out.Spec.PolicyTypes = append(out.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
		}
	}
	return out
}

func cyclonusPeer(pod netPod) *matcher.TrafficPeer {
	if pod.external {
		return &matcher.TrafficPeer{IP: pod.ip}
	}
	return &matcher.TrafficPeer{IP: pod.ip, Internal: &matcher.InternalPeer{
		PodLabels: pod.labels, NamespaceLabels: pod.nsLabels, Namespace: pod.namespace,
	}}
}

// TestEvaluatorsAgreeOnEdgeCases runs both evaluators side by side, verdict
// by verdict, on the platform's policies and on policies written to hit the
// corners of the semantics the platform's own do not use (named ports, port
// ranges, ipBlock exceptions, policyTypes left out, a namespaceSelector
// beside a podSelector), so a difference between the hand evaluator and the
// upstream engine shows up here first rather than as a wrong matrix.
func TestEvaluatorsAgreeOnEdgeCases(t *testing.T) {
	p := samplePlatform()
	base := NetworkPolicies(p, WithOperatorNamespace(testOperatorNamespace))
	edge := func(name string, spec networkingv1.NetworkPolicySpec) *networkingv1.NetworkPolicy {
		return &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: p.Namespace}, Spec: spec}
	}
	cache := *componentPods(p, ComponentCache)
	sets := map[string][]*networkingv1.NetworkPolicy{
		"the platform's": base,
		"named port, policyTypes left out, with egress rules": append(slices.Clone(base), edge("named", networkingv1.NetworkPolicySpec{
			PodSelector: cache,
			Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{
				{Port: ptr.To(intstr.FromString("cluster-bus"))},
			}}},
			Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{
				CIDR: "0.0.0.0/0", Except: []string{"169.254.0.0/16", "10.0.0.0/8"},
			}}}}},
		})),
		"port range, namespace and pod selectors together": append(slices.Clone(base), edge("range", networkingv1.NetworkPolicySpec{
			PodSelector: *componentPods(p, ComponentDatabase),
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{{
					NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: testOperatorNamespace}},
					PodSelector:       &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: LabelName, Operator: metav1.LabelSelectorOpExists}}},
				}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(5000)), EndPort: ptr.To[int32](6000)}},
			}},
		})),
	}
	pods := networkPods(t, p)
	all := append(slices.Clone(pods), outsidePods(t, p, pods)...)
	for name, policies := range sets {
		t.Run(name, func(t *testing.T) {
			hand, engine := compileHand(t, policies), compileCyclonus(t, policies)
			probes := probePorts(p, pods, policies)
			disagree := 0
			for _, src := range all {
				for _, dst := range all {
					for _, probe := range probes {
						for _, ingress := range []bool{true, false} {
							if h, e := hand(src, dst, probe, ingress), engine(src, dst, probe, ingress); h != e {
								if disagree++; disagree <= 20 {
									t.Errorf("ingress=%v %s -> %s:%s: hand evaluator %v, cyclonus %v", ingress, src.name, dst.name, probe, h, e)
								}
							}
						}
					}
				}
			}
			if disagree > 20 {
				t.Errorf("... %d disagreements in all", disagree)
			}
		})
	}
}
