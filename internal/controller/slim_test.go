package controller

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/resource"
)

// The cache holds the heavy kinds without their content (slim.go) and the
// childWriter skips children unchanged since they last matched (memo.go):
// neither may hide a hand edit, and neither may reach the API server.
var _ = Describe("Slim cache of children", func() {
	var (
		ctx context.Context
		ns  string
		p   *platformv1.ParserPlatform
	)

	BeforeEach(func() {
		ctx = context.Background()
		ns, p = newSettledPlatform(ctx, fullPlatform)
	})

	DescribeTable("restores a hand edit of content the cache does not hold, keeping what others added",
		func(name string, obj client.Object, edit func(client.Object), restored func(client.Object) bool) {
			Expect(get(ctx, obj, ns, name)()).To(Succeed())
			edit(obj)
			obj.SetLabels(merged(obj.GetLabels(), map[string]string{"team": "search"}))
			obj.SetAnnotations(merged(obj.GetAnnotations(), map[string]string{"example.com/note": "kept"}))
			Expect(k8sClient.Update(ctx, obj)).To(Succeed())
			Eventually(func() bool {
				fresh := newEmpty(obj)
				return get(ctx, fresh, ns, name)() == nil && restored(fresh) &&
					fresh.GetLabels()["team"] == "search" && fresh.GetAnnotations()["example.com/note"] == "kept"
			}, timeout, interval).Should(BeTrue())
			fresh := newEmpty(obj)
			Expect(get(ctx, fresh, ns, name)()).To(Succeed())
			Expect(fresh.GetAnnotations()).NotTo(HaveKey(fingerprintAnnotation))
		},
		Entry("Deployment container image", "vk-auth", &appsv1.Deployment{},
			func(o client.Object) { o.(*appsv1.Deployment).Spec.Template.Spec.Containers[0].Image = "evil:latest" },
			func(o client.Object) bool {
				return o.(*appsv1.Deployment).Spec.Template.Spec.Containers[0].Image == "registry.example.com/vk-parser/auth:1.4.0"
			}),
		Entry("StatefulSet container image", "vk-db-0", &appsv1.StatefulSet{},
			func(o client.Object) { o.(*appsv1.StatefulSet).Spec.Template.Spec.Containers[0].Image = "evil:latest" },
			func(o client.Object) bool {
				return o.(*appsv1.StatefulSet).Spec.Template.Spec.Containers[0].Image != "evil:latest"
			}),
		Entry("ConfigMap data key", "vk-shard-map", &corev1.ConfigMap{},
			func(o client.Object) {
				cm := o.(*corev1.ConfigMap)
				for k := range cm.Data {
					cm.Data[k] = "{}"
				}
				cm.Data["extra"] = "x"
			},
			func(o client.Object) bool {
				cm := o.(*corev1.ConfigMap)
				return cm.Data[resource.ShardMapKey] != "{}" && cm.Data[resource.ShardMapKey] != ""
			}),
		Entry("NetworkPolicy rule", "vk-database", &networkingv1.NetworkPolicy{},
			func(o client.Object) {
				np := o.(*networkingv1.NetworkPolicy)
				np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{
					Ports: []networkingv1.NetworkPolicyPort{{Port: ptr.To(intstr.FromInt32(5432))}},
				})
			},
			func(o client.Object) bool {
				for _, rule := range o.(*networkingv1.NetworkPolicy).Spec.Ingress {
					if len(rule.From) == 0 {
						return false // the rule from anywhere added by hand
					}
				}
				return len(o.(*networkingv1.NetworkPolicy).Spec.Ingress) > 0
			}),
		// A kind cached whole: its update starts from the cached copy,
		// which carries the fingerprint.
		Entry("Service port", "vk-db-0", &corev1.Service{},
			func(o client.Object) { o.(*corev1.Service).Spec.Ports[0].Port = 1234 },
			func(o client.Object) bool { return o.(*corev1.Service).Spec.Ports[0].Port == resource.PostgresPort }),
	)

	It("keeps kubectl rollout restart of a StatefulSet, though the cache has no pod template", func() {
		sts := &appsv1.StatefulSet{}
		Expect(get(ctx, sts, ns, "vk-db-1")()).To(Succeed())
		sts.Spec.Template.Annotations = merged(sts.Spec.Template.Annotations, map[string]string{restartedAtAnnotation: "2026-11-29T00:00:00Z"})
		Expect(k8sClient.Update(ctx, sts)).To(Succeed())
		quietFor(time.Second)
		updatePlatform(ctx, p, func(p *platformv1.ParserPlatform) { p.Spec.Database.Image = "postgres:17.9" })
		Eventually(func() string {
			_ = get(ctx, sts, ns, "vk-db-1")()
			return sts.Spec.Template.Spec.Containers[0].Image
		}, timeout, interval).Should(Equal("postgres:17.9"))
		Expect(sts.Spec.Template.Annotations).To(HaveKeyWithValue(restartedAtAnnotation, "2026-11-29T00:00:00Z"))
	})

	It("never writes the cache's fingerprint to the API server, and removes one put there by hand", func() {
		// Updates of every kind: a new image, new services (config), a new
		// autoscaling bound.
		updatePlatform(ctx, p, func(p *platformv1.ParserPlatform) {
			p.Spec.Services[0].Image = "registry.example.com/vk-parser/auth:3.0.0"
			p.Spec.Services = append(p.Spec.Services, platformv1.ServiceSpec{Name: "analytics", Image: "a:1", Port: 8004})
			p.Spec.Autoscaling.MaxReplicas = 7
		})
		settled(ctx, p)
		d := &appsv1.Deployment{}
		Expect(get(ctx, d, ns, "vk-auth")()).To(Succeed())
		Expect(d.Spec.Template.Spec.Containers[0].Image).To(HaveSuffix("3.0.0"))
		expectNoFingerprintIn(ctx, ns)

		d.Annotations = merged(d.Annotations, map[string]string{fingerprintAnnotation: "forged"})
		Expect(k8sClient.Update(ctx, d)).To(Succeed())
		Eventually(func() map[string]string {
			_ = get(ctx, d, ns, "vk-auth")()
			return d.Annotations
		}, timeout, interval).ShouldNot(HaveKey(fingerprintAnnotation))
	})

	It("reads nothing past the cache and writes nothing when a reconcile finds everything unchanged", func() {
		for i := range 3 {
			writeMark, readMark := writes.count(), writes.readCount()
			// A foreign label on a child wakes a reconcile of the platform
			// and changes nothing the operator sets.
			svc := &corev1.Service{}
			Eventually(func() error {
				if err := get(ctx, svc, ns, "vk-db-0")(); err != nil {
					return err
				}
				svc.Labels = merged(svc.Labels, map[string]string{"poke": string(rune('a' + i))})
				return k8sClient.Update(ctx, svc)
			}, timeout, interval).Should(Succeed())
			quietFor(time.Second)
			Expect(inNamespace(writes.since(writeMark), ns)).To(BeEmpty(), "events: %v", eventsIn(ctx, ns))
			Expect(inNamespace(writes.readsSince(readMark), ns)).To(BeEmpty(), "reads past the cache")
		}
		Expect(reconciler.memo.size()).To(BeNumerically(">", 30))
	})

	It("after a restart reads nothing past the cache and writes nothing: the status's digest names the verified state", func() {
		Eventually(func() string {
			_ = k8sClient.Get(ctx, client.ObjectKeyFromObject(p), p)
			return p.Status.ChildrenDigest
		}, timeout, interval).ShouldNot(BeEmpty())
		restartWrites, restartReads := runSecondOperatorCounting(ctx)
		Expect(inNamespace(restartWrites, ns)).To(BeEmpty())
		Expect(inNamespace(restartReads, ns)).To(BeEmpty(), "reads past the cache")
	})

	It("after a restart reads each slim child once past the cache when the digest does not name what it finds", func() {
		settled(ctx, p)
		// The suite's operator must not write the digest back before the
		// second one starts: it would, once it reconciled the platform.
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(p), p)).To(Succeed())
		digest := p.Status.ChildrenDigest
		Expect(digest).NotTo(BeEmpty())
		p.Status.ChildrenDigest = strings.Repeat("0", 32)
		Expect(k8sClient.Status().Update(ctx, p)).To(Succeed())
		restartWrites, restartReads := runSecondOperatorCounting(ctx)
		reads := inNamespace(restartReads, ns)
		seen := map[string]bool{}
		for _, r := range reads {
			Expect(seen[r]).To(BeFalse(), "read twice: %s", r)
			seen[r] = true
			Expect(r).To(SatisfyAny(ContainSubstring("/deployments/"), ContainSubstring("/statefulsets/"),
				ContainSubstring("/configmaps/"), ContainSubstring("/networkpolicies/")), "only slim kinds are read past the cache")
		}
		AddReportEntry("reads past the cache after a restart", len(reads))
		Expect(reads).NotTo(BeEmpty())
		// Its only write: the digest, back as it was.
		for _, w := range inNamespace(restartWrites, ns) {
			Expect(w).To(ContainSubstring("/parserplatforms/"), "only the platform's status is written")
		}
		Eventually(func() string {
			_ = k8sClient.Get(ctx, client.ObjectKeyFromObject(p), p)
			return p.Status.ChildrenDigest
		}, timeout, interval).Should(Equal(digest))
	})
})

// expectNoFingerprintIn fails if a child in ns carries the cache's
// fingerprint on the API server.
func expectNoFingerprintIn(ctx context.Context, ns string) {
	GinkgoHelper()
	lists := []client.ObjectList{&appsv1.DeploymentList{}, &appsv1.StatefulSetList{}, &corev1.ConfigMapList{},
		&corev1.SecretList{}, &corev1.ServiceList{}, &corev1.ServiceAccountList{}, &networkingv1.NetworkPolicyList{},
		&autoscalingv2.HorizontalPodAutoscalerList{}, &policyv1.PodDisruptionBudgetList{}}
	n := 0
	for _, list := range lists {
		Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
		objs, err := metaExtract(list)
		Expect(err).NotTo(HaveOccurred())
		for _, obj := range objs {
			n++
			Expect(obj.GetAnnotations()).NotTo(HaveKey(fingerprintAnnotation), "%s", describe(obj))
		}
	}
	Expect(n).To(BeNumerically(">", 30))
}

// runSecondOperatorCounting is runSecondOperator, returning the reads past
// the cache too.
func runSecondOperatorCounting(ctx context.Context) (writesMade, readsMade []string) {
	counter := runSecondOperatorWith(ctx)
	return counter.since(0), counter.readsSince(0)
}

func TestFingerprintIsTheTransforms(t *testing.T) {
	d := &appsv1.Deployment{
		TypeMeta: metav1.TypeMeta{Kind: "Deployment", APIVersion: "apps/v1"},
		ObjectMeta: metav1.ObjectMeta{Name: "vk-auth", Namespace: "ns", UID: "u1", ResourceVersion: "7",
			Annotations:   map[string]string{"a": "b"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Template: corev1.PodTemplateSpec{
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "auth:1"}}}}},
		Status: appsv1.DeploymentStatus{ReadyReplicas: 1},
	}
	want := fingerprint(d)
	if d.ManagedFields == nil || d.ResourceVersion != "7" || d.Status.ReadyReplicas != 1 || d.Kind == "" {
		t.Fatal("fingerprint changed its argument")
	}
	// Neither the resourceVersion, status, managedFields nor TypeMeta count.
	other := d.DeepCopy()
	other.ResourceVersion, other.Status, other.ManagedFields, other.TypeMeta = "9", appsv1.DeploymentStatus{}, nil, metav1.TypeMeta{}
	if got := fingerprint(other); got != want {
		t.Fatalf("fingerprint depends on resourceVersion, status, managedFields or TypeMeta: %s != %s", got, want)
	}

	cached := d.DeepCopy()
	out, err := slimChild(cached)
	if err != nil {
		t.Fatal(err)
	}
	slim := out.(*appsv1.Deployment)
	if got := cachedFingerprint(slim); got != want {
		t.Fatalf("transform's fingerprint %q, want %q", got, want)
	}
	if len(slim.Spec.Template.Spec.Containers) != 0 || slim.ManagedFields != nil {
		t.Fatal("the pod template or managedFields stayed in the cache")
	}
	if *slim.Spec.Replicas != 2 || slim.Status.ReadyReplicas != 1 || slim.Annotations["a"] != "b" {
		t.Fatal("the transform dropped replicas, status or annotations")
	}
	again, _ := slimChild(slim)
	if cachedFingerprint(again.(*appsv1.Deployment)) != want {
		t.Fatal("the transform is not idempotent")
	}
	// Also for a kind cached whole, whose annotations then hold the
	// fingerprint.
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "s", ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "m"}}},
		Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.1"}}
	once, _ := slimChild(svc.DeepCopy())
	twice, _ := slimChild(once)
	if cachedFingerprint(once.(*corev1.Service)) != cachedFingerprint(twice.(*corev1.Service)) {
		t.Fatal("the transform applied again to a cached Service changed its fingerprint")
	}
	forged := svc.DeepCopy()
	forged.Annotations = map[string]string{fingerprintAnnotation: cachedFingerprint(once.(*corev1.Service))}
	if f, _ := slimChild(forged); cachedFingerprint(f.(*corev1.Service)) != handSetFingerprint {
		t.Fatal("a fingerprint annotation put on the server by hand passed for the verified content")
	}

	// A workload's fingerprint is its generation, which the API server
	// moves with every change of its spec.
	edited := d.DeepCopy()
	edited.Generation++
	if fingerprint(edited) == want || !strings.HasPrefix(want, "generation ") {
		t.Fatalf("a new generation kept the fingerprint %q", want)
	}
	// A kind without one: any change of content changes it.
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "vk-registry"}, Data: map[string]string{"k": "v"}}
	cmEdited := cm.DeepCopy()
	cmEdited.Data["k"] = "evil"
	if fingerprint(cm) == fingerprint(cmEdited) {
		t.Fatal("a data edit kept the fingerprint")
	}
	cmEdited = cm.DeepCopy()
	cmEdited.Labels = map[string]string{"team": "search"}
	if fingerprint(cm) != fingerprint(cmEdited) {
		t.Fatal("a label changed the fingerprint")
	}
}

func TestSlimKindsKeepWhatIsReadFromTheCache(t *testing.T) {
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "vk-db-0", UID: "u"},
		Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](1), ServiceName: "vk-db-0",
			Selector:             &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "data"}}},
			Template:             corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "pg"}}}}},
	}
	out, _ := slimChild(sts)
	s := out.(*appsv1.StatefulSet)
	if len(s.Spec.VolumeClaimTemplates) != 1 || s.Spec.Selector == nil || s.Spec.ServiceName == "" || *s.Spec.Replicas != 1 {
		t.Fatal("the StatefulSet lost what storage.go, observe.go or keepCacheUntilDrained read")
	}
	cm := &corev1.ConfigMap{Data: map[string]string{"k": "v"}, BinaryData: map[string][]byte{"b": {1}}}
	out, _ = slimChild(cm)
	if c := out.(*corev1.ConfigMap); c.Data != nil || c.BinaryData != nil || cachedFingerprint(c) == "" {
		t.Fatal("a ConfigMap's data stayed in the cache")
	}
	np := &networkingv1.NetworkPolicy{Spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{"Ingress"}}}
	out, _ = slimChild(np)
	if n := out.(*networkingv1.NetworkPolicy); len(n.Spec.PolicyTypes) != 0 || cachedFingerprint(n) == "" {
		t.Fatal("a NetworkPolicy's rules stayed in the cache")
	}
	secret := &corev1.Secret{Data: map[string][]byte{"password": []byte("x")}}
	out, _ = slimChild(secret)
	if s := out.(*corev1.Secret); string(s.Data["password"]) != "x" || cachedFingerprint(s) == "" {
		t.Fatal("a Secret, whose data credentials.go reads, lost it")
	}
}

func TestUpdatedDropsTheFingerprint(t *testing.T) {
	w := &childWriter{}
	live := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "s", ResourceVersion: "3",
		Annotations: map[string]string{fingerprintAnnotation: "x", "foreign": "kept"}}}
	desired := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "s", Annotations: map[string]string{"ours": "1"}}}
	out := w.updated(desired, live)
	if _, ok := out.GetAnnotations()[fingerprintAnnotation]; ok {
		t.Fatal("an update would write the cache's fingerprint")
	}
	if a := out.GetAnnotations(); a["foreign"] != "kept" || a["ours"] != "1" {
		t.Fatalf("annotations %v", a)
	}
	if !strings.Contains(fingerprintAnnotation, "/") {
		t.Fatal("the annotation needs a prefix of the operator's own")
	}
}

func TestMemoHitsOnlyTheVerifiedState(t *testing.T) {
	platform := types.NamespacedName{Namespace: "ns", Name: "vk"}
	m := &childMemo{}
	stored := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "vk-registry", UID: "u1", ResourceVersion: "5"}, Data: map[string]string{"k": "v"}}
	m.record(platform, stored, "", "d1")
	cached := func(rv, fp string, uid types.UID) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "vk-registry", UID: uid, ResourceVersion: rv,
			Annotations: map[string]string{fingerprintAnnotation: fp}}}
	}
	fp := fingerprint(stored)
	for _, c := range []struct {
		name    string
		live    *corev1.ConfigMap
		desired string
		want    bool
	}{
		{"same fingerprint, newer resourceVersion", cached("9", fp, "u1"), "d1", true},
		{"another desired state", cached("9", fp, "u1"), "d2", false},
		{"another fingerprint", cached("9", "edited", "u1"), "d1", false},
		{"the very object written", cached("5", "other-encoding", "u1"), "d1", true},
		{"created anew", cached("5", fp, "u2"), "d1", false},
		{"no fingerprint (not from the cache)", cached("5", "", "u1"), "d1", false},
	} {
		if got := m.hit(platform, c.live, c.desired); got != c.want {
			t.Errorf("%s: hit %v, want %v", c.name, got, c.want)
		}
	}
	m.forget(platform, stored)
	if m.hit(platform, cached("5", "other-encoding", "u1"), "d1") || m.size() != 0 {
		t.Error("a forgotten child still hits")
	}
	m.record(platform, stored, "", "d1")
	m.forgetPlatform(platform)
	if m.size() != 0 {
		t.Error("a deleted platform's children are still remembered")
	}
}

func TestMemoSeedsOnlyAVerifiedState(t *testing.T) {
	platform := types.NamespacedName{Namespace: "ns", Name: "vk"}
	m := &childMemo{}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "vk-registry", UID: "u1", ResourceVersion: "5"}, Data: map[string]string{"k": "v"}}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "vk-auth", UID: "u2", ResourceVersion: "6"}}
	m.record(platform, cm, "", "d1")
	m.record(platform, svc, "", "d2")
	keys := []string{memoKey(cm), memoKey(svc)}
	digest := m.digest(platform, keys)
	if digest == "" || m.digest(platform, append(keys, "Deployment/vk-auth")) != "" {
		t.Fatal("a digest needs every named child verified")
	}
	// What a restarted operator finds in its cache.
	found := func() map[string]memoEntry {
		return map[string]memoEntry{
			memoKey(cm):  {uid: "u1", resourceVersion: "8", fingerprint: fingerprint(cm), desired: "d1"},
			memoKey(svc): {uid: "u2", resourceVersion: "9", fingerprint: fingerprint(svc), desired: "d2"},
		}
	}
	for _, c := range []struct {
		name   string
		change func(map[string]memoEntry)
	}{
		{"a child's content changed", func(e map[string]memoEntry) { x := e[memoKey(cm)]; x.fingerprint = "edited"; e[memoKey(cm)] = x }},
		{"a child created anew", func(e map[string]memoEntry) { x := e[memoKey(svc)]; x.uid = "u3"; e[memoKey(svc)] = x }},
		{"another desired state", func(e map[string]memoEntry) { x := e[memoKey(cm)]; x.desired = "d9"; e[memoKey(cm)] = x }},
		{"a child more", func(e map[string]memoEntry) {
			e["Service/vk-new"] = memoEntry{uid: "u4", fingerprint: "f", desired: "d"}
		}},
		{"a child less", func(e map[string]memoEntry) { delete(e, memoKey(svc)) }},
	} {
		candidates := found()
		c.change(candidates)
		restarted := &childMemo{}
		if restarted.seed(platform, candidates, digest) || restarted.size() != 0 {
			t.Errorf("%s: seeded", c.name)
		}
	}
	restarted := &childMemo{}
	if !restarted.seed(platform, found(), digest) || restarted.size() != 2 {
		t.Fatal("the state the digest names was not taken as verified")
	}
	live := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "vk-registry", UID: "u1", ResourceVersion: "8",
		Annotations: map[string]string{fingerprintAnnotation: fingerprint(cm)}}}
	if !restarted.hit(platform, live, "d1") || restarted.digest(platform, keys) != digest {
		t.Fatal("a seeded child does not hit, or the digest moved")
	}
	if restarted.seed(platform, found(), digest) {
		t.Fatal("seeded a memo that already holds the platform")
	}
}

func TestTheCacheSharesRepeatedStringsAndLabelSets(t *testing.T) {
	child := func(name string) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: strings.Clone("team-a"),
			Labels:          map[string]string{"app.kubernetes.io/instance": "vk", "app.kubernetes.io/component": "auth"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "platform.vkparser.io/v1alpha1", Kind: "ParserPlatform", Name: "vk", UID: types.UID(strings.Clone("u"))}}},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app.kubernetes.io/instance": "vk"}}}
	}
	a, _ := slimChild(child("vk-auth"))
	b, _ := slimChild(child("vk-auth-headless"))
	sa, sb := a.(*corev1.Service), b.(*corev1.Service)
	same := func(x, y any) bool { return reflect.ValueOf(x).UnsafePointer() == reflect.ValueOf(y).UnsafePointer() }
	if !same(sa.Labels, sb.Labels) || !same(sa.Spec.Selector, sb.Spec.Selector) {
		t.Fatal("two children with the same labels or selector keep a map each")
	}
	if unsafe.StringData(sa.Namespace) != unsafe.StringData(sb.Namespace) ||
		unsafe.StringData(string(sa.OwnerReferences[0].UID)) != unsafe.StringData(string(sb.OwnerReferences[0].UID)) {
		t.Fatal("two children keep a copy each of their namespace or owner's UID")
	}
	if sa.Labels["app.kubernetes.io/component"] != "auth" || sa.Namespace != "team-a" || sa.OwnerReferences[0].Name != "vk" {
		t.Fatal("sharing changed what the child says")
	}
}
