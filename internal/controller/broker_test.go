package controller

import (
	"context"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/resource"
)

// closedManagementPort sends every management API call to a port nothing
// listens on.
func closedManagementPort(string, string) string { return "127.0.0.1:1" }

// The queues themselves are changed against a real rabbitmq-server in
// internal/resource (rabbitmq_server_test.go); here the reconciler meets a
// broker it cannot reach, as in envtest, where no broker runs.
var _ = Describe("Broker queue reconciliation", func() {
	var (
		ctx   context.Context
		ns    string
		p     *platformv1.ParserPlatform
		r     *ParserPlatformReconciler
		creds resource.Credentials
	)

	BeforeEach(func() {
		ctx = context.Background()
		ns, p = newSettledPlatform(ctx, fullPlatform)
		// The reconciler the suite's manager runs keeps reconciling this
		// platform meanwhile; this one is called directly.
		r = &ParserPlatformReconciler{Client: k8sClient, APIReader: k8sClient}
		sec := &corev1.Secret{}
		Expect(get(ctx, sec, ns, "vk-broker")()).To(Succeed())
		creds = resource.Credentials{{Secret: "vk-broker", Key: resource.KeyPassword}: string(sec.Data[resource.KeyPassword])}
	})

	It("waits for a broker pod without blocking, then reports the pods it could not reach", func() {
		out := r.syncBrokerQueues(ctx, p, creds, closedManagementPort)
		Expect(out.applies).To(BeTrue())
		Expect(out.inLine).To(BeFalse())
		Expect(out.reason).To(Equal(ReasonBrokerNotReached))
		Expect(out.message).To(ContainSubstring("waiting for a broker pod"))
		Expect(out.retryAfter).To(BeZero(), "the pod watch brings the platform back when a broker pod runs")

		createRunningBrokerPod(ctx, p, 0, "127.0.0.1")
		start := time.Now()
		out = r.syncBrokerQueues(ctx, p, creds, closedManagementPort)
		Expect(time.Since(start)).To(BeNumerically("<", brokerRequestTimeout), "a refused connection must not wait")
		Expect(out.inLine).To(BeFalse())
		Expect(out.reason).To(Equal(ReasonBrokerNotReached))
		Expect(out.message).To(And(ContainSubstring("vk-broker-0"), ContainSubstring("127.0.0.1:1")))
		Expect(out.retryAfter).To(Equal(brokerRetryInterval))
		Expect(out.refusals).To(BeEmpty(), "an unreachable broker refuses nothing")
	})

	It("bounds the wait on pods whose addresses do not answer: one request timeout for all", func() {
		// 192.0.2.0/24 is TEST-NET-1: nothing answers there.
		for i := range 3 {
			createRunningBrokerPod(ctx, p, i, fmt.Sprintf("192.0.2.%d", 10+i))
		}
		start := time.Now()
		out := r.syncBrokerQueues(ctx, p, creds, PodManagementAddress)
		Expect(time.Since(start)).To(BeNumerically("<", brokerRequestTimeout+2*time.Second))
		Expect(out.reason).To(Equal(ReasonBrokerNotReached))
		for i := range 3 {
			Expect(out.message).To(ContainSubstring(fmt.Sprintf("vk-broker-%d (192.0.2.%d:%d)", i, 10+i, resource.RabbitManagement)))
		}
	})

	It("has nothing to do for a Redis broker", func() {
		redis := fullPlatform(ns, "vk-redis")
		redis.Spec.Queues.Broker.Type = platformv1.BrokerRedis
		Expect(r.syncBrokerQueues(ctx, redis, creds, closedManagementPort)).To(Equal(brokerOutcome{}))
	})

	It("keeps the rest of the platform reconciling while the broker is unreachable", func() {
		createRunningBrokerPod(ctx, p, 0, "127.0.0.1")
		Expect(r.syncBrokerQueues(ctx, p, creds, closedManagementPort).inLine).To(BeFalse())
		updatePlatform(ctx, p, func(p *platformv1.ParserPlatform) {
			p.Spec.Services[0].Image = "auth:while-broker-down"
			p.Spec.Queues.Queues = append(p.Spec.Queues.Queues, platformv1.QueueSpec{Name: "reports", Tasks: []string{"reports.tasks.build"}})
		})
		Eventually(func() string {
			d := &appsv1.Deployment{}
			_ = get(ctx, d, ns, "vk-auth")()
			return d.Spec.Template.Spec.Containers[0].Image
		}, timeout, interval).Should(Equal("auth:while-broker-down"))
		Eventually(get(ctx, &appsv1.Deployment{}, ns, "vk-worker-reports"), timeout, interval).Should(Succeed())
		// A queue change is applied live, not by a restart: the broker's pod
		// template did not change.
		sts := &appsv1.StatefulSet{}
		Expect(get(ctx, sts, ns, "vk-broker")()).To(Succeed())
		hash := sts.Spec.Template.Annotations[resource.AnnotationConfigHash]
		cm := &corev1.ConfigMap{}
		Eventually(func() string {
			_ = get(ctx, cm, ns, "vk-broker")()
			return cm.Data[resource.QueueDefinitionsKey]
		}, timeout, interval).Should(ContainSubstring(`"reports"`))
		Expect(get(ctx, sts, ns, "vk-broker")()).To(Succeed())
		Expect(sts.Spec.Template.Annotations[resource.AnnotationConfigHash]).To(Equal(hash), "a queue change restarted the broker")
	})

	It("says in QueuesReady that the broker is not reached, while the rest reconciles", func() {
		createRunningBrokerPod(ctx, p, 0, "127.0.0.1")
		markStatefulSetReady(ctx, ns, "vk-broker")
		for _, q := range p.Spec.Queues.Queues {
			markDeploymentReady(ctx, ns, "vk-worker-"+q.Name)
		}
		Eventually(condition(ctx, p, "QueuesReady"), timeout, interval).Should(Satisfy(func(c *metav1.Condition) bool {
			return c != nil && c.Status == metav1.ConditionFalse && c.Reason == ReasonBrokerNotReached &&
				containsAll(c.Message, "vk-broker-0", "127.0.0.1:1")
		}))
		updatePlatform(ctx, p, func(p *platformv1.ParserPlatform) { p.Spec.Services[0].Image = "auth:while-broker-down" })
		Eventually(func() string {
			d := &appsv1.Deployment{}
			_ = get(ctx, d, ns, "vk-auth")()
			return d.Spec.Template.Spec.Containers[0].Image
		}, timeout, interval).Should(Equal("auth:while-broker-down"))
	})
})

// createRunningBrokerPod makes the pod the StatefulSet controller and a
// kubelet would: broker pod i, Running at ip (envtest runs neither).
func createRunningBrokerPod(ctx context.Context, p *platformv1.ParserPlatform, i int, ip string) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: p.Namespace, Name: fmt.Sprintf("%s-%d", resource.BrokerName(p), i),
			Labels: resource.Labels(p, "broker", resource.ComponentBroker),
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "rabbitmq", Image: "rabbitmq:3.13-management-alpine"}}},
	}
	Expect(k8sClient.Create(ctx, pod)).To(Succeed())
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip}
	Expect(k8sClient.Status().Update(ctx, pod)).To(Succeed())
}
