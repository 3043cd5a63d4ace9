package resource

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
)

// NetworkPolicies isolate the platform: every pod denies ingress by default,
// then only the paths the architecture has are opened:
//
//	anyone -> load balancer -> gateway -> services
//	services, workers -> database, cache, broker
//	cache <-> cache and broker <-> broker (cluster traffic)
//	monitoring namespace -> metrics port of every pod
//
// Egress stays open: pods need DNS, and the parser reaches the outside world.
func NetworkPolicies(p *platformv1.ParserPlatform) []*networkingv1.NetworkPolicy {
	apps := []string{ComponentService, ComponentWorker}
	policies := []*networkingv1.NetworkPolicy{
		networkPolicy(p, "default-deny", platformPods(p), nil),
		networkPolicy(p, "lb", componentPods(p, ComponentLoadBalancer), []networkingv1.NetworkPolicyIngressRule{
			{Ports: tcpPorts(NginxListenPort)}, // the platform's entry point: from anywhere
		}),
		networkPolicy(p, "gateway", componentPods(p, ComponentGateway), []networkingv1.NetworkPolicyIngressRule{
			{From: peers(componentPods(p, ComponentLoadBalancer)), Ports: tcpPorts(p.Spec.GatewayPort())},
		}),
		networkPolicy(p, "services", componentPods(p, ComponentService), []networkingv1.NetworkPolicyIngressRule{
			{From: peers(componentPods(p, ComponentGateway)), Ports: tcpPorts(servicePorts(p)...)},
		}),
		networkPolicy(p, "database", componentPods(p, ComponentDatabase), []networkingv1.NetworkPolicyIngressRule{
			{From: peers(componentsPods(p, apps...)), Ports: tcpPorts(PostgresPort)},
		}),
		networkPolicy(p, "cache", componentPods(p, ComponentCache), []networkingv1.NetworkPolicyIngressRule{
			{From: peers(componentsPods(p, apps...)), Ports: tcpPorts(RedisPort)},
			{From: peers(componentPods(p, ComponentCache)), Ports: tcpPorts(RedisPort, RedisClusterBus)},
		}),
		networkPolicy(p, "metrics", platformPods(p), []networkingv1.NetworkPolicyIngressRule{{
			From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{corev1.LabelMetadataName: p.Spec.MonitoringNamespace()},
			}}},
			Ports: tcpPorts(p.Spec.MetricsPort()),
		}}),
	}
	if p.Spec.Queues != nil && len(p.Spec.Queues.Queues) > 0 {
		policies = append(policies, networkPolicy(p, "broker", componentPods(p, ComponentBroker), []networkingv1.NetworkPolicyIngressRule{
			{From: peers(componentsPods(p, apps...)), Ports: tcpPorts(brokerClientPort(p))},
			{From: peers(componentPods(p, ComponentBroker)), Ports: tcpPorts(ErlangPortMapper, RabbitDistribution, brokerClientPort(p))},
		}))
	}
	return policies
}

func networkPolicy(p *platformv1.ParserPlatform, name string, pods *metav1.LabelSelector, ingress []networkingv1.NetworkPolicyIngressRule) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: objectMeta(p, Name(p.Name, name), "network-policy", "network-policy"),
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: *pods,
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress:     ingress,
		},
	}
}

func brokerClientPort(p *platformv1.ParserPlatform) int32 {
	if p.Spec.Queues != nil && p.Spec.Queues.Broker.Type == platformv1.BrokerRedis {
		return RedisPort
	}
	return AMQPPort
}

func servicePorts(p *platformv1.ParserPlatform) []int32 {
	out := make([]int32, 0, len(p.Spec.Services))
	for _, s := range p.Spec.Services {
		out = append(out, s.Port)
	}
	return out
}

// platformPods selects every pod of the platform.
func platformPods(p *platformv1.ParserPlatform) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{LabelInstance: p.Name, LabelPartOf: PartOf}}
}

func componentPods(p *platformv1.ParserPlatform, component string) *metav1.LabelSelector {
	return componentsPods(p, component)
}

func componentsPods(p *platformv1.ParserPlatform, components ...string) *metav1.LabelSelector {
	return &metav1.LabelSelector{
		MatchLabels: map[string]string{LabelInstance: p.Name},
		MatchExpressions: []metav1.LabelSelectorRequirement{{
			Key: LabelComponent, Operator: metav1.LabelSelectorOpIn, Values: components,
		}},
	}
}

func peers(pods *metav1.LabelSelector) []networkingv1.NetworkPolicyPeer {
	return []networkingv1.NetworkPolicyPeer{{PodSelector: pods}}
}

func tcpPorts(ports ...int32) []networkingv1.NetworkPolicyPort {
	out := make([]networkingv1.NetworkPolicyPort, 0, len(ports))
	for _, port := range ports {
		out = append(out, networkingv1.NetworkPolicyPort{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(port))})
	}
	return out
}
