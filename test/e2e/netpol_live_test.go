//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/mattfenwick/cyclonus/pkg/matcher"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// The simulated cluster stores NetworkPolicies but enforces none (no network
// plugin), so what they let through is judged here: the policies, the pods
// and the namespaces' labels as the API server holds them, given to the
// upstream NetworkPolicy engine, the matcher of github.com/mattfenwick/cyclonus
// (which internal/resource's matrix tests also use, on built objects).

// liveNetwork is the cluster's NetworkPolicies (every namespace: the
// source's egress policies count as much as the destination's ingress) and
// namespace labels, read once.
type liveNetwork struct {
	engine   *matcher.Policy
	nsLabels map[string]map[string]string
	policies []string // namespace/name of every policy judged
}

func readLiveNetwork(ctx context.Context) (*liveNetwork, error) {
	nps, err := clients.NetworkingV1().NetworkPolicies("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	nss, err := clients.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	n := &liveNetwork{nsLabels: map[string]map[string]string{}}
	for _, ns := range nss.Items {
		n.nsLabels[ns.Name] = ns.Labels
	}
	policies := make([]*networkingv1.NetworkPolicy, 0, len(nps.Items))
	for i := range nps.Items {
		// Stored objects have their policyTypes defaulted by the API server,
		// which the engine needs. Not simplified: each rule judged as written.
		policies = append(policies, nps.Items[i].DeepCopy())
		n.policies = append(n.policies, nps.Items[i].Namespace+"/"+nps.Items[i].Name)
	}
	n.engine = matcher.BuildNetworkPolicies(false, policies)
	return n, nil
}

// peer is a live pod as the engine sees it: its labels, its namespace and
// that namespace's labels (kubernetes.io/metadata.name set by the API server).
func (n *liveNetwork) peer(pod *corev1.Pod) *matcher.TrafficPeer {
	return &matcher.TrafficPeer{IP: pod.Status.PodIP, Internal: &matcher.InternalPeer{
		PodLabels: pod.Labels, NamespaceLabels: n.nsLabels[pod.Namespace], Namespace: pod.Namespace,
	}}
}

// judge: may src open a TCP connection to dst's port? Both the egress of
// src and the ingress of dst must allow it. The second value explains a
// verdict (the traffic and the policies that allowed or denied it).
func (n *liveNetwork) judge(src, dst *corev1.Pod, port int32) (bool, string) {
	t := &matcher.Traffic{
		Source:           n.peer(src),
		Destination:      n.peer(dst),
		ResolvedPort:     int(port),
		ResolvedPortName: containerPortName(dst, port),
		Protocol:         corev1.ProtocolTCP,
	}
	r := n.engine.IsTrafficAllowed(t)
	return r.IsAllowed(), t.Table() + r.Table()
}

// containerPortName is the name dst's containers give port, for policies
// that name ports ("" when none declares it).
func containerPortName(pod *corev1.Pod, port int32) string {
	for _, c := range pod.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.ContainerPort == port && cp.Protocol != corev1.ProtocolUDP && cp.Protocol != corev1.ProtocolSCTP {
				return cp.Name
			}
		}
	}
	return ""
}

// policyTally counts the pod/port pairs judged, by expected verdict.
type policyTally struct {
	allowed, refused int
	// by is "what -> what" -> pairs judged, for the printed figures.
	by    map[string]int
	order []string
}

// expect judges every (src, dst, port) of the lists and fails with the
// engine's explanation on the first verdict that is not want.
func (t *policyTally) expect(n *liveNetwork, what string, srcs, dsts []corev1.Pod, ports []int32, want bool) {
	GinkgoHelper()
	Expect(srcs).NotTo(BeEmpty(), "%s: no source pod", what)
	Expect(dsts).NotTo(BeEmpty(), "%s: no destination pod", what)
	if t.by == nil {
		t.by = map[string]int{}
	}
	for i := range srcs {
		for j := range dsts {
			for _, port := range ports {
				got, why := n.judge(&srcs[i], &dsts[j], port)
				Expect(got).To(Equal(want), "%s: %s/%s -> %s/%s:%d allowed=%v, want %v\n%s",
					what, srcs[i].Namespace, srcs[i].Name, dsts[j].Namespace, dsts[j].Name, port, got, want, why)
				if want {
					t.allowed++
				} else {
					t.refused++
				}
				if _, ok := t.by[what]; !ok {
					t.order = append(t.order, what)
				}
				t.by[what]++
			}
		}
	}
}

func (t *policyTally) String() string {
	s := fmt.Sprintf("%d pod/port pairs judged: %d allowed, %d refused, as expected", t.allowed+t.refused, t.allowed, t.refused)
	for _, what := range t.order {
		s += fmt.Sprintf("\n  %4d  %s", t.by[what], what)
	}
	return s
}

// livePods lists the pods of ns matching selector, failing on none.
func livePods(ctx context.Context, ns, selector string) []corev1.Pod {
	GinkgoHelper()
	pods, err := clients.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	Expect(err).NotTo(HaveOccurred())
	Expect(pods.Items).NotTo(BeEmpty(), "no pod in %s matches %q", ns, selector)
	return pods.Items
}

// impostor is a pod that is not the operator but wears labels of it.
type impostor struct {
	namespace, name string
	labels          map[string]string
}

// createImpostors creates the pods (kwok's: Running with an IP, no
// process), under Pod Security restricted wherever they go, waits for their
// IPs and returns them as the API server holds them. They are deleted, and
// waited for, when the spec ends, so later specs count no stranger pods.
func createImpostors(ctx context.Context, imps ...impostor) []corev1.Pod {
	GinkgoHelper()
	for _, imp := range imps {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: imp.name, Namespace: imp.namespace, Labels: imp.labels},
			Spec: corev1.PodSpec{
				SecurityContext: &corev1.PodSecurityContext{
					RunAsNonRoot: ptr.To(true), SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
				},
				Containers: []corev1.Container{{
					Name: "impostor", Image: "registry.example.com/impostor:1", Command: []string{"sleep", "infinity"},
					SecurityContext: &corev1.SecurityContext{
						AllowPrivilegeEscalation: ptr.To(false), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
					},
				}},
			},
		}
		_, err := clients.CoreV1().Pods(imp.namespace).Create(ctx, pod, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred(), "%s/%s", imp.namespace, imp.name)
	}
	DeferCleanup(func(ctx SpecContext) {
		for _, imp := range imps {
			err := clients.CoreV1().Pods(imp.namespace).Delete(ctx, imp.name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
			if !apierrors.IsNotFound(err) {
				Expect(err).NotTo(HaveOccurred())
			}
		}
		Eventually(func(g Gomega) {
			for _, imp := range imps {
				_, err := clients.CoreV1().Pods(imp.namespace).Get(ctx, imp.name, metav1.GetOptions{})
				g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%s/%s: %v", imp.namespace, imp.name, err)
			}
		}).WithContext(ctx).Should(Succeed())
	}, NodeTimeout(time.Minute))
	out := make([]corev1.Pod, len(imps))
	Eventually(func(g Gomega) {
		for i, imp := range imps {
			p, err := clients.CoreV1().Pods(imp.namespace).Get(ctx, imp.name, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(p.Status.PodIP).NotTo(BeEmpty(), "%s/%s has no IP yet", imp.namespace, imp.name)
			out[i] = *p
		}
	}).WithContext(ctx).Should(Succeed())
	return out
}

// podsWhere are the pods keep says yes to.
func podsWhere(pods []corev1.Pod, keep func(*corev1.Pod) bool) []corev1.Pod {
	return slices.DeleteFunc(slices.Clone(pods), func(p corev1.Pod) bool { return !keep(&p) })
}
