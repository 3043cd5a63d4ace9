package controller

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apiresource "k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/rediscluster"
	operatorresource "github.com/vkparser/parser-operator/internal/resource"
	"github.com/vkparser/parser-operator/internal/testutil"
)

// fullPlatform is the sample platform with every area: 2 shards, the cache,
// a RabbitMQ broker and two queues.
func fullPlatform(namespace, name string) *platformv1.ParserPlatform {
	p := samplePlatform(namespace, name)
	p.Spec.Database.Shards = 2
	p.Spec.Queues = &platformv1.QueuesSpec{
		Workers: platformv1.WorkersSpec{Image: "registry.example.com/vk-parser/worker:1.4.0"},
		Queues: []platformv1.QueueSpec{
			{Name: "parser", RoutingKey: "parser", Tasks: []string{"parser.tasks.parse_comments"}},
			{Name: "analytics", RoutingKey: "analytics", Tasks: []string{"analytics.tasks.process_data"}},
		},
	}
	return p
}

var _ = Describe("ParserPlatform stateful tier", func() {
	var (
		ctx context.Context
		ns  string
		p   *platformv1.ParserPlatform
	)

	BeforeEach(func() {
		ctx = context.Background()
		ns, p = newSettledPlatform(ctx, fullPlatform)
	})

	It("creates every stateful child with the documented names", func() {
		children := map[string][]client.Object{
			"vk-db-0":             {&appsv1.StatefulSet{}, &corev1.Service{}},
			"vk-db-1":             {&appsv1.StatefulSet{}, &corev1.Service{}},
			"vk-db-0-credentials": {&corev1.Secret{}},
			"vk-db-1-credentials": {&corev1.Secret{}},
			"vk-shard-map":        {&corev1.ConfigMap{}},
			"vk-cache":            {&appsv1.StatefulSet{}, &corev1.Service{}, &corev1.ConfigMap{}, &corev1.Secret{}, &policyv1.PodDisruptionBudget{}},
			"vk-cache-headless":   {&corev1.Service{}},
			"vk-broker":           {&appsv1.StatefulSet{}, &corev1.Service{}, &corev1.ConfigMap{}, &corev1.Secret{}},
			"vk-worker-parser":    {&appsv1.Deployment{}, &autoscalingv2.HorizontalPodAutoscaler{}, &policyv1.PodDisruptionBudget{}},
			"vk-worker-analytics": {&appsv1.Deployment{}, &autoscalingv2.HorizontalPodAutoscaler{}, &policyv1.PodDisruptionBudget{}},
			"vk-default-deny":     {&networkingv1.NetworkPolicy{}},
			"vk-database":         {&networkingv1.NetworkPolicy{}},
			"vk-broker-headless":  {&corev1.Service{}},
		}
		for name, kinds := range children {
			for _, obj := range kinds {
				Expect(get(ctx, obj, ns, name)()).To(Succeed(), "%T %s", obj, name)
				Expect(metav1.IsControlledBy(obj, p)).To(BeTrue(), "%T %s", obj, name)
				Expect(obj.GetLabels()).To(HaveKeyWithValue(operatorresource.LabelInstance, "vk"))
			}
		}
		sts := &appsv1.StatefulSet{}
		Expect(get(ctx, sts, ns, "vk-cache")()).To(Succeed())
		Expect(*sts.Spec.Replicas).To(Equal(int32(6)), "3 masters x (1 + 1 replica)")
		Expect(sts.Spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted).To(Equal(appsv1.RetainPersistentVolumeClaimRetentionPolicyType))
		Expect(sts.Spec.PersistentVolumeClaimRetentionPolicy.WhenScaled).To(Equal(appsv1.RetainPersistentVolumeClaimRetentionPolicyType))
		latest := &platformv1.ParserPlatform{}
		Expect(get(ctx, latest, ns, "vk")()).To(Succeed())
		Expect(latest.Status.Shards).To(Equal(int32(2)))
	})

	It("keeps generated secrets across reconciles and operator restarts", func() {
		before := secretData(ctx, ns, "vk-db-0-credentials", "vk-db-1-credentials", "vk-cache", "vk-broker")
		Expect(before["vk-db-0-credentials"]["password"]).To(HaveLen(32))
		Expect(before["vk-db-0-credentials"]["password"]).NotTo(Equal(before["vk-db-1-credentials"]["password"]))

		updatePlatform(ctx, p, func(p *platformv1.ParserPlatform) { p.Spec.Services[0].Image = "auth:2" })
		settled(ctx, p)
		Expect(secretData(ctx, ns, "vk-db-0-credentials", "vk-db-1-credentials", "vk-cache", "vk-broker")).To(Equal(before))

		// A restarted operator starts with an empty cache: it must find the
		// Secrets, not generate new passwords, and make no write at all.
		restartWrites := runSecondOperator(ctx)
		Expect(inNamespace(restartWrites, ns)).To(BeEmpty())
		Expect(secretData(ctx, ns, "vk-db-0-credentials", "vk-db-1-credentials", "vk-cache", "vk-broker")).To(Equal(before))
	})

	It("follows queue additions and removals with worker Deployments", func() {
		updatePlatform(ctx, p, func(p *platformv1.ParserPlatform) {
			p.Spec.Queues.Queues = []platformv1.QueueSpec{
				{Name: "parser"},
				{Name: "notifications", RoutingKey: "notifications", Tasks: []string{"notifications.tasks.send_email"}},
			}
		})
		Eventually(get(ctx, &appsv1.Deployment{}, ns, "vk-worker-notifications"), timeout, interval).Should(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(get(ctx, &appsv1.Deployment{}, ns, "vk-worker-analytics")())
		}, timeout, interval).Should(BeTrue())
		d := &appsv1.Deployment{}
		Expect(get(ctx, d, ns, "vk-worker-notifications")()).To(Succeed())
		Expect(d.Spec.Template.Spec.Containers[0].Command).To(Equal([]string{"celery"}))
		Expect(d.Spec.Template.Spec.Containers[0].Args).To(ContainElements("worker", "-Q", "notifications"))

		cm := &corev1.ConfigMap{}
		Eventually(func() string {
			_ = get(ctx, cm, ns, "vk-broker")()
			return cm.Data[operatorresource.QueueDefinitionsKey]
		}, timeout, interval).Should(And(ContainSubstring(`"notifications"`), Not(ContainSubstring(`"analytics"`))))

		// No queues at all would remove the broker with what it still
		// holds: the API server refuses it, and the broker stays.
		// (A status write of the operator between the read and the update
		// is a conflict, not the answer: read again.)
		var err error
		Eventually(func() bool {
			latest := &platformv1.ParserPlatform{}
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(p), latest)).To(Succeed())
			latest.Spec.Queues = nil
			err = k8sClient.Update(ctx, latest)
			return apierrors.IsConflict(err)
		}, timeout, interval).Should(BeFalse())
		Expect(err).To(MatchError(ContainSubstring("cannot go from some queues to none")))
		Expect(get(ctx, &appsv1.StatefulSet{}, ns, "vk-broker")()).To(Succeed())
		Expect(get(ctx, &appsv1.Deployment{}, ns, "vk-worker-notifications")()).To(Succeed())
	})

	It("refuses a storage change a StatefulSet cannot make, and keeps reconciling the rest", func() {
		updatePlatform(ctx, p, func(p *platformv1.ParserPlatform) {
			p.Spec.Database.Storage.Size = ptrQuantity("5Gi")
			p.Spec.Services[0].Image = "auth:after-refusal"
		})
		Eventually(condition(ctx, p, "Degraded"), timeout, interval).Should(Satisfy(func(c *metav1.Condition) bool {
			return c != nil && c.Status == metav1.ConditionTrue &&
				containsAll(c.Message, "StatefulSet vk-db-0", "volumes cannot shrink (from 10Gi to 5Gi)")
		}))
		sts := &appsv1.StatefulSet{}
		Expect(get(ctx, sts, ns, "vk-db-0")()).To(Succeed())
		Expect(sts.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests.Storage().String()).To(Equal("10Gi"))
		Eventually(func() string {
			d := &appsv1.Deployment{}
			_ = get(ctx, d, ns, "vk-auth")()
			return d.Spec.Template.Spec.Containers[0].Image
		}, timeout, interval).Should(Equal("auth:after-refusal"))
	})

	It("makes no write when a resync finds the whole platform matching", func() {
		mark := writes.count()
		updatePlatform(ctx, p, func(p *platformv1.ParserPlatform) { p.Annotations = map[string]string{"resync": "1"} })
		quietFor(time.Second)
		Expect(inNamespace(writes.since(mark), ns)).To(BeEmpty())
	})
})

var _ = Describe("Data volumes when a platform is deleted", func() {
	DescribeTable("follow spec.deletionPolicy",
		func(policy platformv1.DeletionPolicy, kept bool) {
			ctx := context.Background()
			ns := newNamespace(ctx)
			p := samplePlatform(ns, "vk")
			p.Spec.DeletionPolicy = policy
			Expect(k8sClient.Create(ctx, p)).To(Succeed())
			settled(ctx, p)
			// envtest runs no StatefulSet controller: make the PVC it would
			// make from the shard's volume claim template.
			sts := &appsv1.StatefulSet{}
			Expect(get(ctx, sts, ns, "vk-db-0")()).To(Succeed())
			template := sts.Spec.VolumeClaimTemplates[0]
			pvc := &corev1.PersistentVolumeClaim{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "data-vk-db-0-0", Labels: template.Labels},
				Spec:       template.Spec,
			}
			Expect(k8sClient.Create(ctx, pvc)).To(Succeed())

			Expect(k8sClient.Delete(ctx, p)).To(Succeed())
			Eventually(func() bool { return apierrors.IsNotFound(get(ctx, &platformv1.ParserPlatform{}, ns, "vk")()) },
				timeout, interval).Should(BeTrue(), "the platform goes")
			live := &corev1.PersistentVolumeClaim{}
			err := get(ctx, live, ns, "data-vk-db-0-0")()
			if kept {
				Expect(err).NotTo(HaveOccurred())
				Expect(live.DeletionTimestamp).To(BeNil(), "Retain keeps the data")
			} else {
				// The PVC protection finalizer keeps it until no pod uses it;
				// what matters is that its deletion was asked for.
				Expect(apierrors.IsNotFound(err) || live.DeletionTimestamp != nil).To(BeTrue(), "Delete removes the data")
			}
		},
		Entry("Retain (the default) keeps the PVCs", platformv1.DeletionPolicy(""), true),
		Entry("Delete removes them", platformv1.DeletionPolicyDelete, false),
	)
})

var _ = Describe("ServiceMonitor, PodMonitor and PrometheusRule", Ordered, func() {
	It("exist only while their Prometheus Operator CRDs do, and say why not", func() {
		ctx := context.Background()
		ns := newNamespace(ctx)
		p := samplePlatform(ns, "vk")
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		Eventually(condition(ctx, p, "Monitoring"), timeout, interval).Should(Satisfy(func(c *metav1.Condition) bool {
			return c != nil && c.Status == metav1.ConditionFalse && c.Reason == "CRDNotInstalled"
		}))

		gvks := []schema.GroupVersionKind{operatorresource.ServiceMonitorGVK, operatorresource.PodMonitorGVK, operatorresource.PrometheusRuleGVK}
		for _, gvk := range gvks {
			crd := upstreamCRD(gvk)
			Expect(k8sClient.Create(ctx, crd)).To(Succeed())
			DeferCleanup(func() { Expect(k8sClient.Delete(context.Background(), crd)).To(Succeed()) })
		}
		objects := make([]*unstructured.Unstructured, len(gvks))
		for i, gvk := range gvks {
			objects[i] = &unstructured.Unstructured{}
			objects[i].SetGroupVersionKind(gvk)
			Eventually(get(ctx, objects[i], ns, "vk"), timeout, interval).Should(Succeed(), "the CRD's arrival alone brings the %s", gvk.Kind)
			Expect(metav1.IsControlledBy(objects[i], p)).To(BeTrue())
		}
		Eventually(condition(ctx, p, "Monitoring"), timeout, interval).Should(Satisfy(func(c *metav1.Condition) bool {
			return c != nil && c.Status == metav1.ConditionTrue && containsAll(c.Message, "ServiceMonitor vk", "PodMonitor vk", "PrometheusRule vk")
		}))

		updatePlatform(ctx, p, func(p *platformv1.ParserPlatform) {
			p.Spec.Monitoring.ServiceMonitor = platformv1.ServiceMonitorDisabled
		})
		for _, obj := range objects {
			Eventually(func() bool { return apierrors.IsNotFound(get(ctx, obj.DeepCopy(), ns, "vk")()) }, timeout, interval).Should(BeTrue(), obj.GetKind())
		}
	})
})

// secretData reads Secrets' data as strings.
func secretData(ctx context.Context, ns string, names ...string) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, name := range names {
		s := &corev1.Secret{}
		Expect(get(ctx, s, ns, name)()).To(Succeed())
		out[name] = map[string]string{}
		for k, v := range s.Data {
			out[name][k] = string(v)
		}
	}
	return out
}

// runSecondOperator starts a fresh operator (new manager, empty cache), lets
// it reconcile p until it reports the platform's generation, and returns the
// writes it made.
func runSecondOperator(ctx context.Context) []string {
	return runSecondOperatorWith(ctx).since(0)
}

// runSecondOperatorWith runs the second operator and returns its counter.
func runSecondOperatorWith(ctx context.Context) *writeCounter {
	counter := &writeCounter{}
	cfg := rest.CopyConfig(testEnv.Config)
	cfg.Wrap(counter.wrap)
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: scheme.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}, Cache: CacheOptions(),
		Controller: ctrlConfigSkipNameValidation(),
	})
	Expect(err).NotTo(HaveOccurred())
	// Cache nodes and brokers answer at once, as in the suite's operator:
	// a dial that times out would pass for a quiet operator.
	r := &ParserPlatformReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(),
		CacheResolver:  func(map[string]string) rediscluster.Resolver { return unreachableRedis },
		BrokerResolver: closedManagementPort}
	Expect(r.SetupWithManager(mgr, 1)).To(Succeed())
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(done)
		Expect(mgr.Start(runCtx)).To(Succeed())
	}()
	// The new manager reconciles every platform once on start; wait until its
	// cache has synced and it has had time to act.
	Eventually(func() bool { return mgr.GetCache().WaitForCacheSync(runCtx) }, timeout, interval).Should(BeTrue())
	// Quiet: neither writes nor reads past the cache (a child read once
	// after the restart, memo.go) for a while; it reconciles every
	// platform of the suite, one at a time.
	requests := func() int { return counter.count() + counter.readCount() }
	last, lastChange := requests(), time.Now()
	Eventually(func() bool {
		if c := requests(); c != last {
			last, lastChange = c, time.Now()
		}
		return time.Since(lastChange) > 2*time.Second
	}, 4*timeout, 50*time.Millisecond).Should(BeTrue())
	stop()
	<-done
	return counter
}

// upstreamCRD is the kind's CRD as its project releases it (the Prometheus
// Operator's, KEDA's: hack/monitoring-crds.sh takes them from their Go
// modules), so the API server validates what the operator writes.
func upstreamCRD(gvk schema.GroupVersionKind) *apiextensionsv1.CustomResourceDefinition {
	GinkgoHelper()
	plural := strings.ToLower(gvk.Kind) + "s"
	path := filepath.Join(testutil.MonitoringCRDDir(GinkgoTB()), gvk.Group+"_"+plural+".yaml")
	data, err := os.ReadFile(path)
	Expect(err).NotTo(HaveOccurred())
	crd := &apiextensionsv1.CustomResourceDefinition{}
	Expect(yaml.Unmarshal(data, crd)).To(Succeed(), path)
	Expect(crd.Name).To(Equal(plural+"."+gvk.Group), path)
	return crd
}

func ptrQuantity(s string) *apiresource.Quantity { q := apiresource.MustParse(s); return &q }

func containsAll(s string, parts ...string) bool {
	for _, part := range parts {
		if !strings.Contains(s, part) {
			return false
		}
	}
	return true
}

// ctrlConfigSkipNameValidation lets a second manager in the same process
// register a controller with the same name, as a restarted operator would.
func ctrlConfigSkipNameValidation() ctrlconfig.Controller {
	return ctrlconfig.Controller{SkipNameValidation: ptrBool(true)}
}

func ptrBool(b bool) *bool { return &b }

// inNamespace keeps the requests to one namespace: other specs' platforms
// (one with a refused child, say) live in the same API server.
func inNamespace(requests []string, ns string) []string {
	var out []string
	for _, r := range requests {
		if strings.Contains(r, "/namespaces/"+ns+"/") {
			out = append(out, r)
		}
	}
	return out
}
