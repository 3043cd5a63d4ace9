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
// then only the paths the architecture has are opened (docs/security.md
// lists them, and the matrix tests walk every pod pair and port):
//
//	anyone -> load balancer -> gateway -> each service on its own port
//	service -> the services it calls (services[].calls; all by default)
//	services, workers -> database, cache, broker
//	backup and restore Jobs -> database
//	cache <-> cache and broker <-> broker (cluster traffic)
//	the operator, from its own namespace -> cache (it forms the Redis
//	  Cluster) and RabbitMQ's management API (it keeps the queues in line)
//	monitoring namespace -> the ports named metrics (or prometheus) of any pod
//
// Egress of shard, cache and broker pods is limited to their peers and DNS:
// none of them dials anything else (the operator dials them, backup Jobs
// connect to the shards, not the other way round). Application pods keep
// open egress (the parser reaches the internet) unless
// spec.networkPolicy.egress lists CIDRs; then they reach those, DNS and the
// platform paths above, nothing more.
func NetworkPolicies(p *platformv1.ParserPlatform, opts ...Option) []*networkingv1.NetworkPolicy {
	o := options(opts)
	np := newPolicyBuilder(p, o)
	policies := []*networkingv1.NetworkPolicy{
		np.build("default-deny", platformPods(p), denyAll, nil),
		np.loadBalancer(),
		np.gateway(),
		np.database(),
		np.cache(),
		np.metrics(),
	}
	policies = append(policies, np.services()...)
	if hasQueues(p) {
		policies = append(policies, np.broker())
	}
	if np.restricted() {
		policies = append(policies, np.appEgress(), np.backupJobs())
		if hasQueues(p) {
			policies = append(policies, np.workers())
		}
	}
	return policies
}

// policyBuilder holds what every policy of a platform is built from.
type policyBuilder struct {
	p        *platformv1.ParserPlatform
	operator networkingv1.NetworkPolicyPeer
}

func newPolicyBuilder(p *platformv1.ParserPlatform, o buildOptions) *policyBuilder {
	return &policyBuilder{p: p, operator: OperatorPeer(o.operatorNamespace)}
}

// restricted is true when spec.networkPolicy.egress narrows the egress of
// the application pods; without it their policies are ingress-only.
func (b *policyBuilder) restricted() bool {
	return b.p.Spec.NetworkPolicy != nil && len(b.p.Spec.NetworkPolicy.Egress) > 0
}

// appEgressRules are egress rules of an application pod, nil (no egress
// policy type) while its egress is open.
func (b *policyBuilder) appEgressRules(rules ...networkingv1.NetworkPolicyEgressRule) []networkingv1.NetworkPolicyEgressRule {
	if !b.restricted() {
		return nil
	}
	return rules
}

func (b *policyBuilder) loadBalancer() *networkingv1.NetworkPolicy {
	return b.build("lb", componentPods(b.p, ComponentLoadBalancer),
		[]networkingv1.NetworkPolicyIngressRule{{Ports: tcpPorts(NginxListenPort)}}, // the entry point: from anywhere
		b.appEgressRules(egressTo(componentPods(b.p, ComponentGateway), b.p.Spec.GatewayPort())))
}

func (b *policyBuilder) gateway() *networkingv1.NetworkPolicy {
	var egress []networkingv1.NetworkPolicyEgressRule
	for _, s := range b.p.Spec.Services {
		egress = append(egress, egressTo(servicePods(b.p, s.Name), s.Port))
	}
	return b.build(gatewayName, componentPods(b.p, ComponentGateway),
		[]networkingv1.NetworkPolicyIngressRule{{From: peers(componentPods(b.p, ComponentLoadBalancer)), Ports: tcpPorts(b.p.Spec.GatewayPort())}},
		b.appEgressRules(egress...))
}

// database: apps and the backup and restore Jobs (pg_dump, pg_restore)
// reach PostgreSQL; a shard dials nothing but DNS (no replication).
func (b *policyBuilder) database() *networkingv1.NetworkPolicy {
	return b.build("database", componentPods(b.p, ComponentDatabase),
		[]networkingv1.NetworkPolicyIngressRule{
			{From: peers(componentsPods(b.p, ComponentService, ComponentWorker, ComponentBackup)), Ports: tcpPorts(PostgresPort)},
		},
		[]networkingv1.NetworkPolicyEgressRule{dnsEgress()})
}

// cache: apps use Redis; nodes gossip on the cluster bus and replicas sync
// from their masters on the Redis port; the operator forms and scales the
// Redis Cluster over the Redis protocol, from its own namespace.
func (b *policyBuilder) cache() *networkingv1.NetworkPolicy {
	nodes := componentPods(b.p, ComponentCache)
	return b.build("cache", nodes,
		[]networkingv1.NetworkPolicyIngressRule{
			{From: peers(componentsPods(b.p, ComponentService, ComponentWorker)), Ports: tcpPorts(RedisPort)},
			{From: peers(nodes), Ports: tcpPorts(RedisPort, RedisClusterBus)},
			{From: []networkingv1.NetworkPolicyPeer{b.operator}, Ports: tcpPorts(RedisPort)},
		},
		[]networkingv1.NetworkPolicyEgressRule{egressTo(nodes, RedisPort, RedisClusterBus), dnsEgress()})
}

// broker: apps reach the client port. RabbitMQ nodes also reach each other
// (epmd, distribution, AMQP) and the operator reaches the management API,
// from its own namespace. The Redis broker is a single node with no cluster
// traffic whose queues are lists Celery makes itself, so it gets neither.
func (b *policyBuilder) broker() *networkingv1.NetworkPolicy {
	nodes := componentPods(b.p, ComponentBroker)
	ingress := []networkingv1.NetworkPolicyIngressRule{
		{From: peers(componentsPods(b.p, ComponentService, ComponentWorker)), Ports: tcpPorts(brokerClientPort(b.p))},
	}
	egress := []networkingv1.NetworkPolicyEgressRule{dnsEgress()}
	if !isRedisBroker(b.p) {
		ingress = append(ingress,
			networkingv1.NetworkPolicyIngressRule{From: peers(nodes), Ports: tcpPorts(rabbitPeerPorts...)},
			networkingv1.NetworkPolicyIngressRule{From: []networkingv1.NetworkPolicyPeer{b.operator}, Ports: tcpPorts(RabbitManagement)})
		egress = append(egress, egressTo(nodes, rabbitPeerPorts...))
	}
	return b.build("broker", nodes, ingress, egress)
}

// rabbitPeerPorts are what RabbitMQ nodes open to one another.
var rabbitPeerPorts = []int32{ErlangPortMapper, RabbitDistribution, AMQPPort}

// metrics lets the monitoring namespace scrape every platform pod on the
// ports its containers declare as metrics ports, by name: "metrics" (the
// apps' monitoring.metricsPort, and exporter sidecars) and "prometheus"
// (RabbitMQ's rabbitmq_prometheus). A pod that declares none opens nothing,
// and a data port is never named so; the CRD also keeps metricsPort apart
// from every data and service port.
func (b *policyBuilder) metrics() *networkingv1.NetworkPolicy {
	ports := make([]networkingv1.NetworkPolicyPort, 0, len(metricsPortNames))
	for _, name := range metricsPortNames {
		ports = append(ports, networkingv1.NetworkPolicyPort{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromString(name))})
	}
	return b.build("metrics", platformPods(b.p),
		[]networkingv1.NetworkPolicyIngressRule{{
			From:  []networkingv1.NetworkPolicyPeer{namespacePeer(b.p.Spec.MonitoringNamespace())},
			Ports: ports,
		}}, nil)
}

// metricsPortNames are the container port names Prometheus scrapes.
var metricsPortNames = []string{"metrics", "prometheus"}

// workers take no connection (Celery pulls from the broker): with egress
// restricted, this policy lets them reach the stateful tier.
func (b *policyBuilder) workers() *networkingv1.NetworkPolicy {
	return b.build("worker", componentPods(b.p, ComponentWorker), nil, b.appEgressRules(b.dataEgress()...))
}

// backupJobs: backup and restore Job pods take no connection (default-deny
// selects them too); with egress restricted this policy lets them reach the
// shards, and the object store only through spec.networkPolicy.egress.
func (b *policyBuilder) backupJobs() *networkingv1.NetworkPolicy {
	return b.build("backup", componentPods(b.p, ComponentBackup), nil,
		b.appEgressRules(egressTo(componentPods(b.p, ComponentDatabase), PostgresPort)))
}

// dataEgress are the stateful tier's client ports, as apps dial them.
func (b *policyBuilder) dataEgress() []networkingv1.NetworkPolicyEgressRule {
	rules := []networkingv1.NetworkPolicyEgressRule{
		egressTo(componentPods(b.p, ComponentDatabase), PostgresPort),
		egressTo(componentPods(b.p, ComponentCache), RedisPort),
	}
	if hasQueues(b.p) {
		rules = append(rules, egressTo(componentPods(b.p, ComponentBroker), brokerClientPort(b.p)))
	}
	return rules
}

// appEgress: with spec.networkPolicy.egress, application pods reach DNS and
// the CIDRs listed (any port) on top of the platform paths of their own
// policies.
func (b *policyBuilder) appEgress() *networkingv1.NetworkPolicy {
	to := make([]networkingv1.NetworkPolicyPeer, 0, len(b.p.Spec.NetworkPolicy.Egress))
	for _, cidr := range b.p.Spec.NetworkPolicy.Egress {
		to = append(to, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr}})
	}
	return b.build("egress", appPods(b.p), nil, []networkingv1.NetworkPolicyEgressRule{dnsEgress(), {To: to}})
}

// appPods are the pods whose egress spec.networkPolicy.egress restricts.
func appPods(p *platformv1.ParserPlatform) *metav1.LabelSelector {
	return componentsPods(p, ComponentLoadBalancer, ComponentGateway, ComponentService, ComponentWorker, ComponentBackup)
}

func brokerClientPort(p *platformv1.ParserPlatform) int32 {
	if p.Spec.Queues != nil && p.Spec.Queues.Broker.Type == platformv1.BrokerRedis {
		return RedisPort
	}
	return AMQPPort
}
