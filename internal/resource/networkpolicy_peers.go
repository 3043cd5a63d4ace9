package resource

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
)

// OperatorPodLabel marks the operator's pods. The Helm chart and kustomize
// set it on the operator's pod template whatever the release name,
// nameOverride or podLabels, so the cache's and the broker's policies find
// the operator however it was installed (app.kubernetes.io/name follows
// nameOverride, which is why it is not used).
const (
	OperatorPodLabel      = "platform.vkparser.io/operator"
	OperatorPodLabelValue = "true"
)

// DefaultOperatorNamespace is where kustomize and the README's helm install
// put the operator; builders use it when the caller does not say.
const DefaultOperatorNamespace = "parser-operator-system"

// OperatorPeer is the operator's pods in the operator's namespace only: a
// pod wearing the label elsewhere is not let in.
func OperatorPeer(namespace string) networkingv1.NetworkPolicyPeer {
	peer := namespacePeer(namespace)
	peer.PodSelector = &metav1.LabelSelector{MatchLabels: map[string]string{OperatorPodLabel: OperatorPodLabelValue}}
	return peer
}

// namespacePeer is every pod of one namespace, by the name label the API
// server sets on every namespace (it cannot be forged by namespace owners).
func namespacePeer(namespace string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{
		MatchLabels: map[string]string{corev1.LabelMetadataName: namespace},
	}}
}

// Option adjusts what the builders know beyond the ParserPlatform.
type Option func(*buildOptions)

type buildOptions struct {
	operatorNamespace string
}

// WithOperatorNamespace is the namespace the operator runs in; the policies
// let the operator's pods in from there only.
func WithOperatorNamespace(namespace string) Option {
	return func(o *buildOptions) {
		if namespace != "" {
			o.operatorNamespace = namespace
		}
	}
}

func options(opts []Option) buildOptions {
	o := buildOptions{operatorNamespace: DefaultOperatorNamespace}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// DNSPeer is the cluster DNS: the kube-dns pods of kube-system (CoreDNS
// keeps that label on kubeadm, GKE, EKS, AKS, k3s and kind).
func DNSPeer() networkingv1.NetworkPolicyPeer {
	peer := namespacePeer(metav1.NamespaceSystem)
	peer.PodSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"k8s-app": "kube-dns"}}
	return peer
}

// DNSPort is where the cluster DNS answers, over UDP and TCP.
const DNSPort int32 = 53

func dnsEgress() networkingv1.NetworkPolicyEgressRule {
	return networkingv1.NetworkPolicyEgressRule{
		To: []networkingv1.NetworkPolicyPeer{DNSPeer()},
		Ports: []networkingv1.NetworkPolicyPort{
			{Protocol: ptr.To(corev1.ProtocolUDP), Port: ptr.To(intstr.FromInt32(DNSPort))},
			{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(DNSPort))},
		},
	}
}

func egressTo(pods *metav1.LabelSelector, ports ...int32) networkingv1.NetworkPolicyEgressRule {
	return networkingv1.NetworkPolicyEgressRule{To: peers(pods), Ports: tcpPorts(ports...)}
}

// denyAll as the ingress of a policy isolates its pods and lets nothing in.
var denyAll = []networkingv1.NetworkPolicyIngressRule{}

// build makes one policy. Its types follow what it holds: Ingress when
// ingress is non-nil (denyAll: isolated, nothing let in), Egress when egress
// is non-nil, so a pod's egress stays open unless a policy says otherwise.
func (b *policyBuilder) build(name string, pods *metav1.LabelSelector, ingress []networkingv1.NetworkPolicyIngressRule, egress []networkingv1.NetworkPolicyEgressRule) *networkingv1.NetworkPolicy {
	var types []networkingv1.PolicyType
	if ingress != nil {
		types = append(types, networkingv1.PolicyTypeIngress)
	}
	if egress != nil {
		types = append(types, networkingv1.PolicyTypeEgress)
	}
	if len(ingress) == 0 {
		ingress = nil
	}
	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: objectMeta(b.p, Name(b.p.Name, name), "network-policy", "network-policy"),
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: *pods, PolicyTypes: types, Ingress: ingress, Egress: egress,
		},
	}
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

// servicePods are the pods of one service of the spec.
func servicePods(p *platformv1.ParserPlatform, service string) *metav1.LabelSelector {
	pods := componentPods(p, ComponentService)
	pods.MatchLabels[LabelName] = Truncate(service)
	return pods
}

func peers(pods ...*metav1.LabelSelector) []networkingv1.NetworkPolicyPeer {
	out := make([]networkingv1.NetworkPolicyPeer, 0, len(pods))
	for _, sel := range pods {
		out = append(out, networkingv1.NetworkPolicyPeer{PodSelector: sel})
	}
	return out
}

func tcpPorts(ports ...int32) []networkingv1.NetworkPolicyPort {
	out := make([]networkingv1.NetworkPolicyPort, 0, len(ports))
	for _, port := range ports {
		out = append(out, networkingv1.NetworkPolicyPort{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(port))})
	}
	return out
}
