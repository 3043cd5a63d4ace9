package controller

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/backup"
	"github.com/vkparser/parser-operator/internal/backup/s3test"
	"github.com/vkparser/parser-operator/internal/metrics"
	operatorresource "github.com/vkparser/parser-operator/internal/resource"
	"github.com/vkparser/parser-operator/internal/status"
)

// The backup and restore controllers run in a manager of their own, started
// by each container that needs them beside the suite's (which runs the platform reconciler), with a fake
// clock: the schedule fires when the test moves the clock. A real S3 server
// (versitygw, internal/backup/s3test) holds the sets; what the Jobs would
// write there (dumps, records, the manifest) the test writes with the data
// plane itself, and it sets the Jobs' status, since envtest runs no Job
// controller.

const testOperatorImage = "registry.example.com/parser-operator:test"

// runStep is how far past a scheduled run the tests move the clock: more
// than the seconds between setting the clock and creating the platform.
const runStep = 10 * time.Second

var (
	backupClock *clocktesting.FakeClock
	s3          *s3test.Server
)

func startBackupControllers() {
	s3 = s3test.Start(GinkgoTB())
	backupClock = clocktesting.NewFakeClock(time.Now())
	mgr, err := ctrl.NewManager(testEnv.Config, ctrl.Options{
		Scheme:  scheme.Scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache:   BackupCacheOptions(CacheOptions()),
		// Each container that needs these controllers starts (and stops)
		// its own manager; controller names are unique only per manager.
		Controller: ctrlconfig.Controller{SkipNameValidation: ptr.To(true)},
	})
	Expect(err).NotTo(HaveOccurred())
	Expect((&ParserPlatformBackupReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("parser-operator"),
		Clock: backupClock, OperatorImage: testOperatorImage,
	}).SetupWithManager(mgr)).To(Succeed())
	Expect((&BackupScheduleReconciler{
		Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("parser-operator"),
		Clock: backupClock, MaxWait: 100 * time.Millisecond,
	}).SetupWithManager(mgr)).To(Succeed())
	Expect((&RestoreReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("parser-operator"),
		Clock: backupClock, OperatorImage: testOperatorImage,
	}).SetupWithManager(mgr)).To(Succeed())
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(done)
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
	DeferCleanup(func() { stop(); <-done })
}

// storeSecret is the object store Secret; its values must never show up in
// a Job's command line or env literals.
func storeSecret(ns string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "s3", Namespace: ns},
		StringData: map[string]string{backup.AccessKeyIDKey: s3test.AccessKeyID, backup.SecretAccessKeyKey: s3test.SecretAccessKey},
	}
}

func testObjectStore() platformv1.ObjectStoreSpec {
	return platformv1.ObjectStoreSpec{Endpoint: s3.Endpoint, Bucket: s3.Bucket, Prefix: "envtest", SecretRef: platformv1.SecretRef{Name: "s3"}}
}

func testStore() *backup.Store {
	store, err := backup.NewStore(s3.ObjectStore("envtest"))
	Expect(err).NotTo(HaveOccurred())
	return store
}

// writeShardDump does what a shard's dump Job does to the store.
func writeShardDump(ctx context.Context, ns, platform, set string, i int) {
	dump := bytes.NewReader(append([]byte("PGDMP"), fmt.Sprintf(" shard %d of %s", i, platform)...))
	started := backupClock.Now()
	if t, err := backup.ParseSetID(set); err == nil && started.Before(t) {
		started = t
	}
	_, err := testStore().UploadShard(ctx, backup.Platform{Namespace: ns, Name: platform}, set, i, dump,
		backup.ShardMeta{StartedAt: started, Position: &backup.Position{LSN: fmt.Sprintf("0/%X", 0x1000+i), Time: started}})
	Expect(err).NotTo(HaveOccurred())
}

// writeSet writes a complete set of p's shape, as the Jobs would.
func writeSet(ctx context.Context, p *platformv1.ParserPlatform, owner backup.Platform, set string) {
	for i := range operatorresource.ShardCount(p) {
		writeShardDump(ctx, owner.Namespace, owner.Name, set, i)
	}
	_, err := testStore().WriteManifest(ctx, owner, set, backup.ManifestInput{
		ShardCount: operatorresource.ShardCount(p),
		ShardMap:   []byte(operatorresource.ShardMapConfigMap(p).Data[operatorresource.ShardMapKey]),
	})
	Expect(err).NotTo(HaveOccurred())
}

// finishJob sets the status the Job controller would set on success or
// failure (the API server checks its consistency).
func finishJob(ctx context.Context, ns, name string, succeeded bool, reason string) {
	Eventually(func() error {
		j := &batchv1.Job{}
		if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, j); err != nil {
			return err
		}
		now := metav1.Now()
		start := metav1.NewTime(now.Add(-time.Minute))
		j.Status.StartTime = &start
		if succeeded {
			j.Status.Succeeded, j.Status.CompletionTime = 1, &now
			j.Status.Conditions = []batchv1.JobCondition{
				{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: now},
				{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: now},
			}
		} else {
			j.Status.Failed = 1
			j.Status.Conditions = []batchv1.JobCondition{
				{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: reason, Message: "Job has reached the specified backoff limit", LastTransitionTime: now},
				{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: reason, Message: "Job has reached the specified backoff limit", LastTransitionTime: now},
			}
		}
		return k8sClient.Status().Update(ctx, j)
	}, timeout, interval).Should(Succeed())
}

// failedPod is the pod of a failed Job as the kubelet leaves it: the
// container's last output in its termination message.
func failedPod(ctx context.Context, ns, job, container, message string) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: job + "-abcde", Namespace: ns, Labels: map[string]string{batchv1.JobNameLabel: job}},
		Spec:       corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: container, Image: "postgres:16-alpine"}}},
	}
	Expect(k8sClient.Create(ctx, pod)).To(Succeed())
	pod.Status.Phase = corev1.PodFailed
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{
		Name: container, Image: "postgres:16-alpine",
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error", Message: message}},
	}}
	Expect(k8sClient.Status().Update(ctx, pod)).To(Succeed())
}

func getBackup(ctx context.Context, ns, name string) func() *platformv1.ParserPlatformBackup {
	return func() *platformv1.ParserPlatformBackup {
		b := &platformv1.ParserPlatformBackup{}
		if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, b); err != nil {
			return nil
		}
		return b
	}
}

func backupsOf(ctx context.Context, ns string) []platformv1.ParserPlatformBackup {
	list := &platformv1.ParserPlatformBackupList{}
	Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
	slices.SortFunc(list.Items, func(a, b platformv1.ParserPlatformBackup) int { return strings.Compare(a.Name, b.Name) })
	return list.Items
}

func phase(p platformv1.BackupPhase) func(*platformv1.ParserPlatformBackup) bool {
	return func(b *platformv1.ParserPlatformBackup) bool { return b != nil && b.Status.Phase == p }
}

// secretValueKeys are the keys whose values are secret (a shard's user and
// database name are not).
var secretValueKeys = []string{operatorresource.KeyPassword, operatorresource.KeyURI, backup.AccessKeyIDKey, backup.SecretAccessKeyKey}

// checkJobPod runs a Job's pod template through the upstream Pod Security
// evaluator (restricted, latest) and checks that no value of the given
// Secrets appears in an argument or an env literal.
func checkJobPod(j *batchv1.Job, secrets ...*corev1.Secret) {
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	Expect(err).NotTo(HaveOccurred())
	for _, r := range evaluator.EvaluatePod(api.LevelVersion{Level: api.LevelRestricted, Version: api.LatestVersion()}, &j.Spec.Template.ObjectMeta, &j.Spec.Template.Spec) {
		Expect(r.Allowed).To(BeTrue(), "Job %s: %s (%s)", j.Name, r.ForbiddenReason, r.ForbiddenDetail)
	}
	spec := j.Spec.Template.Spec
	for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
		literals := slices.Concat(c.Command, c.Args)
		for _, e := range c.Env {
			literals = append(literals, e.Value)
		}
		for _, s := range secrets {
			for _, k := range secretValueKeys {
				v := s.StringData[k]
				if v == "" {
					v = string(s.Data[k])
				}
				for _, l := range literals {
					if v != "" {
						Expect(l).NotTo(ContainSubstring(v), "Job %s container %s carries %s/%s", j.Name, c.Name, s.Name, k)
					}
				}
			}
		}
	}
	Expect(spec.RestartPolicy).To(Equal(corev1.RestartPolicyNever))
	Expect(j.Spec.BackoffLimit).NotTo(BeNil())
	Expect(*j.Spec.BackoffLimit).To(BeNumerically("<=", 1))
	Expect(j.Spec.ActiveDeadlineSeconds).NotTo(BeNil())
}

func shardSecrets(ctx context.Context, p *platformv1.ParserPlatform) []*corev1.Secret {
	var out []*corev1.Secret
	for i := range operatorresource.ShardCount(p) {
		s := &corev1.Secret{}
		Eventually(get(ctx, s, p.Namespace, operatorresource.ShardSecretName(p, i)), timeout, interval).Should(Succeed())
		out = append(out, s)
	}
	return out
}

var _ = Describe("Backups", Ordered, func() {
	BeforeAll(startBackupControllers)

	var (
		ctx    context.Context
		ns     string
		p      *platformv1.ParserPlatform
		secret *corev1.Secret
	)

	BeforeEach(func() {
		ctx = context.Background()
		ns = newNamespace(ctx)
		secret = storeSecret(ns)
		Expect(k8sClient.Create(ctx, secret)).To(Succeed())
		p = samplePlatform(ns, "vk")
		p.Spec.Database.Shards = 2
		// @every: runs at creation + k hours, so the steps below (an hour
		// and runStep more) always reach exactly the run they mean.
		p.Spec.Backup = &platformv1.BackupSpec{Schedule: "@every 1h", Retain: 2, ObjectStore: testObjectStore()}
		backupClock.SetTime(time.Now())
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
	})

	It("creates a ParserPlatformBackup per scheduled run, runs its Jobs and follows them to Completed, then Failed; the schedule goes on", func() {
		Eventually(condition(ctx, p, status.TypeBackupReady), timeout, interval).Should(Satisfy(haveStatus(metav1.ConditionUnknown)))
		Consistently(func() int { return len(backupsOf(ctx, ns)) }, "300ms", interval).Should(BeZero(), "no run is due yet")

		By("the clock reaching the first run")
		backupClock.Step(time.Hour + runStep)
		Eventually(func() int { return len(backupsOf(ctx, ns)) }, timeout, interval).Should(Equal(1))
		first := backupsOf(ctx, ns)[0]
		Expect(first.Name).To(HavePrefix("vk-backup-"))
		Expect(metav1.IsControlledBy(&first, p)).To(BeTrue())
		Eventually(getBackup(ctx, ns, first.Name), timeout, interval).Should(Satisfy(phase(platformv1.BackupRunning)))
		set := getBackup(ctx, ns, first.Name)().Status.BackupSet
		_, err := backup.ParseSetID(set)
		Expect(err).NotTo(HaveOccurred())

		By("one dump Job per shard: restricted, no secret value, owned by the backup")
		secrets := append(shardSecrets(ctx, p), secret)
		for i := range 2 {
			j := &batchv1.Job{}
			Eventually(get(ctx, j, ns, first.Name+fmt.Sprintf("-db-%d", i)), timeout, interval).Should(Succeed())
			checkJobPod(j, secrets...)
			Expect(metav1.GetControllerOf(j).Kind).To(Equal("ParserPlatformBackup"))
			Expect(metav1.GetControllerOf(j).Name).To(Equal(first.Name))
			c := j.Spec.Template.Spec.Containers[0]
			Expect(c.Image).To(Equal("postgres:16-alpine"))
			Expect(c.Command).To(ContainElements("dump-shard", "--set", set, "--shard", fmt.Sprint(i)))
			Expect(j.Spec.Template.Spec.InitContainers[0].Image).To(Equal(testOperatorImage))
		}
		Consistently(get(ctx, &batchv1.Job{}, ns, first.Name+"-finish"), "300ms", interval).ShouldNot(Succeed(), "no finishing Job before every dump succeeded")

		By("the dumps succeeding: the finishing Job writes the manifest, then prunes")
		for i := range 2 {
			writeShardDump(ctx, ns, "vk", set, i)
			finishJob(ctx, ns, first.Name+fmt.Sprintf("-db-%d", i), true, "")
		}
		finish := &batchv1.Job{}
		Eventually(get(ctx, finish, ns, first.Name+"-finish"), timeout, interval).Should(Succeed())
		checkJobPod(finish, secrets...)
		Expect(finish.Spec.Template.Spec.InitContainers[0].Command).To(ContainElements("manifest", "--set", set, "--shards", "2"))
		Expect(finish.Spec.Template.Spec.Containers[0].Command).To(ContainElements("prune", "--retain", "2"))
		_, err = testStore().WriteManifest(ctx, backup.Platform{Namespace: ns, Name: "vk"}, set, backup.ManifestInput{
			ShardCount: 2, ShardMap: []byte(operatorresource.ShardMapConfigMap(p).Data[operatorresource.ShardMapKey]),
		})
		Expect(err).NotTo(HaveOccurred())
		finishJob(ctx, ns, first.Name+"-finish", true, "")

		Eventually(getBackup(ctx, ns, first.Name), timeout, interval).Should(Satisfy(phase(platformv1.BackupCompleted)))
		done := getBackup(ctx, ns, first.Name)()
		Expect(done.Status.Shards).To(HaveLen(2))
		Expect(done.Status.Shards[1].Object).To(HaveSuffix(set + "/shard-1.dump"))
		Expect(done.Status.Shards[1].Checksum).To(MatchRegexp(`^sha256:[0-9a-f]{64}$`))
		Expect(done.Status.Shards[1].LSN).To(Equal("0/1001"))
		Expect(done.Status.CompletedAt).NotTo(BeNil())
		Eventually(condition(ctx, p, status.TypeBackupReady), timeout, interval).Should(Satisfy(haveStatus(metav1.ConditionTrue)))
		latest := &platformv1.ParserPlatform{}
		Expect(get(ctx, latest, ns, "vk")()).To(Succeed())
		Expect(latest.Status.Backup.LastCompletedSet).To(Equal(set))
		Expect(promtestutil.ToFloat64(metrics.BackupLastSuccess.WithLabelValues(ns, "vk"))).To(BeNumerically(">", 0))
		Expect(promtestutil.ToFloat64(metrics.BackupSize.WithLabelValues(ns, "vk"))).To(BeNumerically("==", done.Status.Shards[0].Size+done.Status.Shards[1].Size))

		By("cleanup: a completed backup's Jobs are deleted")
		Eventually(func() int {
			jobs := &batchv1.JobList{}
			Expect(k8sClient.List(ctx, jobs, client.InNamespace(ns))).To(Succeed())
			return len(jobs.Items)
		}, timeout, interval).Should(BeZero())

		By("the next run: a shard's Job fails, the backup fails naming the shard and why")
		backupClock.Step(time.Hour + runStep)
		Eventually(func() int { return len(backupsOf(ctx, ns)) }, timeout, interval).Should(Equal(2))
		second := backupsOf(ctx, ns)[1]
		Eventually(getBackup(ctx, ns, second.Name), timeout, interval).Should(Satisfy(phase(platformv1.BackupRunning)))
		Eventually(get(ctx, &batchv1.Job{}, ns, second.Name+"-db-1"), timeout, interval).Should(Succeed())
		failedPod(ctx, ns, second.Name+"-db-1", "dump", "parser-operator backup dump-shard: pg_dump: error: connection to server failed: FATAL: password authentication failed")
		finishJob(ctx, ns, second.Name+"-db-1", false, "BackoffLimitExceeded")
		Eventually(getBackup(ctx, ns, second.Name), timeout, interval).Should(Satisfy(phase(platformv1.BackupFailed)))
		msg := getBackup(ctx, ns, second.Name)().Status.Message
		Expect(msg).To(ContainSubstring("shard 1 failed"))
		Expect(msg).To(ContainSubstring("BackoffLimitExceeded"))
		Expect(msg).To(ContainSubstring("password authentication failed"))
		Eventually(get(ctx, &batchv1.Job{}, ns, second.Name+"-db-0"), timeout, interval).ShouldNot(Succeed(), "the failed backup's running Job is stopped")
		Eventually(condition(ctx, p, status.TypeBackupReady), timeout, interval).Should(Satisfy(func(c *metav1.Condition) bool {
			return c != nil && c.Status == metav1.ConditionTrue && strings.Contains(c.Message, "the latest backup failed")
		}))

		By("the schedule still runs after a failure")
		backupClock.Step(time.Hour + runStep)
		Eventually(func() int { return len(backupsOf(ctx, ns)) }, timeout, interval).Should(Equal(3))
		third := backupsOf(ctx, ns)[2]
		Eventually(getBackup(ctx, ns, third.Name), timeout, interval).Should(Satisfy(phase(platformv1.BackupRunning)))

		By("one backup at a time: the next run waits while this one runs; two missed intervals make BackupReady False")
		backupClock.Step(2 * (time.Hour + runStep))
		Eventually(func() int { return len(backupsOf(ctx, ns)) }, timeout, interval).Should(Equal(4))
		fourth := backupsOf(ctx, ns)[3]
		Eventually(getBackup(ctx, ns, fourth.Name), timeout, interval).Should(Satisfy(func(b *platformv1.ParserPlatformBackup) bool {
			return b != nil && b.Status.Phase == platformv1.BackupPending && strings.Contains(b.Status.Message, third.Name)
		}))
		Consistently(get(ctx, &batchv1.Job{}, ns, fourth.Name+"-db-0"), "300ms", interval).ShouldNot(Succeed())
		Eventually(condition(ctx, p, status.TypeBackupReady), timeout, interval).Should(Satisfy(func(c *metav1.Condition) bool {
			return c != nil && c.Status == metav1.ConditionFalse && c.Reason == "BackupOverdue"
		}))

		By("spec.backup removed: no more runs, and no BackupReady left to turn stale")
		updatePlatform(ctx, p, func(p *platformv1.ParserPlatform) { p.Spec.Backup = nil })
		Eventually(condition(ctx, p, status.TypeBackupReady), timeout, interval).Should(BeNil())
		backupClock.Step(time.Hour + runStep)
		Consistently(func() int { return len(backupsOf(ctx, ns)) }, "300ms", interval).Should(Equal(4))
	})

	It("keeps as many completed scheduled backups as sets are retained, and every on-demand one", func() {
		updatePlatform(ctx, p, func(p *platformv1.ParserPlatform) { p.Spec.Backup.Retain = 1 })
		completed := func(name string, scheduled bool) {
			b := &platformv1.ParserPlatformBackup{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: platformv1.ParserPlatformBackupSpec{Platform: "vk"}}
			if scheduled {
				b.Labels = map[string]string{LabelScheduled: "true"}
				b.OwnerReferences = []metav1.OwnerReference{operatorresource.OwnerReference(p)}
			}
			Expect(k8sClient.Create(ctx, b)).To(Succeed())
			// The backup controller may have started it meanwhile.
			Eventually(func() error {
				Expect(get(ctx, b, ns, name)()).To(Succeed())
				now := metav1.Now()
				b.Status = platformv1.ParserPlatformBackupStatus{Phase: platformv1.BackupCompleted, BackupSet: backup.NewSetID(now.Time), CompletedAt: &now}
				return k8sClient.Status().Update(ctx, b)
			}, timeout, interval).Should(Succeed())
		}
		completed("a-scheduled", true)
		completed("b-on-demand", false)
		completed("c-scheduled", true)
		completed("d-scheduled", true)
		Eventually(func() []string {
			var names []string
			for _, b := range backupsOf(ctx, ns) {
				names = append(names, b.Name)
			}
			return names
		}, timeout, interval).Should(Equal([]string{"b-on-demand", "d-scheduled"}))
		Eventually(func() string {
			latest := &platformv1.ParserPlatform{}
			if err := get(ctx, latest, ns, "vk")(); err != nil || latest.Status.Backup == nil {
				return ""
			}
			return latest.Status.Backup.LastCompletedSet
		}, timeout, interval).Should(Equal(getBackup(ctx, ns, "d-scheduled")().Status.BackupSet))
	})

	It("keeps an on-demand backup of a platform not created yet pending", func() {
		b := &platformv1.ParserPlatformBackup{ObjectMeta: metav1.ObjectMeta{Name: "early", Namespace: ns}, Spec: platformv1.ParserPlatformBackupSpec{Platform: "later"}}
		Expect(k8sClient.Create(ctx, b)).To(Succeed())
		Eventually(getBackup(ctx, ns, "early"), timeout, interval).Should(Satisfy(func(b *platformv1.ParserPlatformBackup) bool {
			return b != nil && b.Status.Phase == platformv1.BackupPending && strings.Contains(b.Status.Message, "waiting for ParserPlatform later")
		}))
		later := samplePlatform(ns, "later")
		later.Spec.Backup = &platformv1.BackupSpec{Schedule: "@every 1h", ObjectStore: testObjectStore()}
		Expect(k8sClient.Create(ctx, later)).To(Succeed())
		Eventually(getBackup(ctx, ns, "early"), timeout, interval).Should(Satisfy(phase(platformv1.BackupRunning)))
	})

	It("fails an on-demand backup of a platform whose object store Secret is missing, naming it", func() {
		Expect(k8sClient.Delete(ctx, secret)).To(Succeed())
		b := &platformv1.ParserPlatformBackup{ObjectMeta: metav1.ObjectMeta{Name: "now", Namespace: ns}, Spec: platformv1.ParserPlatformBackupSpec{Platform: "vk"}}
		Expect(k8sClient.Create(ctx, b)).To(Succeed())
		Eventually(getBackup(ctx, ns, "now"), timeout, interval).Should(Satisfy(phase(platformv1.BackupFailed)))
		Expect(getBackup(ctx, ns, "now")().Status.Message).To(ContainSubstring("Secret s3 not found"))
	})
})
