package controller

import (
	"context"
	"errors"
	"slices"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	operatorresource "github.com/vkparser/parser-operator/internal/resource"
)

// shardVolume makes the PVC the StatefulSet controller would make for shard
// 0 (envtest runs no StatefulSet controller), Bound as a provisioner would
// leave it, in StorageClass class.
func shardVolume(ctx context.Context, ns, class string) {
	sts := &appsv1.StatefulSet{}
	Expect(get(ctx, sts, ns, "vk-db-0")()).To(Succeed())
	template := sts.Spec.VolumeClaimTemplates[0]
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "data-vk-db-0-0", Labels: template.Labels},
		Spec:       *template.Spec.DeepCopy(),
	}
	pvc.Spec.StorageClassName = ptr.To(class)
	pvc.Spec.VolumeName = "pv-" + ns
	Expect(k8sClient.Create(ctx, pvc)).To(Succeed())
	pvc.Status.Phase = corev1.ClaimBound
	Expect(k8sClient.Status().Update(ctx, pvc)).To(Succeed())
}

func storageClass(ctx context.Context, name string, expandable bool) {
	sc := &storagev1.StorageClass{
		ObjectMeta:           metav1.ObjectMeta{Name: name},
		Provisioner:          "example.com/test",
		AllowVolumeExpansion: ptr.To(expandable),
	}
	Expect(client.IgnoreAlreadyExists(k8sClient.Create(ctx, sc))).To(Succeed())
}

func requestedSize(ctx context.Context, ns, pvc string) func() string {
	return func() string {
		live := &corev1.PersistentVolumeClaim{}
		if err := get(ctx, live, ns, pvc)(); err != nil {
			return err.Error()
		}
		return live.Spec.Resources.Requests.Storage().String()
	}
}

// orphanLikeTheGarbageCollector finishes a deletion with propagation Orphan
// as kube-controller-manager would (envtest runs none): the API server
// leaves the object with the "orphan" finalizer for the garbage collector,
// which releases the dependents and removes the finalizer.
func orphanLikeTheGarbageCollector(ctx context.Context, ns, name string) {
	Eventually(func() error {
		sts := &appsv1.StatefulSet{}
		if err := get(ctx, sts, ns, name)(); err != nil {
			return err
		}
		if sts.DeletionTimestamp == nil {
			return errors.New("not being deleted yet")
		}
		sts.Finalizers = slices.DeleteFunc(sts.Finalizers, func(f string) bool { return f == metav1.FinalizerOrphanDependents })
		return k8sClient.Update(ctx, sts)
	}, timeout, interval).Should(Succeed())
}

// collectGarbage deletes what the garbage collector would once the platform
// with uid is gone: every child that still names it as its owner.
func collectGarbage(ctx context.Context, ns string, uid types.UID) {
	for _, k := range managedKinds {
		list := k.list.DeepCopyObject().(client.ObjectList)
		Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
		objs, err := metaExtract(list)
		Expect(err).NotTo(HaveOccurred())
		for _, obj := range objs {
			if slices.ContainsFunc(obj.GetOwnerReferences(), func(r metav1.OwnerReference) bool { return r.UID == uid }) {
				Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, obj))).To(Succeed())
			}
		}
	}
}

func statefulSetUID(ctx context.Context, ns, name string) func() types.UID {
	return func() types.UID {
		sts := &appsv1.StatefulSet{}
		if err := get(ctx, sts, ns, name)(); err != nil {
			return ""
		}
		return sts.UID
	}
}

var _ = Describe("Storage growth", func() {
	var (
		ctx context.Context
		ns  string
		p   *platformv1.ParserPlatform
	)
	BeforeEach(func() {
		ctx = context.Background()
		ns, p = newSettledPlatform(ctx, fullPlatform)
	})

	It("expands the PVCs where the StorageClass allows it, re-creates the StatefulSet once, and leaves nothing Degraded", func() {
		storageClass(ctx, "expandable", true)
		shardVolume(ctx, ns, "expandable")
		before := statefulSetUID(ctx, ns, "vk-db-0")()

		updatePlatform(ctx, p, func(p *platformv1.ParserPlatform) { p.Spec.Database.Storage.Size = ptrQuantity("20Gi") })
		Eventually(requestedSize(ctx, ns, "data-vk-db-0-0"), timeout, interval).Should(Equal("20Gi"), "the operator expands the PVC")
		orphanLikeTheGarbageCollector(ctx, ns, "vk-db-0")
		Eventually(func() string {
			sts := &appsv1.StatefulSet{}
			if err := get(ctx, sts, ns, "vk-db-0")(); err != nil {
				return err.Error()
			}
			return sts.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests.Storage().String()
		}, timeout, interval).Should(Equal("20Gi"), "the StatefulSet comes back with the new template")
		after := statefulSetUID(ctx, ns, "vk-db-0")()
		Expect(after).NotTo(Equal(before))
		Eventually(condition(ctx, p, "Degraded"), timeout, interval).Should(Satisfy(haveStatus(metav1.ConditionFalse)))
		settled(ctx, p)
		Consistently(statefulSetUID(ctx, ns, "vk-db-0"), 2*time.Second, 100*time.Millisecond).Should(Equal(after),
			"re-created once, never in a loop")
	})

	It("waits for PVCs the operator cannot expand, says which, and completes once their StorageClass allows it", func() {
		storageClass(ctx, "fixed-size", false)
		shardVolume(ctx, ns, "fixed-size")
		before := statefulSetUID(ctx, ns, "vk-db-0")()

		updatePlatform(ctx, p, func(p *platformv1.ParserPlatform) { p.Spec.Database.Storage.Size = ptrQuantity("20Gi") })
		Eventually(condition(ctx, p, "Degraded"), timeout, interval).Should(Satisfy(func(c *metav1.Condition) bool {
			return c != nil && c.Status == metav1.ConditionTrue &&
				containsAll(c.Message, "StatefulSet vk-db-0", "PVC data-vk-db-0-0", `StorageClass "fixed-size" allows no volume expansion`)
		}))
		Expect(requestedSize(ctx, ns, "data-vk-db-0-0")()).To(Equal("10Gi"))
		Expect(statefulSetUID(ctx, ns, "vk-db-0")()).To(Equal(before), "nothing re-created while a volume is too small")

		// The cluster admin allows expansion. StorageClasses send the
		// operator no event; the refusal is looked at again within
		// refusalRetryInterval, and any change of the platform (here an
		// annotation) looks at once.
		sc := &storagev1.StorageClass{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Name: "fixed-size"}, sc)).To(Succeed())
		sc.AllowVolumeExpansion = ptr.To(true)
		Expect(k8sClient.Update(ctx, sc)).To(Succeed())
		updatePlatform(ctx, p, func(p *platformv1.ParserPlatform) { p.Annotations = map[string]string{"nudge": "1"} })
		Eventually(requestedSize(ctx, ns, "data-vk-db-0-0"), timeout, interval).Should(Equal("20Gi"))
		orphanLikeTheGarbageCollector(ctx, ns, "vk-db-0")
		Eventually(statefulSetUID(ctx, ns, "vk-db-0"), timeout, interval).ShouldNot(Equal(before))
		Eventually(condition(ctx, p, "Degraded"), timeout, interval).Should(Satisfy(haveStatus(metav1.ConditionFalse)))
	})
})

var _ = Describe("Data volumes and credentials when a platform is deleted", func() {
	It("reads deletionPolicy from the object being deleted: Delete, then paused, then Retain keeps every PVC", func() {
		ctx := context.Background()
		ns := newNamespace(ctx)
		p := samplePlatform(ns, "vk")
		p.Spec.DeletionPolicy = platformv1.DeletionPolicyDelete
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		settled(ctx, p)
		shardVolume(ctx, ns, "standard")

		updatePlatform(ctx, p, func(p *platformv1.ParserPlatform) { p.Spec.Paused = true })
		Eventually(condition(ctx, p, "Paused"), timeout, interval).Should(Satisfy(haveStatus(metav1.ConditionTrue)))
		// Retain and the delete in one go, while paused: no reconcile sees
		// Retain before the deletion.
		updatePlatform(ctx, p, func(p *platformv1.ParserPlatform) { p.Spec.DeletionPolicy = platformv1.DeletionPolicyRetain })
		Expect(k8sClient.Delete(ctx, p)).To(Succeed())
		Eventually(func() bool { return apierrors.IsNotFound(get(ctx, &platformv1.ParserPlatform{}, ns, "vk")()) },
			timeout, interval).Should(BeTrue(), "the platform goes")
		live := &corev1.PersistentVolumeClaim{}
		Expect(get(ctx, live, ns, "data-vk-db-0-0")()).To(Succeed())
		Expect(live.DeletionTimestamp).To(BeNil(), "Retain at the moment of deletion keeps the data")
	})

	It("keeps the credentials with retained volumes, and a re-created platform adopts them with the same passwords", func() {
		ctx := context.Background()
		ns, p := newSettledPlatform(ctx, fullPlatform)
		names := operatorresource.DataCredentialSecrets(p)
		Expect(names).To(ConsistOf("vk-db-0-credentials", "vk-db-1-credentials", "vk-cache", "vk-broker"))
		before := secretData(ctx, ns, names...)

		Expect(k8sClient.Delete(ctx, p)).To(Succeed())
		Eventually(func() bool { return apierrors.IsNotFound(get(ctx, &platformv1.ParserPlatform{}, ns, "vk")()) },
			timeout, interval).Should(BeTrue())
		for _, name := range names {
			s := &corev1.Secret{}
			Expect(get(ctx, s, ns, name)()).To(Succeed())
			Expect(s.OwnerReferences).To(BeEmpty(), "Secret %s is released, so the garbage collector keeps it", name)
			Expect(s.Annotations).To(HaveKeyWithValue(operatorresource.AnnotationRetainedFor, "vk"))
		}

		collectGarbage(ctx, ns, p.UID)
		again := fullPlatform(ns, "vk")
		Expect(k8sClient.Create(ctx, again)).To(Succeed())
		settled(ctx, again)
		Expect(secretData(ctx, ns, names...)).To(Equal(before), "the same passwords open the retained data")
		for _, name := range names {
			s := &corev1.Secret{}
			Expect(get(ctx, s, ns, name)()).To(Succeed())
			Expect(metav1.IsControlledBy(s, again)).To(BeTrue(), "Secret %s adopted", name)
			Expect(s.Annotations).NotTo(HaveKey(operatorresource.AnnotationRetainedFor))
		}
		Eventually(condition(ctx, again, "Degraded"), timeout, interval).Should(Satisfy(haveStatus(metav1.ConditionFalse)))
	})

	It("never generates a password over existing data: a deleted credentials Secret is refused, named, and nothing that reads it is touched", func() {
		ctx := context.Background()
		ns, p := newSettledPlatform(ctx, fullPlatform)
		shardVolume(ctx, ns, "standard")
		auth := &appsv1.Deployment{}
		Expect(get(ctx, auth, ns, "vk-auth")()).To(Succeed())
		authHash := auth.Spec.Template.Annotations[operatorresource.AnnotationConfigHash]

		Expect(k8sClient.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "vk-db-0-credentials"}})).To(Succeed())
		Eventually(condition(ctx, p, "DatabaseReady"), timeout, interval).Should(Satisfy(func(c *metav1.Condition) bool {
			return c != nil && c.Status == metav1.ConditionFalse && c.Reason == "CredentialsMissing" &&
				containsAll(c.Message, "Secret vk-db-0-credentials", "volumes of db-0 exist", "restore the Secret")
		}))
		Eventually(condition(ctx, p, "Degraded"), timeout, interval).Should(Satisfy(haveStatus(metav1.ConditionTrue)))
		Consistently(func() bool { return apierrors.IsNotFound(get(ctx, &corev1.Secret{}, ns, "vk-db-0-credentials")()) },
			2*time.Second, 100*time.Millisecond).Should(BeTrue(), "no new password is generated")
		Expect(get(ctx, auth, ns, "vk-auth")()).To(Succeed())
		Expect(auth.Spec.Template.Annotations[operatorresource.AnnotationConfigHash]).To(Equal(authHash),
			"pods that read the shard's credentials are not rolled")
		Expect(eventsIn(ctx, ns)).To(ContainElement(ContainSubstring("CredentialsMissing")))

		// A shard without data yet gets its password as before.
		Expect(get(ctx, &corev1.Secret{}, ns, "vk-db-1-credentials")()).To(Succeed())
	})
})
