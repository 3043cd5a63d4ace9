package controller

import (
	"context"
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/resource"
)

// childKinds are the stateless children (docs/architecture.md, "Children") of
// a platform "vk" with services auth and comments.
func statelessChildren() map[string][]client.Object {
	return map[string][]client.Object{
		"vk-auth":      {&appsv1.Deployment{}, &corev1.Service{}, &autoscalingv2.HorizontalPodAutoscaler{}, &policyv1.PodDisruptionBudget{}},
		"vk-comments":  {&appsv1.Deployment{}, &corev1.Service{}, &autoscalingv2.HorizontalPodAutoscaler{}, &policyv1.PodDisruptionBudget{}},
		"vk-gateway":   {&appsv1.Deployment{}, &corev1.Service{}, &autoscalingv2.HorizontalPodAutoscaler{}, &policyv1.PodDisruptionBudget{}},
		"vk-lb":        {&appsv1.Deployment{}, &corev1.Service{}, &policyv1.PodDisruptionBudget{}},
		"vk-lb-config": {&corev1.ConfigMap{}},
		"vk-registry":  {&corev1.ConfigMap{}},
		"vk":           {&corev1.ServiceAccount{}},
	}
}

var _ = Describe("ParserPlatform stateless tier", func() {
	var (
		ctx context.Context
		ns  string
		p   *platformv1.ParserPlatform
	)

	BeforeEach(func() {
		ctx = context.Background()
		ns, p = newSettledPlatform(ctx, samplePlatform)
	})

	It("creates every child with the documented names, labels and owner reference", func() {
		for name, kinds := range statelessChildren() {
			for _, obj := range kinds {
				Expect(get(ctx, obj, ns, name)()).To(Succeed(), "%T %s", obj, name)
				Expect(obj.GetLabels()).To(HaveKeyWithValue(resource.LabelInstance, "vk"), "%T %s", obj, name)
				Expect(obj.GetLabels()).To(HaveKeyWithValue(resource.LabelPartOf, "parser-platform"))
				Expect(obj.GetLabels()).To(HaveKeyWithValue(resource.LabelManagedBy, "parser-operator"))
				Expect(obj.GetLabels()).To(HaveKey(resource.LabelName))
				Expect(obj.GetLabels()).To(HaveKey(resource.LabelComponent))
				owner := metav1.GetControllerOf(obj)
				Expect(owner).NotTo(BeNil(), "%T %s has no controller reference", obj, name)
				Expect(owner.Kind).To(Equal("ParserPlatform"))
				Expect(owner.UID).To(Equal(p.UID))
			}
		}
	})

	It("injects INSTANCE_ID from the pod name and the registry into every service", func() {
		d := &appsv1.Deployment{}
		Expect(get(ctx, d, ns, "vk-auth")()).To(Succeed())
		c := d.Spec.Template.Spec.Containers[0]
		Expect(c.Env).To(ContainElement(HaveField("Name", "INSTANCE_ID")))
		for _, e := range c.Env {
			if e.Name == "INSTANCE_ID" {
				Expect(e.ValueFrom.FieldRef.FieldPath).To(Equal("metadata.name"))
			}
		}
		Expect(c.VolumeMounts).To(ContainElement(HaveField("MountPath", resource.RegistryMountPath)))
		Expect(d.Spec.Template.Spec.Volumes).To(ContainElement(HaveField("ConfigMap.Name", "vk-registry")))

		cm := &corev1.ConfigMap{}
		Expect(get(ctx, cm, ns, "vk-registry")()).To(Succeed())
		Expect(cm.Data[resource.RegistryFileKey]).To(ContainSubstring(`"auth": "http://vk-auth.` + ns + `.svc:8001"`))
	})

	It("builds HPAs from spec.autoscaling merged with per-service overrides", func() {
		updatePlatform(ctx, p, func(p *platformv1.ParserPlatform) {
			p.Spec.Services[0].Autoscaling = &platformv1.AutoscalingOverride{MaxReplicas: ptr.To[int32](7)}
			p.Spec.Services[1].Autoscaling = &platformv1.AutoscalingOverride{Enabled: ptr.To(false)}
			p.Spec.Services[1].Replicas = ptr.To[int32](4)
		})
		hpa := &autoscalingv2.HorizontalPodAutoscaler{}
		Eventually(func() int32 { _ = get(ctx, hpa, ns, "vk-auth")(); return hpa.Spec.MaxReplicas }, timeout, interval).Should(Equal(int32(7)))
		Expect(*hpa.Spec.MinReplicas).To(Equal(int32(3)), "minReplicas comes from the platform default")
		Expect(hpa.Spec.Metrics).To(HaveLen(2), "CPU and memory")
		Expect(*hpa.Spec.Behavior.ScaleDown.StabilizationWindowSeconds).To(Equal(int32(300)))
		Expect(hpa.Spec.Behavior.ScaleDown.Policies).NotTo(BeEmpty())

		Eventually(func() bool {
			return apierrors.IsNotFound(get(ctx, &autoscalingv2.HorizontalPodAutoscaler{}, ns, "vk-comments")())
		}, timeout, interval).Should(BeTrue(), "autoscaling off removes the HPA")
		d := &appsv1.Deployment{}
		Eventually(func() int32 { _ = get(ctx, d, ns, "vk-comments")(); return ptr.Deref(d.Spec.Replicas, 0) }, timeout, interval).
			Should(Equal(int32(4)), "without an HPA the spec's replicas apply")
	})

	It("carries image, port, added and removed services and autoscaling bounds to the children", func() {
		updatePlatform(ctx, p, func(p *platformv1.ParserPlatform) {
			p.Spec.Services[0].Image = "registry.example.com/vk-parser/auth:1.5.0"
			p.Spec.Services[0].Port = 9001
			p.Spec.Services = append(p.Spec.Services[:1], platformv1.ServiceSpec{
				Name: "parser", Image: "registry.example.com/vk-parser/parser:1.4.0", Port: 8003,
			})
			p.Spec.Autoscaling.MinReplicas = 4
			p.Spec.Autoscaling.MaxReplicas = 12
		})
		d := &appsv1.Deployment{}
		Eventually(func() string {
			_ = get(ctx, d, ns, "vk-auth")()
			return d.Spec.Template.Spec.Containers[0].Image
		}, timeout, interval).Should(Equal("registry.example.com/vk-parser/auth:1.5.0"))
		svc := &corev1.Service{}
		Eventually(func() int32 { _ = get(ctx, svc, ns, "vk-auth")(); return svc.Spec.Ports[0].Port }, timeout, interval).Should(Equal(int32(9001)))

		for _, obj := range []client.Object{&appsv1.Deployment{}, &corev1.Service{}, &autoscalingv2.HorizontalPodAutoscaler{}, &policyv1.PodDisruptionBudget{}} {
			Eventually(get(ctx, obj, ns, "vk-parser"), timeout, interval).Should(Succeed(), "added service's %T", obj)
			fresh := newEmpty(obj)
			Eventually(func() bool { return apierrors.IsNotFound(get(ctx, fresh, ns, "vk-comments")()) }, timeout, interval).
				Should(BeTrue(), "removed service's %T is deleted", obj)
		}
		hpa := &autoscalingv2.HorizontalPodAutoscaler{}
		Eventually(func() []int32 {
			_ = get(ctx, hpa, ns, "vk-gateway")()
			return []int32{ptr.Deref(hpa.Spec.MinReplicas, 0), hpa.Spec.MaxReplicas}
		}, timeout, interval).Should(Equal([]int32{4, 12}))
	})

	DescribeTable("restores a child deleted by hand",
		func(name string, obj client.Object) {
			Expect(get(ctx, obj, ns, name)()).To(Succeed())
			oldUID := obj.GetUID()
			Expect(k8sClient.Delete(ctx, obj)).To(Succeed())
			Eventually(func() bool {
				fresh := newEmpty(obj)
				return get(ctx, fresh, ns, name)() == nil && fresh.GetUID() != oldUID
			}, timeout, interval).Should(BeTrue())
		},
		Entry("Deployment", "vk-auth", &appsv1.Deployment{}),
		Entry("Service", "vk-gateway", &corev1.Service{}),
		Entry("HPA", "vk-auth", &autoscalingv2.HorizontalPodAutoscaler{}),
		Entry("PDB", "vk-lb", &policyv1.PodDisruptionBudget{}),
		Entry("registry ConfigMap", "vk-registry", &corev1.ConfigMap{}),
		Entry("nginx ConfigMap", "vk-lb-config", &corev1.ConfigMap{}),
		Entry("ServiceAccount", "vk", &corev1.ServiceAccount{}),
	)

	DescribeTable("restores a child edited by hand, keeping what others added",
		func(name string, obj client.Object, edit func(client.Object), restored func(client.Object) bool) {
			Expect(get(ctx, obj, ns, name)()).To(Succeed())
			edit(obj)
			obj.SetLabels(merged(obj.GetLabels(), map[string]string{"team": "search"}))
			Expect(k8sClient.Update(ctx, obj)).To(Succeed())
			Eventually(func() bool {
				fresh := newEmpty(obj)
				return get(ctx, fresh, ns, name)() == nil && restored(fresh) && fresh.GetLabels()["team"] == "search"
			}, timeout, interval).Should(BeTrue())
		},
		Entry("Deployment image", "vk-auth", &appsv1.Deployment{},
			func(o client.Object) { o.(*appsv1.Deployment).Spec.Template.Spec.Containers[0].Image = "evil:latest" },
			func(o client.Object) bool {
				return o.(*appsv1.Deployment).Spec.Template.Spec.Containers[0].Image == "registry.example.com/vk-parser/auth:1.4.0"
			}),
		Entry("Service port", "vk-auth", &corev1.Service{},
			func(o client.Object) { o.(*corev1.Service).Spec.Ports[0].Port = 1234 },
			func(o client.Object) bool { return o.(*corev1.Service).Spec.Ports[0].Port == 8001 }),
		Entry("HPA bounds", "vk-gateway", &autoscalingv2.HorizontalPodAutoscaler{},
			func(o client.Object) { o.(*autoscalingv2.HorizontalPodAutoscaler).Spec.MaxReplicas = 99 },
			func(o client.Object) bool { return o.(*autoscalingv2.HorizontalPodAutoscaler).Spec.MaxReplicas == 20 }),
		Entry("PDB budget", "vk-auth", &policyv1.PodDisruptionBudget{},
			func(o client.Object) { o.(*policyv1.PodDisruptionBudget).Spec.MaxUnavailable = ptr.To(intOrString(3)) },
			func(o client.Object) bool {
				return o.(*policyv1.PodDisruptionBudget).Spec.MaxUnavailable.IntValue() == 1
			}),
		Entry("nginx.conf", "vk-lb-config", &corev1.ConfigMap{},
			func(o client.Object) { o.(*corev1.ConfigMap).Data[resource.NginxConfKey] = "events {}" },
			func(o client.Object) bool {
				return o.(*corev1.ConfigMap).Data[resource.NginxConfKey] != "events {}"
			}),
		Entry("registry", "vk-registry", &corev1.ConfigMap{},
			func(o client.Object) { o.(*corev1.ConfigMap).Data[resource.RegistryFileKey] = "{}" },
			func(o client.Object) bool { return o.(*corev1.ConfigMap).Data[resource.RegistryFileKey] != "{}" }),
		Entry("ServiceAccount token mount", "vk", &corev1.ServiceAccount{},
			func(o client.Object) { o.(*corev1.ServiceAccount).AutomountServiceAccountToken = ptr.To(true) },
			func(o client.Object) bool {
				return !ptr.Deref(o.(*corev1.ServiceAccount).AutomountServiceAccountToken, true)
			}),
	)

	It("restores a child whose labels were removed, though it left the operator's cache", func() {
		cm := &corev1.ConfigMap{}
		Expect(get(ctx, cm, ns, "vk-registry")()).To(Succeed())
		cm.Labels = nil
		cm.Data[resource.RegistryFileKey] = "{}"
		Expect(k8sClient.Update(ctx, cm)).To(Succeed())
		updatePlatform(ctx, p, func(p *platformv1.ParserPlatform) { p.Annotations = map[string]string{"poke": "1"} })
		Eventually(func() bool {
			_ = get(ctx, cm, ns, "vk-registry")()
			return cm.Labels[resource.LabelManagedBy] == resource.ManagedBy && cm.Data[resource.RegistryFileKey] != "{}"
		}, timeout, interval).Should(BeTrue())
	})

	It("leaves the replicas of an HPA-owned Deployment to the HPA and keeps kubectl rollout restart", func() {
		d := &appsv1.Deployment{}
		Expect(get(ctx, d, ns, "vk-auth")()).To(Succeed())
		d.Spec.Replicas = ptr.To[int32](11)
		d.Spec.Template.Annotations[restartedAtAnnotation] = "2026-11-29T00:00:00Z"
		Expect(k8sClient.Update(ctx, d)).To(Succeed())
		mark := writes.count()
		// A real change elsewhere in the same Deployment makes the operator update it.
		updatePlatform(ctx, p, func(p *platformv1.ParserPlatform) {
			p.Spec.Services[0].Image = "registry.example.com/vk-parser/auth:2.0.0"
		})
		Eventually(func() string {
			_ = get(ctx, d, ns, "vk-auth")()
			return d.Spec.Template.Spec.Containers[0].Image
		}, timeout, interval).Should(HaveSuffix("2.0.0"))
		Expect(writes.since(mark)).NotTo(BeEmpty())
		Expect(*d.Spec.Replicas).To(Equal(int32(11)), "the HPA's replicas are kept")
		Expect(d.Spec.Template.Annotations).To(HaveKeyWithValue(restartedAtAnnotation, "2026-11-29T00:00:00Z"))
	})

	It("changes the config hash when, and only when, the config its pods read changes", func() {
		hashOf := func(name string) func() string {
			return func() string {
				d := &appsv1.Deployment{}
				if err := get(ctx, d, ns, name)(); err != nil {
					return ""
				}
				return d.Spec.Template.Annotations[resource.AnnotationConfigHash]
			}
		}
		authHash, lbHash := hashOf("vk-auth")(), hashOf("vk-lb")()
		Expect(authHash).NotTo(BeEmpty())

		// Not config: image, replicas, autoscaling. The hash stays.
		updatePlatform(ctx, p, func(p *platformv1.ParserPlatform) {
			p.Spec.Services[1].Image = "registry.example.com/vk-parser/comments:9.9.9"
			p.Spec.LoadBalancer.Replicas = 3
			p.Spec.Autoscaling.MaxReplicas = 10
		})
		settled(ctx, p)
		Expect(hashOf("vk-auth")()).To(Equal(authHash))
		Expect(hashOf("vk-lb")()).To(Equal(lbHash))

		// Config: a new service changes the registry every service reads.
		updatePlatform(ctx, p, func(p *platformv1.ParserPlatform) {
			p.Spec.Services = append(p.Spec.Services, platformv1.ServiceSpec{Name: "analytics", Image: "a:1", Port: 8004})
		})
		Eventually(hashOf("vk-auth"), timeout, interval).ShouldNot(Equal(authHash))
		// The Deployments are written in parallel: the gateway's may land
		// a moment after the auth service's.
		Eventually(hashOf("vk-gateway"), timeout, interval).Should(Equal(hashOf("vk-auth")()))
		Expect(hashOf("vk-lb")()).To(Equal(lbHash), "nginx.conf did not change")

		// Config: the gateway port changes nginx.conf.
		updatePlatform(ctx, p, func(p *platformv1.ParserPlatform) { p.Spec.Gateway.Port = 9090 + 1 })
		Eventually(hashOf("vk-lb"), timeout, interval).ShouldNot(Equal(lbHash))
	})

	It("stops changing children while paused and says so in a condition", func() {
		updatePlatform(ctx, p, func(p *platformv1.ParserPlatform) {
			p.Spec.Paused = true
			p.Spec.Services[0].Image = "registry.example.com/vk-parser/auth:paused"
		})
		Eventually(condition(ctx, p, "Paused"), timeout, interval).Should(Satisfy(haveStatus(metav1.ConditionTrue)))
		Expect(condition(ctx, p, "Progressing")()).To(HaveField("Reason", "Paused"))
		d := &appsv1.Deployment{}
		Expect(get(ctx, d, ns, "vk-auth")()).To(Succeed())
		Expect(k8sClient.Delete(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "vk-registry"}})).To(Succeed())
		quietFor(time.Second)
		Expect(get(ctx, d, ns, "vk-auth")()).To(Succeed())
		Expect(d.Spec.Template.Spec.Containers[0].Image).To(HaveSuffix("1.4.0"), "no change while paused")
		Expect(apierrors.IsNotFound(get(ctx, &corev1.ConfigMap{}, ns, "vk-registry")())).To(BeTrue(), "nothing restored while paused")

		updatePlatform(ctx, p, func(p *platformv1.ParserPlatform) { p.Spec.Paused = false })
		Eventually(func() string {
			_ = get(ctx, d, ns, "vk-auth")()
			return d.Spec.Template.Spec.Containers[0].Image
		}, timeout, interval).Should(HaveSuffix("paused"))
		Eventually(get(ctx, &corev1.ConfigMap{}, ns, "vk-registry"), timeout, interval).Should(Succeed())
		Eventually(condition(ctx, p, "Paused"), timeout, interval).Should(Satisfy(haveStatus(metav1.ConditionFalse)))
	})

	It("makes no write when a resync finds the cluster matching", func() {
		for i := range 3 {
			mark := writes.count()
			// An annotation change triggers a reconcile without changing the spec.
			updatePlatform(ctx, p, func(p *platformv1.ParserPlatform) {
				p.Annotations = map[string]string{"resync": fmt.Sprint(i)}
			})
			quietFor(time.Second)
			// Only this platform's namespace: other specs' platforms share the API
			// server, and client-go retries their event series on its own timer.
			Expect(inNamespace(writes.since(mark), ns)).To(BeEmpty(), "a reconcile of an unchanged platform wrote; events: %v", eventsIn(ctx, ns))
		}
	})

	It("refuses to adopt a same-named object it does not own", func() {
		foreign := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "other-registry"},
			Data:       map[string]string{"mine": "yes"},
		}
		Expect(k8sClient.Create(ctx, foreign)).To(Succeed())
		other := samplePlatform(ns, "other")
		Expect(k8sClient.Create(ctx, other)).To(Succeed())
		Eventually(condition(ctx, other, "Degraded"), timeout, interval).Should(Satisfy(func(c *metav1.Condition) bool {
			return c != nil && c.Status == metav1.ConditionTrue && strings.Contains(c.Message, "ConfigMap other-registry")
		}))
		Expect(condition(ctx, other, "Ready")()).To(Satisfy(haveStatus(metav1.ConditionFalse)))
		Expect(get(ctx, foreign, ns, "other-registry")()).To(Succeed())
		Expect(foreign.Data).To(Equal(map[string]string{"mine": "yes"}), "the foreign object is untouched")
		Expect(get(ctx, &appsv1.Deployment{}, ns, "other-auth")()).To(Succeed(), "the rest keeps reconciling")
	})

	It("reports readiness from the children's own status", func() {
		Expect(condition(ctx, p, "Ready")()).To(Satisfy(haveStatus(metav1.ConditionFalse)))
		Expect(condition(ctx, p, "ServicesReady")()).To(Satisfy(haveStatus(metav1.ConditionFalse)))
		for _, name := range []string{"vk-auth", "vk-comments", "vk-gateway", "vk-lb"} {
			markDeploymentReady(ctx, ns, name)
		}
		for _, name := range []string{"vk-db-0", "vk-cache"} {
			markStatefulSetReady(ctx, ns, name)
		}
		for _, area := range []string{"ServicesReady", "LoadBalancerReady", "DatabaseReady", "QueuesReady"} {
			Eventually(condition(ctx, p, area), timeout, interval).Should(Satisfy(haveStatus(metav1.ConditionTrue)), area)
		}
		// Ready pods are not a working cache: until the Redis Cluster is
		// formed, CacheReady and with it Ready stay False, and say why.
		Eventually(condition(ctx, p, "CacheReady"), timeout, interval).Should(HaveField("Reason", "ClusterNotFormed"))
		Eventually(condition(ctx, p, "Ready"), timeout, interval).Should(HaveField("Message", "not ready: CacheReady"))
		latest := &platformv1.ParserPlatform{}
		Expect(get(ctx, latest, ns, "vk")()).To(Succeed())
		Expect(latest.Status.Components).To(ContainElement(platformv1.ComponentStatus{
			Name: "auth", Kind: "Deployment", DesiredReplicas: 3, ReadyReplicas: 3,
		}))
		Expect(latest.Status.Components).To(ContainElement(platformv1.ComponentStatus{
			Name: "cache", Kind: "StatefulSet", DesiredReplicas: 6, ReadyReplicas: 6,
		}))
		Expect(latest.Status.Shards).To(Equal(int32(1)))
		Expect(latest.Status.LoadBalancerAddress).To(MatchRegexp(`^10\.\d+\.\d+\.\d+:80$`))

		// One service losing its pods makes the platform not ready again.
		d := &appsv1.Deployment{}
		Expect(get(ctx, d, ns, "vk-comments")()).To(Succeed())
		d.Status.ReadyReplicas, d.Status.AvailableReplicas = 1, 1
		Expect(k8sClient.Status().Update(ctx, d)).To(Succeed())
		Eventually(condition(ctx, p, "ServicesReady"), timeout, interval).Should(Satisfy(func(c *metav1.Condition) bool {
			return c.Status == metav1.ConditionFalse && strings.Contains(c.Message, "comments 1/3 ready")
		}))
		Expect(condition(ctx, p, "Ready")()).To(Satisfy(haveStatus(metav1.ConditionFalse)))
	})
})

// markDeploymentReady writes the status a Deployment controller would once
// every pod is up (envtest runs no controllers).
func markDeploymentReady(ctx context.Context, ns, name string) {
	Eventually(func() error {
		d := &appsv1.Deployment{}
		if err := get(ctx, d, ns, name)(); err != nil {
			return err
		}
		n := ptr.Deref(d.Spec.Replicas, 1)
		d.Status = appsv1.DeploymentStatus{
			ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n,
		}
		return k8sClient.Status().Update(ctx, d)
	}, timeout, interval).Should(Succeed())
}

// markStatefulSetReady writes the status the StatefulSet controller would
// once every pod is up.
func markStatefulSetReady(ctx context.Context, ns, name string) {
	Eventually(func() error {
		s := &appsv1.StatefulSet{}
		if err := get(ctx, s, ns, name)(); err != nil {
			return err
		}
		n := ptr.Deref(s.Spec.Replicas, 1)
		s.Status = appsv1.StatefulSetStatus{
			ObservedGeneration: s.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n,
			CurrentReplicas: n,
		}
		return k8sClient.Status().Update(ctx, s)
	}, timeout, interval).Should(Succeed())
}
