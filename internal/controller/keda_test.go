package controller

import (
	"context"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	operatorresource "github.com/vkparser/parser-operator/internal/resource"
)

var _ = Describe("Queue-aware worker scaling", Ordered, func() {
	It("swaps a worker's HPA for a KEDA ScaledObject when KEDA's CRDs arrive, never both, and back when they go", func() {
		ctx := context.Background()
		ns, p := newSettledPlatform(ctx, func(namespace, name string) *platformv1.ParserPlatform {
			p := fullPlatform(namespace, name)
			p.Spec.Queues.Queues[0].Autoscaling = &platformv1.QueueAutoscaling{TargetQueueLength: ptr.To[int32](50)}
			return p
		})
		const worker = "vk-worker-parser"
		Eventually(get(ctx, &autoscalingv2.HorizontalPodAutoscaler{}, ns, worker), timeout, interval).Should(Succeed())
		Eventually(condition(ctx, p, "QueueScaling"), timeout, interval).Should(Satisfy(func(c *metav1.Condition) bool {
			return c != nil && c.Status == metav1.ConditionFalse && c.Reason == "KEDANotInstalled"
		}))

		// Two autoscalers on one Deployment at any moment is a failure. The
		// two reads are not one snapshot, so the newcomer is read first:
		// seen, the one it replaces must already be gone (read second, it
		// cannot have come back in between unless both truly coexist).
		var both, backToHPA atomic.Bool
		watchCtx, stop := context.WithCancel(ctx)
		defer stop()
		go func() {
			defer GinkgoRecover()
			for watchCtx.Err() == nil {
				so := &unstructured.Unstructured{}
				so.SetGroupVersionKind(operatorresource.ScaledObjectGVK)
				hpa := get(ctx, &autoscalingv2.HorizontalPodAutoscaler{}, ns, worker)
				scaled := get(ctx, so, ns, worker)
				first, second := scaled, hpa
				if backToHPA.Load() {
					first, second = hpa, scaled
				}
				if first() == nil && second() == nil {
					both.Store(true)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()

		By("installing KEDA's CRDs")
		var crds []client.Object
		for _, gvk := range []schema.GroupVersionKind{operatorresource.ScaledObjectGVK, operatorresource.TriggerAuthenticationGVK} {
			crd := upstreamCRD(gvk)
			Expect(k8sClient.Create(ctx, crd)).To(Succeed())
			crds = append(crds, crd)
		}
		so := &unstructured.Unstructured{}
		so.SetGroupVersionKind(operatorresource.ScaledObjectGVK)
		Eventually(get(ctx, so, ns, worker), timeout, interval).Should(Succeed(), "a ScaledObject for the worker")
		Expect(metav1.IsControlledBy(so, p)).To(BeTrue())
		ta := &unstructured.Unstructured{}
		ta.SetGroupVersionKind(operatorresource.TriggerAuthenticationGVK)
		Expect(get(ctx, ta, ns, operatorresource.TriggerAuthentication(p).GetName())()).To(Succeed(), "written before the ScaledObject")
		Eventually(func() bool {
			return apierrors.IsNotFound(get(ctx, &autoscalingv2.HorizontalPodAutoscaler{}, ns, worker)())
		}, timeout, interval).Should(BeTrue())
		Expect(get(ctx, &autoscalingv2.HorizontalPodAutoscaler{}, ns, "vk-worker-analytics")()).To(Succeed(), "a queue without a backlog target keeps its HPA")
		Eventually(condition(ctx, p, "QueueScaling"), timeout, interval).Should(Satisfy(haveStatus(metav1.ConditionTrue)))

		By("KEDA's HPA sets the worker's replicas: the operator leaves them")
		d := &appsv1.Deployment{}
		Expect(get(ctx, d, ns, worker)()).To(Succeed())
		d.Spec.Replicas = ptr.To[int32](7)
		Expect(k8sClient.Update(ctx, d)).To(Succeed())
		updatePlatform(ctx, p, func(p *platformv1.ParserPlatform) {
			p.Spec.Queues.Workers.Image = "registry.example.com/vk-parser/worker:1.4.1"
		})
		Eventually(func() string {
			_ = get(ctx, d, ns, worker)()
			return d.Spec.Template.Spec.Containers[0].Image
		}, timeout, interval).Should(HaveSuffix(":1.4.1"), "the worker was reconciled")
		Expect(ptr.Deref(d.Spec.Replicas, 0)).To(BeEquivalentTo(7))

		By("removing KEDA's CRDs: the ScaledObjects go with them, the HPA comes back")
		backToHPA.Store(true)
		for _, crd := range crds {
			Expect(k8sClient.Delete(ctx, crd)).To(Succeed())
		}
		Eventually(get(ctx, &autoscalingv2.HorizontalPodAutoscaler{}, ns, worker), timeout, interval).Should(Succeed())
		Eventually(condition(ctx, p, "QueueScaling"), timeout, interval).Should(Satisfy(func(c *metav1.Condition) bool {
			return c != nil && c.Reason == "KEDANotInstalled"
		}))
		stop()
		Expect(both.Load()).To(BeFalse(), "an HPA and a ScaledObject were seen on the worker at once")
	})
})
