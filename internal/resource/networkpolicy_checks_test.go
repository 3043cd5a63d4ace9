package resource

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
)

// spotPods are the sample's pods and outside peers by name.
func spotPods(t *testing.T, p *platformv1.ParserPlatform) func(string) netPod {
	pods := networkPods(t, p)
	all := append(slices.Clone(pods), outsidePods(t, p, pods)...)
	return func(name string) netPod {
		t.Helper()
		for _, candidate := range all {
			if candidate.name == name {
				return candidate
			}
		}
		t.Fatalf("no pod %q", name)
		return netPod{}
	}
}

type spotCheck struct {
	src, dst string
	probe    netProbe
	allowed  bool // the connection: egress of src and ingress of dst
}

func tcp(port int32) netProbe { return netProbe{port, corev1.ProtocolTCP} }

// runSpotChecks judges each connection with both evaluators.
func runSpotChecks(t *testing.T, p *platformv1.ParserPlatform, checks []spotCheck) {
	t.Helper()
	pod := spotPods(t, p)
	for _, ev := range evaluators() {
		judge := ev.compile(t, NetworkPolicies(p, WithOperatorNamespace(testOperatorNamespace)))
		for _, tc := range checks {
			src, dst := pod(tc.src), pod(tc.dst)
			if got := judge(src, dst, tc.probe, false) && judge(src, dst, tc.probe, true); got != tc.allowed {
				t.Errorf("%s: %s -> %s:%s allowed=%v, want %v", ev.name, tc.src, tc.dst, tc.probe, got, tc.allowed)
			}
		}
	}
}

// TestNetworkPolicyMatrixSpotChecks names the paths one by one, so a wrong
// expected matrix cannot agree with wrong policies.
func TestNetworkPolicyMatrixSpotChecks(t *testing.T) {
	runSpotChecks(t, samplePlatform(), []spotCheck{
		{"outside", "Deployment/vk-lb", tcp(NginxListenPort), true},
		{"internet", "Deployment/vk-lb", tcp(NginxListenPort), true},
		{"Deployment/vk-lb", "Deployment/vk-gateway", tcp(8080), true},
		{"Deployment/vk-gateway", "Deployment/vk-auth", tcp(8001), true},
		{"Deployment/vk-gateway", "Deployment/vk-analytics", tcp(8004), true},
		{"Deployment/vk-auth", "Deployment/vk-comments", tcp(8002), true}, // services call one another
		{"Deployment/vk-parser", "Deployment/vk-parser", tcp(8003), true},
		{"Deployment/vk-comments", "StatefulSet/vk-db-3", tcp(PostgresPort), true},
		{"Deployment/vk-worker-parser", "StatefulSet/vk-db-0", tcp(PostgresPort), true},
		{"Job/vk-restore-db-0", "StatefulSet/vk-db-0", tcp(PostgresPort), true},
		{"Deployment/vk-parser", "StatefulSet/vk-cache", tcp(RedisPort), true},
		{"StatefulSet/vk-cache", "StatefulSet/vk-cache", tcp(RedisClusterBus), true},
		{"Deployment/vk-worker-analytics", "StatefulSet/vk-broker", tcp(AMQPPort), true},
		{"StatefulSet/vk-broker", "StatefulSet/vk-broker", tcp(RabbitDistribution), true},
		{"operator", "StatefulSet/vk-cache", tcp(RedisPort), true},
		{"operator", "StatefulSet/vk-broker", tcp(RabbitManagement), true},
		{"prometheus", "Deployment/vk-auth", tcp(9090), true},
		{"prometheus", "Deployment/vk-worker-parser", tcp(9090), true},
		{"prometheus", "Deployment/vk-gateway", tcp(9090), true},
		{"StatefulSet/vk-db-0", "kube-dns", netProbe{DNSPort, corev1.ProtocolUDP}, true},
		{"StatefulSet/vk-broker", "kube-dns", tcp(DNSPort), true},
		{"Deployment/vk-parser", "internet", tcp(443), true}, // app egress open by default

		{"Deployment/vk-lb", "Deployment/vk-auth", tcp(8001), false},
		{"Deployment/vk-gateway", "StatefulSet/vk-db-0", tcp(PostgresPort), false},
		{"Deployment/vk-gateway", "Deployment/vk-auth", tcp(8002), false},
		{"Deployment/vk-auth", "Deployment/vk-comments", tcp(8001), false},
		{"outside", "Deployment/vk-gateway", tcp(8080), false},
		{"outside", "StatefulSet/vk-db-0", tcp(PostgresPort), false},
		{"outside", "Deployment/vk-auth", tcp(9090), false},
		{"Deployment/vk-worker-parser", "Deployment/vk-auth", tcp(8001), false},
		{"Deployment/vk-worker-parser", "Deployment/vk-gateway", tcp(8080), false},
		{"Deployment/vk-lb", "StatefulSet/vk-cache", tcp(RedisPort), false},
		{"Deployment/vk-auth", "StatefulSet/vk-cache", tcp(RedisClusterBus), false},
		{"StatefulSet/vk-db-0", "StatefulSet/vk-db-1", tcp(PostgresPort), false},
		{"StatefulSet/vk-broker", "StatefulSet/vk-cache", tcp(RedisPort), false},
		{"Deployment/vk-auth", "StatefulSet/vk-broker", tcp(RabbitManagement), false},
		{"Job/vk-restore-db-0", "StatefulSet/vk-cache", tcp(RedisPort), false},
		{"Deployment/vk-auth", "Job/vk-restore-db-0", tcp(8001), false},
		{"operator", "StatefulSet/vk-broker", tcp(AMQPPort), false},
		{"operator", "StatefulSet/vk-db-0", tcp(PostgresPort), false},
		{"outside", "StatefulSet/vk-broker", tcp(RabbitManagement), false},
		{"prometheus", "Deployment/vk-auth", tcp(8001), false},
		{"prometheus", "StatefulSet/vk-db-1", tcp(9090), false}, // not a metrics port of the shards
		{"prometheus", "StatefulSet/vk-db-1", tcp(PostgresPort), false},
		{"prometheus", "StatefulSet/vk-broker", tcp(AMQPPort), false},
		{"operator labels in another namespace", "StatefulSet/vk-cache", tcp(RedisPort), false},
		{"operator labels in another namespace", "StatefulSet/vk-broker", tcp(RabbitManagement), false},
		{"old operator label in the operator's namespace", "StatefulSet/vk-cache", tcp(RedisPort), false},
		{"service labels in another namespace", "StatefulSet/vk-db-0", tcp(PostgresPort), false},
		{"another platform's service", "StatefulSet/vk-db-0", tcp(PostgresPort), false},
		{"StatefulSet/vk-db-0", "internet", tcp(443), false},
		{"StatefulSet/vk-cache", "cloud metadata", tcp(80), false},
		{"StatefulSet/vk-broker", "cloud metadata", tcp(80), false},
		{"StatefulSet/vk-db-0", "kube-dns labels in another namespace", netProbe{DNSPort, corev1.ProtocolUDP}, false},
		{"StatefulSet/vk-db-0", "operator", tcp(8443), false},
	})
}

// TestNetworkPolicyCallsAndEgressSpotChecks: services[].calls narrows who
// calls whom, and spec.networkPolicy.egress closes the application pods'
// open egress down to the CIDRs, DNS and the platform's own paths.
func TestNetworkPolicyCallsAndEgressSpotChecks(t *testing.T) {
	p := withCalls(samplePlatform())
	p.Spec.NetworkPolicy = &platformv1.NetworkPolicySpec{Egress: []string{allowedCIDR}}
	runSpotChecks(t, p, []spotCheck{
		{"Deployment/vk-comments", "Deployment/vk-auth", tcp(8001), true},
		{"Deployment/vk-parser", "Deployment/vk-parser", tcp(8003), true},
		{"Deployment/vk-analytics", "Deployment/vk-comments", tcp(8002), true}, // no calls: every service
		{"Deployment/vk-gateway", "Deployment/vk-auth", tcp(8001), true},       // the gateway is not narrowed
		{"Deployment/vk-parser", "internet (allowed CIDR)", tcp(443), true},
		{"Job/vk-restore-db-0", "internet (allowed CIDR)", tcp(443), true}, // the object store, when listed
		{"Deployment/vk-worker-parser", "StatefulSet/vk-broker", tcp(AMQPPort), true},
		{"Deployment/vk-lb", "Deployment/vk-gateway", tcp(8080), true},
		{"Deployment/vk-auth", "kube-dns", netProbe{DNSPort, corev1.ProtocolUDP}, true},

		{"Deployment/vk-auth", "Deployment/vk-comments", tcp(8002), false}, // calls: []
		{"Deployment/vk-comments", "Deployment/vk-parser", tcp(8003), false},
		{"Deployment/vk-parser", "Deployment/vk-analytics", tcp(8004), false},
		{"Deployment/vk-parser", "internet", tcp(443), false},
		{"Deployment/vk-parser", "cloud metadata", tcp(80), false},
		{"Job/vk-restore-db-0", "internet", tcp(443), false},
		{"Deployment/vk-worker-parser", "outside", tcp(80), false},
		{"Deployment/vk-lb", "Deployment/vk-auth", tcp(8001), false},
	})
}

// TestNetworkPolicyMatrixCatchesBrokenPolicies is the negative control: the
// same matrix, on the operator's policies broken one way each, must report
// the path the break opens or closes, whichever evaluator judges.
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
		want: "egress: StatefulSet/vk-db-0 -> internet:443 allowed, want denied",
	}, {
		name:    "every policy removed: nothing is isolated",
		breakIt: func([]*networkingv1.NetworkPolicy) []*networkingv1.NetworkPolicy { return nil },
		want:    "ingress: outside -> StatefulSet/vk-db-0:5432 allowed, want denied",
	}, {
		name: "database peers dropped: open to anyone",
		breakIt: func(nps []*networkingv1.NetworkPolicy) []*networkingv1.NetworkPolicy {
			byName(nps, "database").Spec.Ingress[0].From = nil
			return nps
		},
		want: "ingress: Deployment/vk-gateway -> StatefulSet/vk-db-0:5432 allowed, want denied",
	}, {
		name: "cache ports dropped: every port open to apps",
		breakIt: func(nps []*networkingv1.NetworkPolicy) []*networkingv1.NetworkPolicy {
			byName(nps, "cache").Spec.Ingress[0].Ports = nil
			return nps
		},
		want: "ingress: Deployment/vk-auth -> StatefulSet/vk-cache:16379 allowed, want denied",
	}, {
		name: "the operator's rule on the broker dropped",
		breakIt: func(nps []*networkingv1.NetworkPolicy) []*networkingv1.NetworkPolicy {
			broker := byName(nps, "broker")
			broker.Spec.Ingress = broker.Spec.Ingress[:len(broker.Spec.Ingress)-1]
			return nps
		},
		want: "ingress: operator -> StatefulSet/vk-broker:15672 denied, want allowed",
	}, {
		name: "the operator let in from any namespace (the old rule)",
		breakIt: func(nps []*networkingv1.NetworkPolicy) []*networkingv1.NetworkPolicy {
			byName(nps, "cache").Spec.Ingress[2].From[0].NamespaceSelector = &metav1.LabelSelector{}
			return nps
		},
		want: "ingress: operator labels in another namespace -> StatefulSet/vk-cache:6379 allowed, want denied",
	}, {
		name: "gateway peer widened to a namespace selector",
		breakIt: func(nps []*networkingv1.NetworkPolicy) []*networkingv1.NetworkPolicy {
			byName(nps, "gateway").Spec.Ingress[0].From = []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{}}}
			return nps
		},
		want: "ingress: outside -> Deployment/vk-gateway:8080 allowed, want denied",
	}, {
		name: "service-to-service rule dropped",
		breakIt: func(nps []*networkingv1.NetworkPolicy) []*networkingv1.NetworkPolicy {
			comments := byName(nps, "service-comments")
			comments.Spec.Ingress = comments.Spec.Ingress[:1]
			return nps
		},
		want: "ingress: Deployment/vk-auth -> Deployment/vk-comments:8002 denied, want allowed",
	}, {
		name: "metrics policy scoped to the wrong namespace",
		breakIt: func(nps []*networkingv1.NetworkPolicy) []*networkingv1.NetworkPolicy {
			byName(nps, "metrics").Spec.Ingress[0].From[0].NamespaceSelector.MatchLabels[corev1.LabelMetadataName] = "kube-system"
			return nps
		},
		want: "ingress: prometheus -> Deployment/vk-auth:9090 denied, want allowed",
	}, {
		name: "metrics opened by number on every pod (the old rule, with metricsPort 5432)",
		breakIt: func(nps []*networkingv1.NetworkPolicy) []*networkingv1.NetworkPolicy {
			byName(nps, "metrics").Spec.Ingress[0].Ports = tcpPorts(PostgresPort)
			return nps
		},
		want: "ingress: prometheus -> StatefulSet/vk-db-0:5432 allowed, want denied",
	}, {
		name: "DNS rule dropped from the cache",
		breakIt: func(nps []*networkingv1.NetworkPolicy) []*networkingv1.NetworkPolicy {
			cache := byName(nps, "cache")
			cache.Spec.Egress = cache.Spec.Egress[:1]
			return nps
		},
		want: "egress: StatefulSet/vk-cache -> kube-dns:53/UDP denied, want allowed",
	}, {
		name: "policy type Egress dropped from the broker: its egress opens",
		breakIt: func(nps []*networkingv1.NetworkPolicy) []*networkingv1.NetworkPolicy {
			byName(nps, "broker").Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
			return nps
		},
		want: "egress: StatefulSet/vk-broker -> cloud metadata:80 allowed, want denied",
	}, {
		name: "policy type Egress only on every policy: ingress is no longer isolated",
		breakIt: func(nps []*networkingv1.NetworkPolicy) []*networkingv1.NetworkPolicy {
			for _, np := range nps {
				np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
			}
			return nps
		},
		want: "ingress: outside -> StatefulSet/vk-broker:5672 allowed, want denied",
	}} {
		for _, ev := range evaluators() {
			t.Run(tc.name+"/"+ev.name, func(t *testing.T) {
				p := samplePlatform()
				bad, _ := matrixMismatches(t, p, tc.breakIt(NetworkPolicies(p, WithOperatorNamespace(testOperatorNamespace))), ev)
				if !slices.Contains(bad, tc.want) {
					t.Errorf("the matrix did not report %q; it reported %d mismatches:\n  %s", tc.want, len(bad), strings.Join(bad, "\n  "))
				}
			})
		}
	}
}

// TestNetworkPoliciesFollowTheSpec: the broker's policy exists only with a
// broker; application pods get egress rules only with
// spec.networkPolicy.egress; the stateful tier always has them.
func TestNetworkPoliciesFollowTheSpec(t *testing.T) {
	restricted := samplePlatform()
	restricted.Spec.NetworkPolicy = &platformv1.NetworkPolicySpec{Egress: []string{allowedCIDR}}
	for _, tc := range []struct {
		name       string
		p          *platformv1.ParserPlatform
		broker     bool
		restricted bool
	}{
		{"queues nil", func() *platformv1.ParserPlatform { p := samplePlatform(); p.Spec.Queues = nil; return p }(), false, false},
		{"queues empty", func() *platformv1.ParserPlatform {
			p := samplePlatform()
			p.Spec.Queues = &platformv1.QueuesSpec{Workers: platformv1.WorkersSpec{Image: "w:1"}}
			return p
		}(), false, false},
		{"queues declared", samplePlatform(), true, false},
		{"egress restricted", restricted, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var names []string
			for _, np := range NetworkPolicies(tc.p) {
				names = append(names, np.Name)
				egress := slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
				stateful := slices.Contains([]string{"vk-database", "vk-cache", "vk-broker"}, np.Name)
				if stateful && !egress {
					t.Errorf("%s: policyTypes %v, want Egress too", np.Name, np.Spec.PolicyTypes)
				}
				if !stateful && egress && !tc.restricted {
					t.Errorf("%s: policyTypes %v: application pods' egress must stay open", np.Name, np.Spec.PolicyTypes)
				}
				if np.Namespace != tc.p.Namespace {
					t.Errorf("%s: namespace %q, want %q", np.Name, np.Namespace, tc.p.Namespace)
				}
			}
			if got := slices.Contains(names, "vk-broker"); got != tc.broker {
				t.Errorf("NetworkPolicy vk-broker present=%v, want %v (policies %v)", got, tc.broker, names)
			}
			if got := slices.Contains(names, "vk-egress"); got != tc.restricted {
				t.Errorf("NetworkPolicy vk-egress present=%v, want %v (policies %v)", got, tc.restricted, names)
			}
			if len(slices.Compact(slices.Sorted(slices.Values(names)))) != len(names) {
				t.Errorf("duplicate NetworkPolicy names: %v", names)
			}
		})
	}
}

// TestOperatorPeerFollowsItsNamespace: the operator is let in from the
// namespace it says it runs in, by the label the chart and kustomize set.
func TestOperatorPeerFollowsItsNamespace(t *testing.T) {
	for ns, want := range map[string]string{"": DefaultOperatorNamespace, "platform-ops": "platform-ops"} {
		peer := OperatorPeer(options([]Option{WithOperatorNamespace(ns)}).operatorNamespace)
		if got := peer.NamespaceSelector.MatchLabels[corev1.LabelMetadataName]; got != want {
			t.Errorf("WithOperatorNamespace(%q): namespace %q, want %q", ns, got, want)
		}
		if got := peer.PodSelector.MatchLabels; len(got) != 1 || got[OperatorPodLabel] != OperatorPodLabelValue {
			t.Errorf("operator pod selector %v, want only %s=%s", got, OperatorPodLabel, OperatorPodLabelValue)
		}
	}
}
