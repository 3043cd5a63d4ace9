//go:build e2e

package e2e

import (
	"context"
	"slices"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
)

// scenario is what the scenarios on the operator's platforms share (the
// data-safety and the backup scenarios): a client of the platform API and
// the user's steps, each waiting for what a user would wait for, and
// stopping at once when the operator process has died.
type scenario struct {
	pc       client.Client
	operator func() *operatorProcess
	// wait bounds the waits on the operator and the servers.
	wait time.Duration
}

func newScenario(operator func() *operatorProcess, wait time.Duration) *scenario {
	GinkgoHelper()
	logf.SetLogger(GinkgoLogr) // the client's warnings, in the spec's output
	scheme := runtime.NewScheme()
	Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	Expect(platformv1.AddToScheme(scheme)).To(Succeed())
	pc, err := client.New(cluster.Config, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	return &scenario{pc: pc, operator: operator, wait: wait}
}

func (s *scenario) alive() {
	if err := s.operator().exited(); err != nil {
		StopTrying(err.Error()).Now()
	}
}

func (s *scenario) getPlatform(ctx context.Context, ns, name string) (*platformv1.ParserPlatform, error) {
	p := &platformv1.ParserPlatform{}
	return p, s.pc.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, p)
}

// waitReady waits for Ready=True of the current generation (and another
// UID than old, for a platform applied again).
func (s *scenario) waitReady(ctx context.Context, ns, name string, old types.UID) *platformv1.ParserPlatform {
	GinkgoHelper()
	pr := &progress{start: time.Now()}
	var p *platformv1.ParserPlatform
	Eventually(func(g Gomega) {
		s.alive()
		var err error
		p, err = s.getPlatform(ctx, ns, name)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(p.UID).NotTo(Equal(old))
		ready := meta.FindStatusCondition(p.Status.Conditions, "Ready")
		if ready != nil {
			pr.report("%s/%s Ready=%s %s: %s", ns, name, ready.Status, ready.Reason, ready.Message)
		}
		g.Expect(p.Status.ObservedGeneration).To(Equal(p.Generation))
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Status).To(Equal(metav1.ConditionTrue), "%s: %s", ready.Reason, ready.Message)
	}).WithContext(ctx).WithTimeout(s.wait).WithPolling(time.Second).Should(Succeed())
	return p
}

func (s *scenario) apply(ctx context.Context, ns, manifest string) {
	GinkgoHelper()
	out, err := kubectl(ctx, manifest, "apply", "-n", ns, "-f", "-")
	Expect(err).NotTo(HaveOccurred(), out)
}

// deleteAndWait is `kubectl delete pp` and the wait until the platform
// (its finalizer run) and every pod of the namespace are gone.
func (s *scenario) deleteAndWait(ctx context.Context, ns, name string) {
	GinkgoHelper()
	start := time.Now()
	out, err := kubectl(ctx, "", "delete", "pp", name, "-n", ns, "--wait=false")
	Expect(err).NotTo(HaveOccurred(), out)
	Eventually(func(g Gomega) {
		s.alive()
		_, err := s.getPlatform(ctx, ns, name)
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "platform still there: %v", err)
		g.Expect(podNames(ctx, ns, "")).To(BeEmpty())
		sts, err := clients.AppsV1().StatefulSets(ns).List(ctx, metav1.ListOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(sts.Items).To(BeEmpty())
	}).WithContext(ctx).WithTimeout(2 * time.Minute).WithPolling(500 * time.Millisecond).Should(Succeed())
	GinkgoWriter.Printf("%s/%s and its pods gone %s after kubectl delete\n", ns, name, time.Since(start).Round(100*time.Millisecond))
}

// createNamespaces creates namespaces that enforce Pod Security
// restricted, deleted (with everything in them) after the container.
func createNamespaces(ctx context.Context, names ...string) {
	GinkgoHelper()
	for _, ns := range names {
		_, err := kubectl(ctx, "", "create", "namespace", ns)
		Expect(err).NotTo(HaveOccurred())
		_, err = kubectl(ctx, "", "label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
		Expect(err).NotTo(HaveOccurred())
	}
	DeferCleanup(func(ctx SpecContext) {
		// The servers of the scenarios stop with their pods; later specs
		// get the machine back.
		for _, ns := range names {
			_, _ = kubectl(ctx, "", "delete", "namespace", ns, "--wait=false")
		}
		Eventually(func(g Gomega) {
			for _, ns := range names {
				g.Expect(podNames(ctx, ns, "")).To(BeEmpty())
			}
		}).WithContext(ctx).WithTimeout(time.Minute).Should(Succeed())
	}, NodeTimeout(2*time.Minute))
}

// platformConditionsJSONPath prints each platform's conditions, a line each.
const platformConditionsJSONPath = `jsonpath={range .items[*]}{.metadata.name}: {range .status.conditions[*]}{.type}={.status} {.reason}: {.message}{"\n"}{end}{end}`

// dumpOnFailure prints, after a failed spec, the platforms' conditions and
// what the kubectl commands of each namespace show (args get "-n <ns>").
func dumpOnFailure(ctx context.Context, namespaces []string, commands ...[]string) {
	if !CurrentSpecReport().Failed() {
		return
	}
	for _, ns := range namespaces {
		for _, args := range append([][]string{{"get", "pp", "-o", platformConditionsJSONPath}}, commands...) {
			args = append(slices.Clone(args), "-n", ns)
			out, _ := kubectl(ctx, "", args...)
			GinkgoWriter.Printf("\n--- kubectl %s\n%s\n", strings.Join(args, " "), out)
		}
	}
}
