package controller

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
)

const (
	timeout  = 15 * time.Second
	interval = 50 * time.Millisecond
)

var namespaceSeq atomic.Int32

// newNamespace gives each spec its own namespace, so specs never see each
// other's children.
func newNamespace(ctx context.Context) string {
	name := fmt.Sprintf("test-%d-%d", time.Now().UnixNano()%100000, namespaceSeq.Add(1))
	Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})).To(Succeed())
	return name
}

// newSettledPlatform creates the platform build makes, named "vk", in a new
// namespace, and waits until the operator has settled it.
func newSettledPlatform(ctx context.Context, build func(namespace, name string) *platformv1.ParserPlatform) (string, *platformv1.ParserPlatform) {
	ns := newNamespace(ctx)
	p := build(ns, "vk")
	Expect(k8sClient.Create(ctx, p)).To(Succeed())
	settled(ctx, p)
	return ns, p
}

// samplePlatform is the sample platform (config/samples), trimmed to what the
// stateless tier reads: two services, the gateway, the load balancer.
func samplePlatform(namespace, name string) *platformv1.ParserPlatform {
	return &platformv1.ParserPlatform{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: platformv1.ParserPlatformSpec{
			Services: []platformv1.ServiceSpec{
				{Name: "auth", Image: "registry.example.com/vk-parser/auth:1.4.0", Port: 8001},
				{Name: "comments", Image: "registry.example.com/vk-parser/comments:1.4.0", Port: 8002},
			},
			Gateway: platformv1.GatewaySpec{Image: "registry.example.com/vk-parser/gateway:1.4.0"},
			LoadBalancer: platformv1.LoadBalancerSpec{
				ServiceType: "ClusterIP",
			},
		},
	}
}

// get fetches an object by namespace and name.
func get[T client.Object](ctx context.Context, obj T, namespace, name string) func() error {
	return func() error {
		return k8sClient.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, obj)
	}
}

// updatePlatform re-reads the platform and applies change, retrying on conflict.
func updatePlatform(ctx context.Context, p *platformv1.ParserPlatform, change func(*platformv1.ParserPlatform)) {
	Eventually(func() error {
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
			return err
		}
		change(p)
		return k8sClient.Update(ctx, p)
	}, timeout, interval).Should(Succeed())
}

// condition returns the platform's condition of that type, re-read.
func condition(ctx context.Context, p *platformv1.ParserPlatform, conditionType string) func() *metav1.Condition {
	return func() *metav1.Condition {
		latest := &platformv1.ParserPlatform{}
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(p), latest); err != nil {
			return nil
		}
		return meta.FindStatusCondition(latest.Status.Conditions, conditionType)
	}
}

// haveStatus matches a condition with that status (and reason when given).
func haveStatus(status metav1.ConditionStatus) func(*metav1.Condition) bool {
	return func(c *metav1.Condition) bool { return c != nil && c.Status == status }
}

// settled waits until the platform's status describes its current
// generation and the operator has made no write for a while.
func settled(ctx context.Context, p *platformv1.ParserPlatform) {
	Eventually(func() bool {
		latest := &platformv1.ParserPlatform{}
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(p), latest); err != nil {
			return false
		}
		return latest.Status.ObservedGeneration == latest.Generation
	}, timeout, interval).Should(BeTrue())
	quietFor(500 * time.Millisecond)
}

// quietFor waits until no write has been made for d.
func quietFor(d time.Duration) {
	last, lastChange := writes.count(), time.Now()
	Eventually(func() bool {
		if c := writes.count(); c != last {
			last, lastChange = c, time.Now()
		}
		return time.Since(lastChange) >= d
	}, timeout, 20*time.Millisecond).Should(BeTrue())
}

func intOrString(i int) intstr.IntOrString { return intstr.FromInt(i) }

// eventsIn lists a namespace's events as "reason: note (count)", for
// failure messages.
func eventsIn(ctx context.Context, ns string) []string {
	list := &eventsv1.EventList{}
	if err := k8sClient.List(ctx, list, client.InNamespace(ns)); err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, e := range list.Items {
		count := int32(1)
		if e.Series != nil {
			count = e.Series.Count
		}
		out = append(out, fmt.Sprintf("%s: %s (%d)", e.Reason, e.Note, count))
	}
	return out
}
