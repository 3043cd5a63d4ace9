package resource

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// The NetworkPolicy tests evaluate the rendered policies the way a network
// plugin does, ingress and egress, for every pair of pods the platform runs
// plus pods and addresses outside it, on every port any of them listens on,
// and compare the verdicts with the paths the architecture has
// (networkpolicy.go, docs/security.md). Two evaluators decide: the one in
// this file, and the upstream matcher of github.com/mattfenwick/cyclonus
// (networkpolicy_engine_test.go); both must agree with the expected matrix
// (networkpolicy_matrix_test.go). Checking the rendered rules rather than
// the builder's inputs is what catches a selector that matches nothing, a
// rule that lets too much in, or a policy that was forgotten.

// netPod is a pod (or, with external set, an address outside the cluster)
// as a NetworkPolicy sees it.
type netPod struct {
	name      string // for messages: the workload, or a role outside it
	role      string // what the expected matrix reasons about
	namespace string
	nsLabels  map[string]string
	labels    map[string]string
	ports     []corev1.ContainerPort // for named ports in policies
	ip        string
	external  bool // not a pod: only ipBlock peers can match it
}

// netProbe is one destination port and protocol.
type netProbe struct {
	port  int32
	proto corev1.Protocol
}

func (n netProbe) String() string {
	if n.proto == corev1.ProtocolTCP {
		return fmt.Sprint(n.port)
	}
	return fmt.Sprintf("%d/%s", n.port, n.proto)
}

// handAllows decides one direction with Kubernetes semantics: a pod selected
// by a policy of its namespace with that policy type is isolated in that
// direction, and then only a rule of such a policy that matches both the
// peer and the port lets the traffic through. An external address is never
// isolated.
func handAllows(t *testing.T, policies []*networkingv1.NetworkPolicy, src, dst netPod, probe netProbe, ingress bool) bool {
	t.Helper()
	target, peer := dst, src
	kind := networkingv1.PolicyTypeIngress
	if !ingress {
		target, peer, kind = src, dst, networkingv1.PolicyTypeEgress
	}
	if target.external {
		return true
	}
	isolated := false
	for _, np := range policies {
		if np.Namespace != target.namespace || !selectorMatches(t, &np.Spec.PodSelector, target.labels) || !hasPolicyType(np, kind) {
			continue
		}
		isolated = true
		if ingress {
			for _, rule := range np.Spec.Ingress {
				if peersMatch(t, np.Namespace, rule.From, peer) && portsMatch(t, rule.Ports, dst, probe) {
					return true
				}
			}
			continue
		}
		for _, rule := range np.Spec.Egress {
			if peersMatch(t, np.Namespace, rule.To, peer) && portsMatch(t, rule.Ports, dst, probe) {
				return true
			}
		}
	}
	return !isolated
}

// hasPolicyType: policyTypes left out means Ingress, plus Egress when the
// policy has egress rules.
func hasPolicyType(np *networkingv1.NetworkPolicy, kind networkingv1.PolicyType) bool {
	if len(np.Spec.PolicyTypes) == 0 {
		return kind == networkingv1.PolicyTypeIngress || len(np.Spec.Egress) > 0
	}
	return slices.Contains(np.Spec.PolicyTypes, kind)
}

// peersMatch: no peers means every peer; a peer with only a podSelector
// means pods of the policy's own namespace; a namespaceSelector means pods
// of the namespaces it selects (narrowed by a podSelector next to it); an
// ipBlock matches by address (pods' addresses included, as the upstream
// engine does).
func peersMatch(t *testing.T, policyNamespace string, peers []networkingv1.NetworkPolicyPeer, other netPod) bool {
	t.Helper()
	if len(peers) == 0 {
		return true
	}
	for _, peer := range peers {
		if peer.IPBlock != nil {
			if ipBlockMatches(t, peer.IPBlock, other.ip) {
				return true
			}
			continue
		}
		if other.external {
			continue
		}
		var nsOK bool
		if peer.NamespaceSelector == nil {
			nsOK = other.namespace == policyNamespace
		} else {
			nsOK = selectorMatches(t, peer.NamespaceSelector, other.nsLabels)
		}
		if nsOK && (peer.PodSelector == nil || selectorMatches(t, peer.PodSelector, other.labels)) {
			return true
		}
	}
	return false
}

func ipBlockMatches(t *testing.T, block *networkingv1.IPBlock, ip string) bool {
	t.Helper()
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		t.Fatalf("pod address %q: %v", ip, err)
	}
	in := func(cidr string) bool {
		prefix, err := netip.ParsePrefix(cidr)
		if err != nil {
			t.Fatalf("ipBlock %q: %v", cidr, err)
		}
		return prefix.Contains(addr)
	}
	return in(block.CIDR) && !slices.ContainsFunc(block.Except, in)
}

// portsMatch: no ports means every port and protocol; a named port is looked
// up among the destination's container ports.
func portsMatch(t *testing.T, ports []networkingv1.NetworkPolicyPort, dst netPod, probe netProbe) bool {
	t.Helper()
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		if ptr.Deref(p.Protocol, corev1.ProtocolTCP) != probe.proto {
			continue
		}
		if p.Port == nil {
			return true
		}
		if p.Port.Type == intstr.String {
			for _, cp := range dst.ports {
				if cp.Name == p.Port.StrVal && cp.ContainerPort == probe.port {
					return true
				}
			}
			continue
		}
		if probe.port == p.Port.IntVal || (p.EndPort != nil && probe.port >= p.Port.IntVal && probe.port <= *p.EndPort) {
			return true
		}
	}
	return false
}

// selectorMatches parses each selector object once: the matrix asks the
// same few selectors about some hundred thousand pod pairs. compileHand
// clears the cache for every policy set, since tests edit selectors in place.
func selectorMatches(t *testing.T, sel *metav1.LabelSelector, l map[string]string) bool {
	t.Helper()
	s, ok := selectorCache[sel]
	if !ok {
		var err error
		if s, err = metav1.LabelSelectorAsSelector(sel); err != nil {
			t.Fatalf("invalid label selector %+v: %v", sel, err)
		}
		selectorCache[sel] = s
	}
	return s.Matches(labels.Set(l))
}

// selectorCache: the tests of this package do not run in parallel.
var selectorCache = map[*metav1.LabelSelector]labels.Selector{}

// portName is the name of dst's container port, for engines that resolve
// named ports.
func portName(dst netPod, port int32) string {
	for _, cp := range dst.ports {
		if cp.ContainerPort == port {
			return cp.Name
		}
	}
	return ""
}

func cloneLabels(l map[string]string) map[string]string { return maps.Clone(l) }
