package resource

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
)

// Roles of pods in the matrix.
const (
	roleLB         = "lb"
	roleGateway    = "gateway"
	roleService    = "service"
	roleShard      = "shard"
	roleCache      = "cache"
	roleBroker     = "broker"
	roleWorker     = "worker"
	roleBackup     = "backup"     // a backup or restore Job's pod
	roleOutside    = "outside"    // a pod in another namespace
	rolePrometheus = "prometheus" // a pod in the monitoring namespace
	roleImpostor   = "impostor"   // carries a platform or operator pod's labels, in the wrong place
	roleOperator   = "operator"   // the operator's pod, in its own namespace
	roleDNS        = "dns"        // the cluster DNS (kube-system, k8s-app=kube-dns)
	roleInternet   = "internet"   // an address outside the cluster
)

// testOperatorNamespace is where the matrix runs the operator: not the
// default, so a policy that ignores WithOperatorNamespace fails.
const testOperatorNamespace = "ops"

// Addresses outside the cluster. allowedCIDR is what the restricted
// variants list in spec.networkPolicy.egress.
const (
	allowedCIDR      = "203.0.113.0/24"
	allowedAddress   = "203.0.113.10"
	otherAddress     = "198.51.100.7"
	metadataEndpoint = "169.254.169.254"
)

// networkPods are one pod of every workload among the children (all pods
// of a workload carry the same labels) and of a backup Job, with the roles
// the matrix uses and pod addresses in 10.244.0.0/24.
func networkPods(t *testing.T, p *platformv1.ParserPlatform) []netPod {
	t.Helper()
	nsLabels := map[string]string{corev1.LabelMetadataName: p.Namespace}
	templates := podTemplates(t, Children(p, credentialsFor(p)))
	restoring := p.DeepCopy()
	restoring.Spec.Database.Restore = &platformv1.RestoreSpec{
		ObjectStore: platformv1.ObjectStoreSpec{Endpoint: "s3.example.com", Bucket: "backups"}, BackupSet: "latest",
	}
	job := ShardRestoreJob(restoring, "parser-operator:test", "20261201T000000Z-000000", 0)
	templates["Job/"+job.Name] = &job.Spec.Template
	roles := map[string]string{
		ComponentLoadBalancer: roleLB, ComponentGateway: roleGateway, ComponentService: roleService,
		ComponentDatabase: roleShard, ComponentCache: roleCache, ComponentBroker: roleBroker,
		ComponentWorker: roleWorker, ComponentBackup: roleBackup,
	}
	var pods []netPod
	for i, name := range slices.Sorted(maps.Keys(templates)) {
		tmpl := templates[name]
		role, ok := roles[tmpl.Labels[LabelComponent]]
		if !ok {
			t.Fatalf("%s: component %q has no role in the NetworkPolicy matrix", name, tmpl.Labels[LabelComponent])
		}
		var ports []corev1.ContainerPort
		for _, c := range tmpl.Spec.Containers {
			ports = append(ports, c.Ports...)
		}
		pods = append(pods, netPod{name: name, role: role, namespace: p.Namespace, nsLabels: nsLabels,
			labels: tmpl.Labels, ports: ports, ip: fmt.Sprintf("10.244.0.%d", i+2)})
	}
	return pods
}

// outsidePods are peers that are not the platform's own pods, the negative
// controls among them.
func outsidePods(t *testing.T, p *platformv1.ParserPlatform, platformPods []netPod) []netPod {
	t.Helper()
	var service netPod
	for _, pod := range platformPods {
		if pod.role == roleService {
			service = pod
			break
		}
	}
	if service.labels == nil {
		t.Fatal("no service pod to copy labels from")
	}
	otherPlatform := cloneLabels(service.labels)
	otherPlatform[LabelInstance] = p.Name + "-other"
	ns := func(name string) map[string]string { return map[string]string{corev1.LabelMetadataName: name} }
	operatorLabels := map[string]string{OperatorPodLabel: OperatorPodLabelValue, LabelName: "parser-operator"}
	pods := []netPod{
		{name: "outside", role: roleOutside, namespace: "elsewhere", nsLabels: ns("elsewhere"), labels: map[string]string{"app": "curl"}},
		{name: "prometheus", role: rolePrometheus, namespace: p.Spec.MonitoringNamespace(), nsLabels: ns(p.Spec.MonitoringNamespace()),
			labels: map[string]string{LabelName: "prometheus"}},
		{name: "operator", role: roleOperator, namespace: testOperatorNamespace, nsLabels: ns(testOperatorNamespace), labels: operatorLabels},
		{name: "kube-dns", role: roleDNS, namespace: "kube-system", nsLabels: ns("kube-system"), labels: map[string]string{"k8s-app": "kube-dns"}},
		// The operator's labels, old and new, in another namespace: anyone
		// who may create a pod somewhere can wear them.
		{name: "operator labels in another namespace", role: roleImpostor, namespace: "elsewhere", nsLabels: ns("elsewhere"), labels: operatorLabels},
		// The label the policies used to trust, in the operator's namespace
		// (a nameOverride install, or any pod there that is not the operator).
		{name: "old operator label in the operator's namespace", role: roleImpostor, namespace: testOperatorNamespace,
			nsLabels: ns(testOperatorNamespace), labels: map[string]string{LabelName: "parser-operator"}},
		// DNS's labels outside kube-system.
		{name: "kube-dns labels in another namespace", role: roleImpostor, namespace: "elsewhere", nsLabels: ns("elsewhere"),
			labels: map[string]string{"k8s-app": "kube-dns"}},
		// A service's labels in another namespace: a podSelector alone must
		// not reach across namespaces.
		{name: "service labels in another namespace", role: roleImpostor, namespace: "elsewhere", nsLabels: ns("elsewhere"), labels: service.labels},
		// Another platform's service in the same namespace.
		{name: "another platform's service", role: roleImpostor, namespace: p.Namespace, nsLabels: service.nsLabels, labels: otherPlatform},
	}
	for i := range pods {
		pods[i].ip = fmt.Sprintf("10.244.1.%d", i+2)
	}
	return append(pods,
		netPod{name: "internet (allowed CIDR)", role: roleInternet, ip: allowedAddress, external: true},
		netPod{name: "internet", role: roleInternet, ip: otherAddress, external: true},
		netPod{name: "cloud metadata", role: roleInternet, ip: metadataEndpoint, external: true},
	)
}

// isPlatformPod is true for the pods the platform's policies select.
func isPlatformPod(pod netPod) bool {
	return slices.Contains([]string{roleLB, roleGateway, roleService, roleShard, roleCache, roleBroker, roleWorker, roleBackup}, pod.role)
}

func isAppRole(role string) bool {
	return slices.Contains([]string{roleLB, roleGateway, roleService, roleWorker, roleBackup}, role)
}

// expectedIngress is the architecture seen from the destination: the only
// connections it takes.
func expectedIngress(p *platformv1.ParserPlatform, src, dst netPod, probe netProbe) bool {
	if !isPlatformPod(dst) {
		return true // not the platform's to isolate
	}
	if probe.proto != corev1.ProtocolTCP {
		return false
	}
	if src.role == rolePrometheus && servesMetrics(dst, probe.port) {
		return true
	}
	if takes, ok := ingressPaths[dst.role]; ok {
		return takes(p, src, dst, probe.port)
	}
	return false // backup Job pods take no connection
}

// ingressPaths: what each role takes, on TCP, beside metrics.
var ingressPaths = map[string]func(p *platformv1.ParserPlatform, src, dst netPod, port int32) bool{
	roleLB: func(_ *platformv1.ParserPlatform, _, _ netPod, port int32) bool {
		return port == NginxListenPort // the entry point, from anywhere
	},
	roleGateway: func(p *platformv1.ParserPlatform, src, _ netPod, port int32) bool {
		return src.role == roleLB && port == p.Spec.GatewayPort()
	},
	roleService: func(p *platformv1.ParserPlatform, src, dst netPod, port int32) bool {
		target := serviceOf(p, dst)
		return port == target.Port && (src.role == roleGateway ||
			(src.role == roleService && MayCall(serviceOf(p, src), target.Name)))
	},
	roleShard: func(_ *platformv1.ParserPlatform, src, _ netPod, port int32) bool {
		return (isApp(src) || src.role == roleBackup) && port == PostgresPort
	},
	roleCache: func(_ *platformv1.ParserPlatform, src, _ netPod, port int32) bool {
		return ((isApp(src) || src.role == roleOperator) && port == RedisPort) ||
			(src.role == roleCache && (port == RedisPort || port == RedisClusterBus))
	},
	roleBroker: func(p *platformv1.ParserPlatform, src, _ netPod, port int32) bool {
		if isApp(src) && port == brokerClientPort(p) {
			return true
		}
		rabbit := p.Spec.Queues.Broker.Type != platformv1.BrokerRedis
		return rabbit && ((src.role == roleBroker && slices.Contains(rabbitPeerPorts, port)) ||
			(src.role == roleOperator && port == RabbitManagement))
	},
}

// isApp: services and workers, the clients of the stateful tier.
func isApp(pod netPod) bool { return pod.role == roleService || pod.role == roleWorker }

// expectedEgress is the architecture seen from the source: the only
// connections it opens.
func expectedEgress(p *platformv1.ParserPlatform, src, dst netPod, probe netProbe) bool {
	switch {
	case !isPlatformPod(src):
		return true
	case dst.role == roleDNS && probe.port == DNSPort:
		return true // every platform pod resolves names
	case isAppRole(src.role):
		return !restrictedEgress(p) || inAllowedCIDR(p, dst) || // the parser reaches the internet
			(probe.proto == corev1.ProtocolTCP && restrictedAppPath(p, src, dst, probe.port))
	}
	return probe.proto == corev1.ProtocolTCP && statefulPeer(p, src, dst, probe.port)
}

// statefulPeer: the only connections shard, cache and broker pods open
// beside DNS, to their own peers.
func statefulPeer(p *platformv1.ParserPlatform, src, dst netPod, port int32) bool {
	switch src.role {
	case roleCache:
		return dst.role == roleCache && (port == RedisPort || port == RedisClusterBus)
	case roleBroker:
		return p.Spec.Queues.Broker.Type != platformv1.BrokerRedis && dst.role == roleBroker && slices.Contains(rabbitPeerPorts, port)
	}
	return false // a shard dials nobody
}

// restrictedAppPath: with spec.networkPolicy.egress, the platform paths an
// application pod still opens.
func restrictedAppPath(p *platformv1.ParserPlatform, src, dst netPod, port int32) bool {
	app := isApp(src)
	switch dst.role {
	case roleGateway:
		return src.role == roleLB && port == p.Spec.GatewayPort()
	case roleService:
		target := serviceOf(p, dst)
		return port == target.Port && (src.role == roleGateway ||
			(src.role == roleService && MayCall(serviceOf(p, src), target.Name)))
	case roleShard:
		return (app || src.role == roleBackup) && port == PostgresPort
	case roleCache:
		return app && port == RedisPort
	case roleBroker:
		return app && port == brokerClientPort(p)
	}
	return false
}

// servesMetrics: the pod declares port as a metrics port, the apps' on
// monitoring.metricsPort, an exporter's, or RabbitMQ's rabbitmq_prometheus.
func servesMetrics(pod netPod, port int32) bool {
	return slices.ContainsFunc(pod.ports, func(cp corev1.ContainerPort) bool {
		return cp.ContainerPort == port && (cp.Name == "metrics" || cp.Name == "prometheus")
	})
}

func restrictedEgress(p *platformv1.ParserPlatform) bool {
	return p.Spec.NetworkPolicy != nil && len(p.Spec.NetworkPolicy.Egress) > 0
}

func inAllowedCIDR(p *platformv1.ParserPlatform, dst netPod) bool {
	addr := netip.MustParseAddr(dst.ip)
	return slices.ContainsFunc(p.Spec.NetworkPolicy.Egress, func(cidr string) bool {
		return netip.MustParsePrefix(cidr).Contains(addr)
	})
}

// serviceOf is the service of the spec whose pod pod is.
func serviceOf(p *platformv1.ParserPlatform, pod netPod) platformv1.ServiceSpec {
	for _, s := range p.Spec.Services {
		if pod.labels[LabelName] == Truncate(s.Name) {
			return s
		}
	}
	return platformv1.ServiceSpec{Name: "?", Port: -1}
}

// probePorts are every port any pod listens on or a policy names, the
// platform's well-known ports and DNS over UDP and TCP.
func probePorts(p *platformv1.ParserPlatform, pods []netPod, policies []*networkingv1.NetworkPolicy) []netProbe {
	set := map[int32]bool{
		NginxListenPort: true, p.Spec.GatewayPort(): true, p.Spec.MetricsPort(): true, p.Spec.LoadBalancer.Port: true,
		PostgresPort: true, RedisPort: true, RedisClusterBus: true, AMQPPort: true, RabbitManagement: true,
		ErlangPortMapper: true, RabbitDistribution: true, 15692: true, 80: true, 443: true, DNSPort: true,
	}
	for _, s := range p.Spec.Services {
		set[s.Port] = true
	}
	for _, pod := range pods {
		for _, cp := range pod.ports {
			set[cp.ContainerPort] = true
		}
	}
	for _, np := range policies {
		var ports []networkingv1.NetworkPolicyPort
		for _, rule := range np.Spec.Ingress {
			ports = append(ports, rule.Ports...)
		}
		for _, rule := range np.Spec.Egress {
			ports = append(ports, rule.Ports...)
		}
		for _, port := range ports {
			if port.Port != nil && port.Port.Type == intstr.Int {
				set[port.Port.IntVal] = true
			}
		}
	}
	delete(set, 0)
	out := []netProbe{{DNSPort, corev1.ProtocolUDP}}
	for _, port := range slices.Sorted(maps.Keys(set)) {
		out = append(out, netProbe{port, corev1.ProtocolTCP})
	}
	return out
}

// netJudge decides one direction of one connection.
type netJudge func(src, dst netPod, probe netProbe, ingress bool) bool

// netEvaluator compiles policies into a judge.
type netEvaluator struct {
	name    string
	compile func(t *testing.T, policies []*networkingv1.NetworkPolicy) netJudge
}

// evaluators are the hand evaluator and the upstream engine: both must
// agree with the expected matrix.
func evaluators() []netEvaluator {
	return []netEvaluator{{"hand evaluator", compileHand}, {"cyclonus", compileCyclonus}}
}

func compileHand(t *testing.T, policies []*networkingv1.NetworkPolicy) netJudge {
	clear(selectorCache) // selectors may have been edited in place since
	return func(src, dst netPod, probe netProbe, ingress bool) bool {
		return handAllows(t, policies, src, dst, probe, ingress)
	}
}

// matrixStats counts what a matrix walked.
type matrixStats struct{ pairs, probes int }

// matrixMismatches evaluates every (source, destination, port) in both
// directions with ev and returns where the policies disagree with the
// expected matrix.
func matrixMismatches(t *testing.T, p *platformv1.ParserPlatform, policies []*networkingv1.NetworkPolicy, ev netEvaluator) ([]string, matrixStats) {
	t.Helper()
	pods := networkPods(t, p)
	all := append(slices.Clone(pods), outsidePods(t, p, pods)...)
	probes := probePorts(p, pods, policies)
	verdict := map[bool]string{true: "allowed", false: "denied"}
	judge := ev.compile(t, policies)
	var out []string
	var stats matrixStats
	for _, src := range all {
		for _, dst := range all {
			if src.name == dst.name || (!isPlatformPod(src) && !isPlatformPod(dst)) {
				continue // neither end is the platform's
			}
			stats.pairs++
			for _, probe := range probes {
				stats.probes++
				for _, ingress := range []bool{true, false} {
					want := expectedEgress(p, src, dst, probe)
					direction := "egress"
					if ingress {
						want, direction = expectedIngress(p, src, dst, probe), "ingress"
					}
					if got := judge(src, dst, probe, ingress); got != want {
						out = append(out, fmt.Sprintf("%s: %s -> %s:%s %s, want %s", direction, src.name, dst.name, probe, verdict[got], verdict[want]))
					}
				}
			}
		}
	}
	return out, stats
}

// networkVariants cover both brokers, no queues, a platform that moves the
// metrics port, the monitoring namespace and the gateway port, narrowed
// calls, restricted egress, and one whose names are long enough to be
// shortened.
func networkVariants() map[string]*platformv1.ParserPlatform {
	redis := samplePlatform()
	redis.Spec.Queues.Broker.Type = platformv1.BrokerRedis
	clustered := samplePlatform()
	clustered.Spec.Queues.Broker.Replicas = 3
	noQueues := samplePlatform()
	noQueues.Spec.Queues = nil
	moved := samplePlatform()
	moved.Spec.Monitoring.MetricsPort = 9100
	moved.Spec.Monitoring.Namespace = "observability"
	moved.Spec.Gateway.Port = 8443
	moved.Spec.Database.Shards = 2
	long := longPlatform() // names and label values shortened with a hash
	long.Spec.Queues.Queues[0].Name = "q" + strings.Repeat("z", 29)
	restricted := withCalls(samplePlatform())
	restricted.Spec.NetworkPolicy = &platformv1.NetworkPolicySpec{Egress: []string{allowedCIDR}}
	restrictedRedis := samplePlatform()
	restrictedRedis.Spec.Queues.Broker.Type = platformv1.BrokerRedis
	restrictedRedis.Spec.NetworkPolicy = &platformv1.NetworkPolicySpec{Egress: []string{allowedCIDR, "2001:db8::/32"}}
	return map[string]*platformv1.ParserPlatform{
		"sample (rabbitmq)": samplePlatform(), "redis broker": redis, "rabbitmq cluster": clustered,
		"no queues": noQueues, "moved ports": moved, "long names": long, "calls narrowed": withCalls(samplePlatform()),
		"egress restricted, calls narrowed": restricted, "egress restricted, redis broker": restrictedRedis,
	}
}

// withCalls narrows the sample's calls: auth calls nothing, comments calls
// auth, parser calls auth and itself, analytics keeps the default (all).
func withCalls(p *platformv1.ParserPlatform) *platformv1.ParserPlatform {
	p.Spec.Services[0].Calls = []string{}
	p.Spec.Services[1].Calls = []string{"auth"}
	p.Spec.Services[2].Calls = []string{"auth", "parser"}
	return p
}

func TestNetworkPoliciesAllowExactlyTheArchitecture(t *testing.T) {
	total := matrixStats{}
	for _, name := range slices.Sorted(maps.Keys(networkVariants())) {
		p := networkVariants()[name]
		for _, ev := range evaluators() {
			t.Run(name+"/"+ev.name, func(t *testing.T) {
				policies := NetworkPolicies(p, WithOperatorNamespace(testOperatorNamespace))
				bad, stats := matrixMismatches(t, p, policies, ev)
				if len(bad) > 0 {
					t.Errorf("%d verdicts differ from the architecture:\n  %s", len(bad), strings.Join(bad, "\n  "))
				}
				if ev.name == "cyclonus" {
					total.pairs += stats.pairs
					total.probes += stats.probes
				}
				t.Logf("%d pod pairs x %d ports = %d connections, each judged ingress and egress", stats.pairs, stats.probes/max(stats.pairs, 1), stats.probes)
			})
		}
	}
	t.Logf("all variants: %d pod pairs, %d (pair, port) connections, each judged ingress and egress by both evaluators", total.pairs, total.probes)
}

// TestNetworkPolicyMatrixCoversEveryWorkload guards the matrix against
// walking too little: every component must be there as a destination.
func TestNetworkPolicyMatrixCoversEveryWorkload(t *testing.T) {
	p := samplePlatform()
	count := map[string]int{}
	for _, pod := range networkPods(t, p) {
		count[pod.role]++
	}
	want := map[string]int{
		roleLB: 1, roleGateway: 1, roleService: len(p.Spec.Services), roleShard: 4,
		roleCache: 1, roleBroker: 1, roleWorker: len(p.Spec.Queues.Queues), roleBackup: 1,
	}
	if !maps.Equal(count, want) {
		t.Errorf("pods per role %v, want %v", count, want)
	}
}
