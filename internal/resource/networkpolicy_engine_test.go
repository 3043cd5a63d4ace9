package resource

import (
	"testing"

	"github.com/mattfenwick/cyclonus/pkg/matcher"
	networkingv1 "k8s.io/api/networking/v1"
)

// compileCyclonus judges with the upstream NetworkPolicy engine: the matcher
// of github.com/mattfenwick/cyclonus, which its conformance suite checks
// against real network plugins. The policies are deep-copied first (the
// engine must not see, nor change, what the test holds), and built without
// simplification so each rendered rule is judged as written.
func compileCyclonus(t *testing.T, policies []*networkingv1.NetworkPolicy) netJudge {
	t.Helper()
	copies := make([]*networkingv1.NetworkPolicy, 0, len(policies))
	for _, np := range policies {
		copies = append(copies, np.DeepCopy())
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

func cyclonusPeer(pod netPod) *matcher.TrafficPeer {
	if pod.external {
		return &matcher.TrafficPeer{IP: pod.ip}
	}
	return &matcher.TrafficPeer{IP: pod.ip, Internal: &matcher.InternalPeer{
		PodLabels: pod.labels, NamespaceLabels: pod.nsLabels, Namespace: pod.namespace,
	}}
}
