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
//	anyone -> load balancer -> gateway -> each service on its own port
//	services, workers -> database, cache, broker
//	backup and restore Jobs -> database
//	cache <-> cache and broker <-> broker (cluster traffic)
//	the operator -> cache (it forms the Redis Cluster)
//	the operator -> RabbitMQ's management API (it keeps the queues in line)
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
		networkPolicy(p, "database", componentPods(p, ComponentDatabase), []networkingv1.NetworkPolicyIngressRule{
			// Backup and restore Jobs dump and fill the shards (pg_dump, pg_restore).
			{From: peers(componentsPods(p, ComponentService, ComponentWorker, ComponentBackup)), Ports: tcpPorts(PostgresPort)},
		}),
		networkPolicy(p, "cache", componentPods(p, ComponentCache), []networkingv1.NetworkPolicyIngressRule{
			{From: peers(componentsPods(p, apps...)), Ports: tcpPorts(RedisPort)},
			{From: peers(componentPods(p, ComponentCache)), Ports: tcpPorts(RedisPort, RedisClusterBus)},
			// The operator forms and scales the Redis Cluster over the Redis
			// protocol, from its own namespace, wherever that is.
			{From: []networkingv1.NetworkPolicyPeer{OperatorPeer()}, Ports: tcpPorts(RedisPort)},
		}),
		networkPolicy(p, "metrics", platformPods(p), []networkingv1.NetworkPolicyIngressRule{{
			From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{corev1.LabelMetadataName: p.Spec.MonitoringNamespace()},
			}}},
			Ports: tcpPorts(p.Spec.MetricsPort()),
		}}),
	}
	policies = append(policies, servicePolicies(p)...)
	if hasQueues(p) {
		policies = append(policies, brokerPolicy(p, apps))
	}
	return policies
}

// servicePolicies: one per service, so the gateway reaches each service on
// its own port only. A single policy for all services would have to list
// every service's port, and open each of them on every service's pods.
func servicePolicies(p *platformv1.ParserPlatform) []*networkingv1.NetworkPolicy {
	out := make([]*networkingv1.NetworkPolicy, 0, len(p.Spec.Services))
	for _, s := range p.Spec.Services {
		pods := componentPods(p, ComponentService)
		pods.MatchLabels[LabelName] = Truncate(s.Name)
		// "service-" keeps the name apart from the other policies whatever
		// the service is called (a service may be named "database").
		out = append(out, networkPolicy(p, "service-"+s.Name, pods, []networkingv1.NetworkPolicyIngressRule{
			{From: peers(componentPods(p, ComponentGateway)), Ports: tcpPorts(s.Port)},
		}))
	}
	return out
}

// brokerPolicy lets apps reach the broker's client port; RabbitMQ nodes also
// reach each other (epmd, distribution, AMQP), and the operator reaches
// RabbitMQ's management API. The Redis broker is a single node with no
// cluster traffic and lists for queues, so it gets neither rule.
func brokerPolicy(p *platformv1.ParserPlatform, apps []string) *networkingv1.NetworkPolicy {
	rules := []networkingv1.NetworkPolicyIngressRule{
		{From: peers(componentsPods(p, apps...)), Ports: tcpPorts(brokerClientPort(p))},
	}
	if !isRedisBroker(p) {
		rules = append(rules, networkingv1.NetworkPolicyIngressRule{
			From: peers(componentPods(p, ComponentBroker)), Ports: tcpPorts(ErlangPortMapper, RabbitDistribution, AMQPPort),
		}, networkingv1.NetworkPolicyIngressRule{
			// The operator declares, binds and deletes queues over the
			// management API, from its own namespace, wherever that is.
			From: []networkingv1.NetworkPolicyPeer{OperatorPeer()}, Ports: tcpPorts(RabbitManagement),
		})
	}
	return networkPolicy(p, "broker", componentPods(p, ComponentBroker), rules)
}

// OperatorPodLabel marks the operator's pods (kustomize and the Helm chart
// both set it) so the cache's and the broker's NetworkPolicies let the
// operator in.
const OperatorPodLabel = "parser-operator"

// OperatorPeer is the operator's pods, in any namespace.
func OperatorPeer() networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{
		NamespaceSelector: &metav1.LabelSelector{},
		PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{LabelName: OperatorPodLabel}},
	}
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
