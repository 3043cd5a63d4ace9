package controller

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/backup"
	operatorresource "github.com/vkparser/parser-operator/internal/resource"
	"github.com/vkparser/parser-operator/internal/status"
)

// The restore at creation, against the suite's platform reconciler (which
// withholds the apps) and the restore controller of backup_test.go's
// manager, with sets in the real S3 server.

var _ = Describe("Restore at creation", Ordered, func() {
	BeforeAll(startBackupControllers)

	var (
		ctx    context.Context
		ns     string
		secret *corev1.Secret
	)

	BeforeEach(func() {
		ctx = context.Background()
		ns = newNamespace(ctx)
		secret = storeSecret(ns)
		Expect(k8sClient.Create(ctx, secret)).To(Succeed())
	})

	// restoring is a platform of shards shards restored from old's set.
	restoring := func(shards int32, set string) *platformv1.ParserPlatform {
		p := samplePlatform(ns, "vk")
		p.Spec.Database.Shards = shards
		p.Spec.Database.Restore = &platformv1.RestoreSpec{ObjectStore: testObjectStore(), BackupSet: set, SourcePlatform: "old"}
		return p
	}
	// oldSet writes a complete 2-shard set of platform "old".
	oldSet := func() string {
		set := backup.NewSetID(backupClock.Now().Add(-time.Hour))
		writeSet(ctx, restoring(2, set), backup.Platform{Namespace: ns, Name: "old"}, set)
		return set
	}
	deployments := func() int {
		list := &appsv1.DeploymentList{}
		Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
		return len(list.Items)
	}
	markShardsReady := func(p *platformv1.ParserPlatform) {
		for i := range operatorresource.ShardCount(p) {
			Eventually(func() error {
				s := &appsv1.StatefulSet{}
				if err := get(ctx, s, ns, operatorresource.ShardStatefulSetName(p, i))(); err != nil {
					return err
				}
				s.Status = appsv1.StatefulSetStatus{ObservedGeneration: s.Generation, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1}
				return k8sClient.Status().Update(ctx, s)
			}, timeout, interval).Should(Succeed())
		}
	}

	It("withholds the app Deployments until every shard's restore Job succeeded, and records it once", func() {
		set := oldSet()
		p := restoring(2, backup.Latest)
		p.Spec.Backup = &platformv1.BackupSpec{Schedule: "@every 1h", Retain: 1, ObjectStore: testObjectStore()}
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		onDemand := &platformv1.ParserPlatformBackup{ObjectMeta: metav1.ObjectMeta{Name: "early", Namespace: ns}, Spec: platformv1.ParserPlatformBackupSpec{Platform: "vk"}}
		Expect(k8sClient.Create(ctx, onDemand)).To(Succeed())

		By("latest is resolved once; shards start, apps do not")
		Eventually(func() string {
			latest := &platformv1.ParserPlatform{}
			if err := get(ctx, latest, ns, "vk")(); err != nil || latest.Status.Restore == nil {
				return ""
			}
			return latest.Status.Restore.BackupSet
		}, timeout, interval).Should(Equal(set))
		Eventually(get(ctx, &appsv1.StatefulSet{}, ns, "vk-db-1"), timeout, interval).Should(Succeed())
		Consistently(deployments, "500ms", interval).Should(BeZero())
		Expect(get(ctx, &batchv1.Job{}, ns, "vk-restore-db-0")()).NotTo(Succeed(), "no restore before the shard is ready")

		Eventually(getBackup(ctx, ns, "early"), timeout, interval).Should(Satisfy(func(b *platformv1.ParserPlatformBackup) bool {
			return b != nil && b.Status.Phase == platformv1.BackupPending && strings.Contains(b.Status.Message, "restore at creation")
		}), "no backup of shards still being restored (its retention could prune the set being restored)")

		By("ready shards get a restore Job each")
		markShardsReady(p)
		secrets := append(shardSecrets(ctx, p), secret)
		for i := range 2 {
			j := &batchv1.Job{}
			Eventually(get(ctx, j, ns, fmt.Sprintf("vk-restore-db-%d", i)), timeout, interval).Should(Succeed())
			checkJobPod(j, secrets...)
			Expect(metav1.IsControlledBy(j, p)).To(BeTrue())
			Expect(j.Spec.Template.Spec.Containers[0].Command).To(ContainElements("download", "--set", set, "--platform", "old"))
		}
		finishJob(ctx, ns, "vk-restore-db-0", true, "")
		Consistently(deployments, "500ms", interval).Should(BeZero(), "one shard restored is not the platform restored")

		By("every shard restored: recorded, and the apps start")
		finishJob(ctx, ns, "vk-restore-db-1", true, "")
		Eventually(condition(ctx, p, status.TypeRestored), timeout, interval).Should(Satisfy(haveStatus(metav1.ConditionTrue)))
		Eventually(deployments, timeout, interval).Should(BeNumerically(">=", 3))
		latest := &platformv1.ParserPlatform{}
		Expect(get(ctx, latest, ns, "vk")()).To(Succeed())
		Expect(latest.Status.Restore.CompletedAt).NotTo(BeNil())
		Expect(latest.Annotations).To(HaveKeyWithValue(AnnotationRestored, set))
		Eventually(getBackup(ctx, ns, "early"), timeout, interval).Should(Satisfy(phase(platformv1.BackupRunning)), "the backup starts once restored")

		By("never restored twice: deleting a restore Job does not bring it back")
		Expect(k8sClient.Delete(ctx, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "vk-restore-db-0", Namespace: ns}},
			client.PropagationPolicy(metav1.DeletePropagationBackground))).To(Succeed())
		Consistently(get(ctx, &batchv1.Job{}, ns, "vk-restore-db-0"), "500ms", interval).ShouldNot(Succeed())
	})

	It("refuses a set whose shard count differs from database.shards, naming both counts, and starts no app", func() {
		oldSet()
		p := restoring(3, backup.Latest)
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		Eventually(condition(ctx, p, status.TypeRestored), timeout, interval).Should(Satisfy(func(c *metav1.Condition) bool {
			return c != nil && c.Status == metav1.ConditionFalse && c.Reason == "ShardCountMismatch" &&
				strings.Contains(c.Message, "has 2 shards but spec.database.shards is 3")
		}))
		Eventually(condition(ctx, p, status.TypeDegraded), timeout, interval).Should(Satisfy(func(c *metav1.Condition) bool {
			return c != nil && c.Status == metav1.ConditionTrue && strings.Contains(c.Message, "has 2 shards but spec.database.shards is 3")
		}))
		markShardsReady(p)
		Consistently(deployments, "500ms", interval).Should(BeZero())
		Expect(get(ctx, &batchv1.Job{}, ns, "vk-restore-db-0")()).NotTo(Succeed())
	})

	It("refuses a set with a missing object, naming the object, and a failed restore Job, naming the shard, the object and why", func() {
		set := oldSet()
		missing := fmt.Sprintf("envtest/%s/old/%s/shard-1.dump", ns, set)
		Expect(s3.Client(GinkgoTB()).RemoveObject(ctx, s3.Bucket, missing, minio.RemoveObjectOptions{})).To(Succeed())
		p := restoring(2, set)
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		Eventually(condition(ctx, p, status.TypeRestored), timeout, interval).Should(Satisfy(func(c *metav1.Condition) bool {
			return c != nil && c.Status == metav1.ConditionFalse && c.Reason == "BackupSetUnusable" && strings.Contains(c.Message, missing)
		}))
		markShardsReady(p)
		Consistently(deployments, "500ms", interval).Should(BeZero())

		By("a corrupt dump is caught by the Job's verified download")
		ns2 := ns
		good := oldSetIn(ctx, ns2, "old2")
		q := samplePlatform(ns2, "vk2")
		q.Spec.Database.Shards = 2
		q.Spec.Database.Restore = &platformv1.RestoreSpec{ObjectStore: testObjectStore(), BackupSet: good, SourcePlatform: "old2"}
		Expect(k8sClient.Create(ctx, q)).To(Succeed())
		markShardsReady(q)
		Eventually(get(ctx, &batchv1.Job{}, ns2, "vk2-restore-db-0"), timeout, interval).Should(Succeed())
		failedPod(ctx, ns2, "vk2-restore-db-0", "restore", "parser-operator backup download: object envtest/x/shard-0.dump: sha256 differs from the manifest")
		finishJob(ctx, ns2, "vk2-restore-db-0", false, "BackoffLimitExceeded")
		Eventually(condition(ctx, q, status.TypeRestored), timeout, interval).Should(Satisfy(func(c *metav1.Condition) bool {
			return c != nil && c.Reason == "RestoreFailed" && strings.Contains(c.Message, "shard 0") &&
				strings.Contains(c.Message, fmt.Sprintf("envtest/%s/old2/%s/shard-0.dump", ns2, good)) && strings.Contains(c.Message, "sha256 differs")
		}))
		Consistently(func() error {
			return get(ctx, &appsv1.Deployment{}, ns2, "vk2-auth")()
		}, "500ms", interval).ShouldNot(Succeed())
	})
})

// oldSetIn writes a complete 2-shard set of platform name in ns.
func oldSetIn(ctx context.Context, ns, name string) string {
	set := backup.NewSetID(backupClock.Now().Add(-time.Hour))
	p := samplePlatform(ns, name)
	p.Spec.Database.Shards = 2
	writeSet(ctx, p, backup.Platform{Namespace: ns, Name: name}, set)
	return set
}
