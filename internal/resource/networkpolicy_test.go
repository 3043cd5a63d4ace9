package resource

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
)

// The NetworkPolicy tests evaluate the rendered policies the way a network
// plugin does (Kubernetes NetworkPolicy semantics, ingress only) for every
// pair of pods the platform runs, plus pods from outside it, on every port
// any of them listens on, and compare the verdicts with the paths the
// architecture has (networkpolicy.go). Checking the rendered rules rather than
// the builder's inputs is what catches a selector that matches nothing, a
// rule that lets too much in, or a policy that was forgotten.

// netPod is a pod as a NetworkPolicy sees it.
type netPod struct {
	name      string // for messages: the workload, or a role outside it
	role      string // what the expected matrix reasons about
	namespace string
	nsLabels  map[string]string
	labels    map[string]string
	ports     []corev1.ContainerPort // for named ports in policies
}

// Roles of pods in the matrix.
const (
	roleLB         = "lb"
	roleGateway    = "gateway"
	roleService    = "service"
	roleShard      = "shard"
	roleCache      = "cache"
	roleBroker     = "broker"
	roleWorker     = "worker"
	roleOutside    = "outside"    // a pod in another namespace
	rolePrometheus = "prometheus" // a pod in the monitoring namespace
	roleImpostor   = "impostor"   // carries a platform pod's labels, in the wrong place
	roleOperator   = "operator"   // the operator's pod, in its own namespace
)

// policyAllows decides whether src may open a TCP connection to dst:port
// under policies, with Kubernetes semantics: a pod selected by an ingress
// policy of its namespace is isolated, and then only a rule of a selecting
// policy that matches both the peer and the port lets traffic in.
func policyAllows(t *testing.T, policies []*networkingv1.NetworkPolicy, src, dst netPod, port int32) bool {
	t.Helper()
	isolated := false
	for _, np := range policies {
		if np.Namespace != dst.namespace || !selectorMatches(t, &np.Spec.PodSelector, dst.labels) || !hasIngressType(np) {
			continue
		}
		isolated = true
		for _, rule := range np.Spec.Ingress {
			if peersMatch(t, np.Namespace, rule.From, src) && portsMatch(t, rule.Ports, dst, port) {
				return true
			}
		}
	}
	return !isolated
}

// hasIngressType: policyTypes left out means Ingress (plus Egress when the
// policy has egress rules).
func hasIngressType(np *networkingv1.NetworkPolicy) bool {
	return len(np.Spec.PolicyTypes) == 0 || slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress)
}

// peersMatch: no peers means every source; a peer with only a podSelector
// means pods of the policy's own namespace; a namespaceSelector means pods of
// the namespaces it selects (narrowed by a podSelector next to it).
func peersMatch(t *testing.T, policyNamespace string, from []networkingv1.NetworkPolicyPeer, src netPod) bool {
	t.Helper()
	if len(from) == 0 {
		return true
	}
	for _, peer := range from {
		if peer.IPBlock != nil {
			t.Fatalf("the evaluator does not model ipBlock peers: %+v", peer)
		}
		var nsOK bool
		if peer.NamespaceSelector == nil {
			nsOK = src.namespace == policyNamespace
		} else {
			nsOK = selectorMatches(t, peer.NamespaceSelector, src.nsLabels)
		}
		if nsOK && (peer.PodSelector == nil || selectorMatches(t, peer.PodSelector, src.labels)) {
			return true
		}
	}
	return false
}

// portsMatch: no ports means every port; a named port is looked up among the
// destination's container ports.
func portsMatch(t *testing.T, ports []networkingv1.NetworkPolicyPort, dst netPod, port int32) bool {
	t.Helper()
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		if ptr.Deref(p.Protocol, corev1.ProtocolTCP) != corev1.ProtocolTCP {
			continue
		}
		if p.Port == nil {
			return true
		}
		if p.Port.Type == intstr.String {
			for _, cp := range dst.ports {
				if cp.Name == p.Port.StrVal && cp.ContainerPort == port {
					return true
				}
			}
			continue
		}
		if port == p.Port.IntVal || (p.EndPort != nil && port >= p.Port.IntVal && port <= *p.EndPort) {
			return true
		}
	}
	return false
}

func selectorMatches(t *testing.T, sel *metav1.LabelSelector, l map[string]string) bool {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatalf("invalid label selector %+v: %v", sel, err)
	}
	return s.Matches(labels.Set(l))
}

// platformPods are one pod of every workload among the children (all pods
// of a workload carry the same labels), with the roles the matrix uses.
func networkPods(t *testing.T, p *platformv1.ParserPlatform) []netPod {
	t.Helper()
	nsLabels := map[string]string{corev1.LabelMetadataName: p.Namespace}
	templates := podTemplates(t, Children(p, credentialsFor(p)))
	var pods []netPod
	for _, name := range slices.Sorted(maps.Keys(templates)) {
		tmpl := templates[name]
		var role string
		switch c := tmpl.Labels[LabelComponent]; c {
		case ComponentLoadBalancer:
			role = roleLB
		case ComponentGateway:
			role = roleGateway
		case ComponentService:
			role = roleService
		case ComponentDatabase:
			role = roleShard
		case ComponentCache:
			role = roleCache
		case ComponentBroker:
			role = roleBroker
		case ComponentWorker:
			role = roleWorker
		default:
			t.Fatalf("%s: component %q has no role in the NetworkPolicy matrix", name, c)
		}
		var ports []corev1.ContainerPort
		for _, c := range tmpl.Spec.Containers {
			ports = append(ports, c.Ports...)
		}
		pods = append(pods, netPod{name: name, role: role, namespace: p.Namespace, nsLabels: nsLabels, labels: tmpl.Labels, ports: ports})
	}
	return pods
}

// outsidePods are sources that are not the platform's own pods.
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
	otherPlatform := maps.Clone(service.labels)
	otherPlatform[LabelInstance] = p.Name + "-other"
	return []netPod{
		{name: "outside", role: roleOutside, namespace: "elsewhere",
			nsLabels: map[string]string{corev1.LabelMetadataName: "elsewhere"}, labels: map[string]string{"app": "curl"}},
		{name: "prometheus", role: rolePrometheus, namespace: p.Spec.MonitoringNamespace(),
			nsLabels: map[string]string{corev1.LabelMetadataName: p.Spec.MonitoringNamespace()},
			labels:   map[string]string{LabelName: "prometheus"}},
		{name: "operator", role: roleOperator, namespace: "parser-operator-system",
			nsLabels: map[string]string{corev1.LabelMetadataName: "parser-operator-system"},
			labels:   map[string]string{LabelName: OperatorPodLabel}},
		// A service's labels in another namespace: a podSelector alone must
		// not reach across namespaces.
		{name: "service labels in another namespace", role: roleImpostor, namespace: "elsewhere",
			nsLabels: map[string]string{corev1.LabelMetadataName: "elsewhere"}, labels: service.labels},
		// Another platform's service in the same namespace.
		{name: "another platform's service", role: roleImpostor, namespace: p.Namespace,
			nsLabels: service.nsLabels, labels: otherPlatform},
	}
}

// expectedPath is the architecture: the only paths that may be open.
func expectedPath(p *platformv1.ParserPlatform, src, dst netPod, port int32) bool {
	app := src.role == roleService || src.role == roleWorker
	switch {
	case port == p.Spec.MetricsPort() && src.role == rolePrometheus:
		return true // the monitoring namespace scrapes every pod
	case dst.role == roleLB:
		return port == NginxListenPort // the entry point, from anywhere
	case dst.role == roleGateway:
		return src.role == roleLB && port == p.Spec.GatewayPort()
	case dst.role == roleService:
		return src.role == roleGateway && port == servicePortOf(p, dst)
	case dst.role == roleShard:
		return app && port == PostgresPort
	case dst.role == roleCache:
		return ((app || src.role == roleOperator) && port == RedisPort) ||
			(src.role == roleCache && (port == RedisPort || port == RedisClusterBus))
	case dst.role == roleBroker:
		client := brokerClientPort(p)
		if app && port == client {
			return true
		}
		rabbit := p.Spec.Queues.Broker.Type != platformv1.BrokerRedis
		return rabbit && ((src.role == roleBroker && (port == ErlangPortMapper || port == RabbitDistribution || port == AMQPPort)) ||
			(src.role == roleOperator && port == RabbitManagement))
	}
	return false
}

// servicePortOf is the port of the service whose pod dst is.
func servicePortOf(p *platformv1.ParserPlatform, dst netPod) int32 {
	for _, s := range p.Spec.Services {
		if dst.labels[LabelName] == Truncate(s.Name) {
			return s.Port
		}
	}
	return -1
}

// probePorts are every port any pod listens on or a policy names, and the
// platform's well-known ports.
func probePorts(p *platformv1.ParserPlatform, pods []netPod, policies []*networkingv1.NetworkPolicy) []int32 {
	set := map[int32]bool{
		NginxListenPort: true, p.Spec.GatewayPort(): true, p.Spec.MetricsPort(): true, p.Spec.LoadBalancer.Port: true,
		PostgresPort: true, RedisPort: true, RedisClusterBus: true, AMQPPort: true, RabbitManagement: true,
		ErlangPortMapper: true, RabbitDistribution: true, 15692: true, 80: true, 443: true,
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
		for _, rule := range np.Spec.Ingress {
			for _, port := range rule.Ports {
				if port.Port != nil && port.Port.Type == intstr.Int {
					set[port.Port.IntVal] = true
				}
			}
		}
	}
	delete(set, 0)
	return slices.Sorted(maps.Keys(set))
}

// matrixMismatches evaluates every (source, destination, port) and returns
// where the policies disagree with expectedPath.
func matrixMismatches(t *testing.T, p *platformv1.ParserPlatform, policies []*networkingv1.NetworkPolicy) []string {
	t.Helper()
	pods := networkPods(t, p)
	sources := append(slices.Clone(pods), outsidePods(t, p, pods)...)
	var out []string
	for _, dst := range pods {
		for _, src := range sources {
			for _, port := range probePorts(p, pods, policies) {
				got, want := policyAllows(t, policies, src, dst, port), expectedPath(p, src, dst, port)
				if got != want {
					verdict := map[bool]string{true: "allowed", false: "denied"}
					out = append(out, fmt.Sprintf("%s -> %s:%d %s, want %s", src.name, dst.name, port, verdict[got], verdict[want]))
				}
			}
		}
	}
	return out
}

// networkVariants cover both brokers, no queues, a platform that moves the
// metrics port, the monitoring namespace and the gateway port, and one whose
// names are long enough to be shortened.
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
	return map[string]*platformv1.ParserPlatform{
		"sample (rabbitmq)": samplePlatform(), "redis broker": redis, "rabbitmq cluster": clustered,
		"no queues": noQueues, "moved ports": moved, "long names": long,
	}
}

func TestNetworkPoliciesAllowExactlyTheArchitecture(t *testing.T) {
	for name, p := range networkVariants() {
		t.Run(name, func(t *testing.T) {
			policies := NetworkPolicies(p)
			if bad := matrixMismatches(t, p, policies); len(bad) > 0 {
				t.Errorf("%d paths differ from the architecture:\n  %s", len(bad), strings.Join(bad, "\n  "))
			}
		})
	}
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
		roleCache: 1, roleBroker: 1, roleWorker: len(p.Spec.Queues.Queues),
	}
	if !maps.Equal(count, want) {
		t.Errorf("pods per role %v, want %v", count, want)
	}
}

// TestNetworkPolicyMatrixSpotChecks names the paths of the issue one by one,
// so a wrong expectedPath cannot make the matrix agree with wrong policies.
func TestNetworkPolicyMatrixSpotChecks(t *testing.T) {
	p := samplePlatform()
	policies := NetworkPolicies(p)
	pods := networkPods(t, p)
	all := append(slices.Clone(pods), outsidePods(t, p, pods)...)
	pod := func(name string) netPod {
		t.Helper()
		for _, candidate := range all {
			if candidate.name == name {
				return candidate
			}
		}
		t.Fatalf("no pod %q", name)
		return netPod{}
	}
	for _, tc := range []struct {
		src, dst string
		port     int32
		allowed  bool
	}{
		{"outside", "Deployment/vk-lb", NginxListenPort, true},
		{"Deployment/vk-lb", "Deployment/vk-gateway", 8080, true},
		{"Deployment/vk-gateway", "Deployment/vk-auth", 8001, true},
		{"Deployment/vk-gateway", "Deployment/vk-analytics", 8004, true},
		{"Deployment/vk-comments", "StatefulSet/vk-db-3", PostgresPort, true},
		{"Deployment/vk-worker-parser", "StatefulSet/vk-db-0", PostgresPort, true},
		{"Deployment/vk-parser", "StatefulSet/vk-cache", RedisPort, true},
		{"StatefulSet/vk-cache", "StatefulSet/vk-cache", RedisClusterBus, true},
		{"Deployment/vk-worker-analytics", "StatefulSet/vk-broker", AMQPPort, true},
		{"Deployment/vk-auth", "StatefulSet/vk-broker", AMQPPort, true},
		{"StatefulSet/vk-broker", "StatefulSet/vk-broker", RabbitDistribution, true},
		{"prometheus", "Deployment/vk-auth", 9090, true},
		{"prometheus", "StatefulSet/vk-db-1", 9090, true},

		{"Deployment/vk-lb", "Deployment/vk-auth", 8001, false},
		{"Deployment/vk-gateway", "StatefulSet/vk-db-0", PostgresPort, false},
		{"Deployment/vk-gateway", "Deployment/vk-auth", 8002, false},
		{"outside", "Deployment/vk-gateway", 8080, false},
		{"outside", "StatefulSet/vk-db-0", PostgresPort, false},
		{"outside", "Deployment/vk-auth", 9090, false},
		{"Deployment/vk-auth", "Deployment/vk-comments", 8002, false},
		{"Deployment/vk-worker-parser", "Deployment/vk-gateway", 8080, false},
		{"Deployment/vk-lb", "StatefulSet/vk-cache", RedisPort, false},
		{"Deployment/vk-auth", "StatefulSet/vk-cache", RedisClusterBus, false},
		{"StatefulSet/vk-db-0", "StatefulSet/vk-db-1", PostgresPort, false},
		{"StatefulSet/vk-broker", "StatefulSet/vk-cache", RedisPort, false},
		{"Deployment/vk-auth", "StatefulSet/vk-broker", RabbitManagement, false},
		{"operator", "StatefulSet/vk-broker", RabbitManagement, true},
		{"operator", "StatefulSet/vk-broker", AMQPPort, false},
		{"outside", "StatefulSet/vk-broker", RabbitManagement, false},
		{"prometheus", "Deployment/vk-auth", 8001, false},
		{"service labels in another namespace", "StatefulSet/vk-db-0", PostgresPort, false},
		{"another platform's service", "StatefulSet/vk-db-0", PostgresPort, false},
	} {
		if got := policyAllows(t, policies, pod(tc.src), pod(tc.dst), tc.port); got != tc.allowed {
			t.Errorf("%s -> %s:%d allowed=%v, want %v", tc.src, tc.dst, tc.port, got, tc.allowed)
		}
	}
}

// TestNetworkPolicyMatrixCatchesBrokenPolicies is the negative control: the
// same matrix, on the operator's policies broken one way each, must report
// the path the break opens or closes.
func TestNetworkPolicyMatrixCatchesBrokenPolicies(t *testing.T) {
	byName := func(policies []*networkingv1.NetworkPolicy, suffix string) *networkingv1.NetworkPolicy {
		for _, np := range policies {
			if np.Name == "vk-"+suffix {
				return np
			}
		}
		t.Fatalf("no NetworkPolicy vk-%s", suffix)
		return nil
	}
	for _, tc := range []struct {
		name    string
		breakIt func([]*networkingv1.NetworkPolicy) []*networkingv1.NetworkPolicy
		want    string // one of the mismatches the break must cause
	}{{
		name: "database policy removed",
		breakIt: func(nps []*networkingv1.NetworkPolicy) []*networkingv1.NetworkPolicy {
			db := byName(nps, "database")
			return slices.DeleteFunc(nps, func(np *networkingv1.NetworkPolicy) bool { return np == db })
		},
		want: "Deployment/vk-auth -> StatefulSet/vk-db-0:5432 denied, want allowed",
	}, {
		name: "every policy removed: nothing is isolated",
		breakIt: func([]*networkingv1.NetworkPolicy) []*networkingv1.NetworkPolicy {
			return nil
		},
		want: "outside -> StatefulSet/vk-db-0:5432 allowed, want denied",
	}, {
		name: "database peers dropped: open to anyone",
		breakIt: func(nps []*networkingv1.NetworkPolicy) []*networkingv1.NetworkPolicy {
			byName(nps, "database").Spec.Ingress[0].From = nil
			return nps
		},
		want: "Deployment/vk-gateway -> StatefulSet/vk-db-0:5432 allowed, want denied",
	}, {
		name: "cache ports dropped: every port open to apps",
		breakIt: func(nps []*networkingv1.NetworkPolicy) []*networkingv1.NetworkPolicy {
			byName(nps, "cache").Spec.Ingress[0].Ports = nil
			return nps
		},
		want: "Deployment/vk-auth -> StatefulSet/vk-cache:16379 allowed, want denied",
	}, {
		name: "the operator's rule on the broker dropped",
		breakIt: func(nps []*networkingv1.NetworkPolicy) []*networkingv1.NetworkPolicy {
			broker := byName(nps, "broker")
			broker.Spec.Ingress = broker.Spec.Ingress[:len(broker.Spec.Ingress)-1]
			return nps
		},
		want: "operator -> StatefulSet/vk-broker:15672 denied, want allowed",
	}, {
		name: "gateway peer widened to a namespace selector",
		breakIt: func(nps []*networkingv1.NetworkPolicy) []*networkingv1.NetworkPolicy {
			byName(nps, "gateway").Spec.Ingress[0].From = []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{}}}
			return nps
		},
		want: "outside -> Deployment/vk-gateway:8080 allowed, want denied",
	}, {
		name: "metrics policy scoped to the wrong namespace",
		breakIt: func(nps []*networkingv1.NetworkPolicy) []*networkingv1.NetworkPolicy {
			byName(nps, "metrics").Spec.Ingress[0].From[0].NamespaceSelector.MatchLabels[corev1.LabelMetadataName] = "kube-system"
			return nps
		},
		want: "prometheus -> Deployment/vk-auth:9090 denied, want allowed",
	}, {
		name: "policy type Egress only: the pods are no longer isolated",
		breakIt: func(nps []*networkingv1.NetworkPolicy) []*networkingv1.NetworkPolicy {
			for _, np := range nps {
				if np.Spec.PodSelector.MatchExpressions == nil || slices.Contains(np.Spec.PodSelector.MatchExpressions[0].Values, ComponentBroker) {
					np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
				}
			}
			return nps
		},
		want: "outside -> StatefulSet/vk-broker:5672 allowed, want denied",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			p := samplePlatform()
			bad := matrixMismatches(t, p, tc.breakIt(NetworkPolicies(p)))
			if !slices.Contains(bad, tc.want) {
				t.Errorf("the matrix did not report %q; it reported %d mismatches:\n  %s", tc.want, len(bad), strings.Join(bad, "\n  "))
			}
		})
	}
}

// TestNetworkPoliciesFollowQueues: the broker's policy exists only with a
// broker, and every policy is ingress-only (egress stays open for DNS and
// the parser's outbound requests).
func TestNetworkPoliciesFollowQueues(t *testing.T) {
	for _, tc := range []struct {
		name   string
		queues *platformv1.QueuesSpec
		broker bool
	}{
		{"queues nil", nil, false},
		{"queues empty", &platformv1.QueuesSpec{Workers: platformv1.WorkersSpec{Image: "w:1"}}, false},
		{"queues declared", samplePlatform().Spec.Queues, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := samplePlatform()
			p.Spec.Queues = tc.queues
			var names []string
			for _, np := range NetworkPolicies(p) {
				names = append(names, np.Name)
				if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) || np.Spec.Egress != nil {
					t.Errorf("%s: policyTypes %v, egress %v; want ingress only", np.Name, np.Spec.PolicyTypes, np.Spec.Egress)
				}
				if np.Namespace != p.Namespace {
					t.Errorf("%s: namespace %q, want %q", np.Name, np.Namespace, p.Namespace)
				}
			}
			if got := slices.Contains(names, "vk-broker"); got != tc.broker {
				t.Errorf("NetworkPolicy vk-broker present=%v, want %v (policies %v)", got, tc.broker, names)
			}
			if len(slices.Compact(slices.Sorted(slices.Values(names)))) != len(names) {
				t.Errorf("duplicate NetworkPolicy names: %v", names)
			}
		})
	}
}

// TestBackupJobsReachOnlyTheShards: the pods of backup and restore Jobs
// (not in the matrix: they are not children of the platform) may open the
// shards' PostgreSQL port, and nothing else of the platform.
func TestBackupJobsReachOnlyTheShards(t *testing.T) {
	p := samplePlatform()
	p.Spec.Database.Restore = &platformv1.RestoreSpec{
		ObjectStore: platformv1.ObjectStoreSpec{Endpoint: "s3.example.com", Bucket: "backups"}, BackupSet: "latest",
	}
	policies := NetworkPolicies(p)
	nsLabels := map[string]string{corev1.LabelMetadataName: p.Namespace}
	job := ShardRestoreJob(p, "parser-operator:test", "20261201T000000Z-000000", 0)
	jobPod := netPod{name: "restore job", role: "backup", namespace: p.Namespace, nsLabels: nsLabels, labels: job.Spec.Template.Labels}
	for _, dst := range networkPods(t, p) {
		for _, port := range []int32{PostgresPort, RedisPort, AMQPPort, 8001} {
			want := dst.role == roleShard && port == PostgresPort
			if got := policyAllows(t, policies, jobPod, dst, port); got != want {
				t.Errorf("restore Job -> %s:%d allowed=%v, want %v", dst.name, port, got, want)
			}
		}
	}
}
