package resource

import (
	"slices"

	networkingv1 "k8s.io/api/networking/v1"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
)

// services: one policy per service, so each opens its own port only (a
// single policy for all services would open every service's port on every
// service's pods). It lets in the gateway and the services that call it;
// with egress restricted, it lets the service reach the services it calls
// and the stateful tier.
func (b *policyBuilder) services() []*networkingv1.NetworkPolicy {
	out := make([]*networkingv1.NetworkPolicy, 0, len(b.p.Spec.Services))
	for _, s := range b.p.Spec.Services {
		ingress := []networkingv1.NetworkPolicyIngressRule{
			{From: peers(componentPods(b.p, ComponentGateway)), Ports: tcpPorts(s.Port)},
		}
		if from := b.callersOf(s.Name); len(from) > 0 {
			ingress = append(ingress, networkingv1.NetworkPolicyIngressRule{From: from, Ports: tcpPorts(s.Port)})
		}
		var egress []networkingv1.NetworkPolicyEgressRule
		for _, callee := range b.p.Spec.Services {
			if MayCall(s, callee.Name) {
				egress = append(egress, egressTo(servicePods(b.p, callee.Name), callee.Port))
			}
		}
		// "service-" keeps the name apart from the other policies whatever
		// the service is called (a service may be named "database").
		out = append(out, b.build("service-"+s.Name, servicePods(b.p, s.Name), ingress,
			b.appEgressRules(append(egress, b.dataEgress()...)...)))
	}
	return out
}

// callersOf are the peers that may call service target: every service's
// pods in one selector while no service narrows its calls, else one peer a
// caller.
func (b *policyBuilder) callersOf(target string) []networkingv1.NetworkPolicyPeer {
	var callers []string
	for _, s := range b.p.Spec.Services {
		if MayCall(s, target) {
			callers = append(callers, s.Name)
		}
	}
	if len(callers) == len(b.p.Spec.Services) {
		return peers(componentPods(b.p, ComponentService))
	}
	out := make([]networkingv1.NetworkPolicyPeer, 0, len(callers))
	for _, name := range callers {
		out = append(out, peers(servicePods(b.p, name))...)
	}
	return out
}

// MayCall tells whether service s may call service target through the
// registry: calls left out (nil) means every service of the platform, a
// list (even empty) means exactly those it names.
func MayCall(s platformv1.ServiceSpec, target string) bool {
	return s.Calls == nil || slices.Contains(s.Calls, target)
}
