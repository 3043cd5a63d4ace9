package controller

import (
	"context"
	"fmt"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/resource"
)

// The Redis Cluster itself is formed and scaled against real redis-servers
// in internal/rediscluster and in the e2e suite; here the reconciler meets
// cache pods it cannot reach.
var _ = Describe("Cache cluster reconciliation", func() {
	It("reports unreachable cache nodes in CacheReady and keeps reconciling the rest", func() {
		ctx := context.Background()
		ns := newNamespace(ctx)
		p := samplePlatform(ns, "vk")
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		settled(ctx, p)
		markStatefulSetReady(ctx, ns, "vk-cache")
		for i := range 6 {
			createRunningCachePod(ctx, p, i)
		}

		Eventually(condition(ctx, p, "CacheReady"), timeout, interval).Should(Satisfy(func(c *metav1.Condition) bool {
			return c != nil && c.Status == metav1.ConditionFalse && c.Reason == "ClusterNotFormed" &&
				strings.Contains(c.Message, "unreachable")
		}))
		Expect(condition(ctx, p, "Ready")()).To(Satisfy(haveStatus(metav1.ConditionFalse)))

		updatePlatform(ctx, p, func(p *platformv1.ParserPlatform) { p.Spec.Services[0].Image = "auth:while-cache-down" })
		Eventually(func() string {
			d := &appsv1.Deployment{}
			_ = get(ctx, d, ns, "vk-auth")()
			return d.Spec.Template.Spec.Containers[0].Image
		}, timeout, interval).Should(Equal("auth:while-cache-down"))
	})
})

// createRunningCachePod makes the pod the StatefulSet controller and a
// kubelet would: cache pod i, Running with an IP (envtest runs neither).
func createRunningCachePod(ctx context.Context, p *platformv1.ParserPlatform, i int) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: p.Namespace, Name: fmt.Sprintf("%s-%d", resource.CacheName(p), i),
			Labels: resource.Labels(p, "cache", resource.ComponentCache),
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "redis", Image: "redis:7.2-alpine"}}},
	}
	Expect(k8sClient.Create(ctx, pod)).To(Succeed())
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: fmt.Sprintf("10.244.0.%d", 10+i)}
	Expect(k8sClient.Status().Update(ctx, pod)).To(Succeed())
}
