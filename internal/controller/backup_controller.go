package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/backup"
	"github.com/vkparser/parser-operator/internal/metrics"
	"github.com/vkparser/parser-operator/internal/resource"
)

// storeRetryInterval is how soon a backup or restore that could not reach
// the object store, or found it misconfigured, looks again.
const storeRetryInterval = time.Minute

// ParserPlatformBackupReconciler runs one ParserPlatformBackup: a dump Job
// per shard, then one finishing Job (manifest, then retention), with the
// phase following the Jobs.
//
// Per-shard results come from the object store, not from the Jobs: when the
// finishing Job succeeded the operator reads the set's manifest with
// backup.Store.ResolveSet, which also proves the set complete (every listed
// object present with its size). The Jobs' output would need pods/log
// access and is gone with the pods; termination messages hold 4 KiB and say
// only what the pod claims. The manifest is what a restore will read, so the
// status shows exactly that. The operator reads the objectStore Secret for
// it, as it reads the shards' Secrets already.
type ParserPlatformBackupReconciler struct {
	client.Client
	// APIReader reads what the cache does not hold: users' Secrets, the
	// Jobs' pods, a Job created a moment ago.
	APIReader client.Reader
	Recorder  events.EventRecorder
	// Clock is the time set IDs and phases are stamped with; tests inject one.
	Clock clock.PassiveClock
	// OperatorImage runs the binary in the Jobs (see cmd: --operator-image).
	OperatorImage string
}

// +kubebuilder:rbac:groups=platform.vkparser.io,resources=parserplatformbackups,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=platform.vkparser.io,resources=parserplatformbackups/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create;delete

// Reconcile moves one backup along: Pending -> Running -> Completed | Failed.
func (r *ParserPlatformBackupReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return retryOnConflict(r.reconcile(ctx, req))
}

func (r *ParserPlatformBackupReconciler) reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	b := &platformv1.ParserPlatformBackup{}
	if err := r.Get(ctx, req.NamespacedName, b); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !b.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // the garbage collector removes its Jobs
	}
	switch b.Status.Phase {
	case platformv1.BackupCompleted:
		return ctrl.Result{}, r.deleteJobs(ctx, b, func(*batchv1.Job) bool { return true })
	case platformv1.BackupFailed:
		return ctrl.Result{}, nil
	}
	p := &platformv1.ParserPlatform{}
	err := r.Get(ctx, client.ObjectKey{Namespace: b.Namespace, Name: b.Spec.Platform}, p)
	if apierrors.IsNotFound(err) && b.Status.Phase != platformv1.BackupRunning {
		// Applied together with its platform, the backup may come first;
		// the platform's creation wakes it.
		return ctrl.Result{}, r.setStatus(ctx, b, func(st *platformv1.ParserPlatformBackupStatus) {
			st.Phase = platformv1.BackupPending
			st.Message = fmt.Sprintf("waiting for ParserPlatform %s in namespace %s", b.Spec.Platform, b.Namespace)
		})
	} else if apierrors.IsNotFound(err) {
		return ctrl.Result{}, r.fail(ctx, b, fmt.Sprintf("ParserPlatform %s was deleted during the backup", b.Spec.Platform))
	} else if err != nil {
		return ctrl.Result{}, err
	}
	if p.Spec.Backup == nil {
		return ctrl.Result{}, r.fail(ctx, b, fmt.Sprintf("ParserPlatform %s has no spec.backup: set spec.backup.objectStore to say where backups go", p.Name))
	}
	if b.Status.Phase != platformv1.BackupRunning {
		return r.start(ctx, p, b)
	}
	return r.run(ctx, p, b)
}

// start moves a Pending backup to Running once no other backup of the
// platform runs: the data plane's retention deletes incomplete sets older
// than the newest complete one, so two backups at once could delete each
// other's set. The set ID is in the status before any Job exists, so a
// restarted operator continues the same set.
func (r *ParserPlatformBackupReconciler) start(ctx context.Context, p *platformv1.ParserPlatform, b *platformv1.ParserPlatformBackup) (ctrl.Result, error) {
	if !restored(p) {
		// A backup of shards still being filled would be a complete set of
		// partial data, and its retention could prune the very set being
		// restored.
		return ctrl.Result{RequeueAfter: storeRetryInterval}, r.setStatus(ctx, b, func(st *platformv1.ParserPlatformBackupStatus) {
			st.Phase = platformv1.BackupPending
			st.Message = fmt.Sprintf("waiting for ParserPlatform %s to finish its restore at creation", p.Name)
		})
	}
	if blocker, err := r.blockingBackup(ctx, b); err != nil {
		return ctrl.Result{}, err
	} else if blocker != "" {
		return ctrl.Result{}, r.setStatus(ctx, b, func(st *platformv1.ParserPlatformBackupStatus) {
			st.Phase = platformv1.BackupPending
			st.Message = fmt.Sprintf("waiting for ParserPlatformBackup %s to finish: one backup of a platform runs at a time", blocker)
		})
	}
	if _, err := openStore(ctx, r.APIReader, p.Namespace, p.Spec.Backup.ObjectStore); errors.Is(err, errStoreConfig) {
		return ctrl.Result{}, r.fail(ctx, b, "spec.backup.objectStore: "+err.Error())
	} else if err != nil {
		return ctrl.Result{}, err
	}
	now := metav1.NewTime(r.Clock.Now())
	return ctrl.Result{}, r.setStatus(ctx, b, func(st *platformv1.ParserPlatformBackupStatus) {
		st.Phase, st.BackupSet, st.StartedAt = platformv1.BackupRunning, backup.NewSetID(now.Time), &now
		st.Message = fmt.Sprintf("dumping %d shards", resource.ShardCount(p))
	})
}

// blockingBackup names the backup of the same platform that goes before b:
// one that runs, or one still pending that was created earlier.
func (r *ParserPlatformBackupReconciler) blockingBackup(ctx context.Context, b *platformv1.ParserPlatformBackup) (string, error) {
	list := &platformv1.ParserPlatformBackupList{}
	if err := r.List(ctx, list, client.InNamespace(b.Namespace)); err != nil {
		return "", err
	}
	for _, o := range list.Items {
		if o.UID == b.UID || o.Spec.Platform != b.Spec.Platform {
			continue
		}
		switch o.Status.Phase {
		case platformv1.BackupRunning:
			return o.Name, nil
		case "", platformv1.BackupPending:
			if before(&o, b) {
				return o.Name, nil
			}
		}
	}
	return "", nil
}

// before orders backups by creation, then name: a total order, so of two
// pending backups exactly one goes first.
func before(a, b *platformv1.ParserPlatformBackup) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.Name < b.Name
}

// run follows the Jobs of a Running backup.
func (r *ParserPlatformBackupReconciler) run(ctx context.Context, p *platformv1.ParserPlatform, b *platformv1.ParserPlatformBackup) (ctrl.Result, error) {
	shards := resource.ShardCount(p)
	done := 0
	for i := range shards {
		job, err := ensureJob(ctx, r.Client, r.APIReader, resource.ShardBackupJob(p, b, r.OperatorImage, i), b.UID)
		if err != nil {
			return r.jobError(ctx, b, err)
		}
		switch state, reason := stateOf(job); state {
		case jobFailed:
			msg := fmt.Sprintf("shard %d failed (Job %s): %s", i, job.Name, describeFailure(ctx, r.APIReader, job, reason))
			return ctrl.Result{}, r.failRunning(ctx, p, b, msg)
		case jobSucceeded:
			done++
		}
	}
	if done < shards {
		return ctrl.Result{}, r.setStatus(ctx, b, func(st *platformv1.ParserPlatformBackupStatus) {
			st.Message = fmt.Sprintf("dumping: %d of %d shards done", done, shards)
		})
	}
	job, err := ensureJob(ctx, r.Client, r.APIReader, resource.FinishBackupJob(p, b, r.OperatorImage), b.UID)
	if err != nil {
		return r.jobError(ctx, b, err)
	}
	switch state, reason := stateOf(job); state {
	case jobFailed:
		msg := fmt.Sprintf("writing the manifest or pruning failed (Job %s): %s", job.Name, describeFailure(ctx, r.APIReader, job, reason))
		return ctrl.Result{}, r.failRunning(ctx, p, b, msg)
	case jobRunning:
		return ctrl.Result{}, r.setStatus(ctx, b, func(st *platformv1.ParserPlatformBackupStatus) {
			st.Message = fmt.Sprintf("every shard dumped; writing the manifest, then keeping %d complete sets", max(p.Spec.Backup.Retain, 1))
		})
	}
	return r.complete(ctx, p, b)
}

func (r *ParserPlatformBackupReconciler) jobError(ctx context.Context, b *platformv1.ParserPlatformBackup, err error) (ctrl.Result, error) {
	var ref *refusal
	if errors.As(err, &ref) {
		return ctrl.Result{}, r.fail(ctx, b, ref.msg)
	}
	return ctrl.Result{}, err
}

// complete reads the set's manifest and records it.
func (r *ParserPlatformBackupReconciler) complete(ctx context.Context, p *platformv1.ParserPlatform, b *platformv1.ParserPlatformBackup) (ctrl.Result, error) {
	store, err := openStore(ctx, r.APIReader, p.Namespace, p.Spec.Backup.ObjectStore)
	if err != nil {
		return ctrl.Result{RequeueAfter: storeRetryInterval}, r.setStatus(ctx, b, func(st *platformv1.ParserPlatformBackupStatus) {
			st.Message = "the finishing Job succeeded; reading the manifest: " + err.Error()
		})
	}
	storeCtx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	// Listed rather than resolved: a store that does not answer is retried,
	// while a set the listing shows incomplete fails the backup.
	sets, err := store.ListSets(storeCtx, backup.Platform{Namespace: p.Namespace, Name: p.Name})
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("reading the manifest of set %s: %w", b.Status.BackupSet, err)
	}
	i := slices.IndexFunc(sets, func(s backup.SetInfo) bool { return s.ID == b.Status.BackupSet })
	switch {
	case i < 0:
		return ctrl.Result{}, r.fail(ctx, b, fmt.Sprintf("the finishing Job succeeded but set %s is not in the object store", b.Status.BackupSet))
	case !sets[i].Complete:
		// The Job said the manifest is written: a set that is not complete
		// now was damaged since, and is no backup.
		return ctrl.Result{}, r.fail(ctx, b, fmt.Sprintf("the finishing Job succeeded but set %s is not complete: %s", b.Status.BackupSet, sets[i].Reason))
	}
	m := sets[i].Manifest
	now := metav1.NewTime(r.Clock.Now())
	var size int64
	err = r.setStatus(ctx, b, func(st *platformv1.ParserPlatformBackupStatus) {
		st.Phase, st.CompletedAt, st.Shards = platformv1.BackupCompleted, &now, shardStatuses(m)
		st.Message = fmt.Sprintf("set %s complete: %d shards", m.SetID, m.ShardCount)
	})
	if err != nil {
		return ctrl.Result{}, err
	}
	for _, s := range m.Shards {
		size += s.Size
	}
	metrics.Backups.WithLabelValues(p.Namespace, p.Name, string(platformv1.BackupCompleted)).Inc()
	metrics.BackupSize.WithLabelValues(p.Namespace, p.Name).Set(float64(size))
	metrics.BackupLastSuccess.WithLabelValues(p.Namespace, p.Name).Set(float64(now.Unix()))
	if b.Status.StartedAt != nil {
		metrics.BackupDuration.WithLabelValues(p.Namespace, p.Name).Set(now.Sub(b.Status.StartedAt.Time).Seconds())
	}
	r.event(b, "Normal", "BackupCompleted", fmt.Sprintf("backup set %s of %d shards (%d bytes) is complete", m.SetID, m.ShardCount, size))
	return ctrl.Result{}, nil
}

// shardStatuses is the manifest's shard list as the status shows it.
func shardStatuses(m *backup.Manifest) []platformv1.BackupShardStatus {
	out := make([]platformv1.BackupShardStatus, 0, len(m.Shards))
	for _, s := range m.Shards {
		st := platformv1.BackupShardStatus{Index: int32(s.Index), Object: s.Object, Size: s.Size, Checksum: "sha256:" + s.SHA256} //nolint:gosec // G115: a shard index, bounded by spec.database.shards (an int32).
		if s.Position != nil {
			st.LSN = s.Position.LSN
			if !s.Position.Time.IsZero() {
				st.ConsistentAt = &metav1.Time{Time: s.Position.Time}
			}
		}
		out = append(out, st)
	}
	return out
}

// failRunning stops the backup's Jobs that still run (a failed set is never
// completed, and the next backup must not race them) and records the failure.
func (r *ParserPlatformBackupReconciler) failRunning(ctx context.Context, p *platformv1.ParserPlatform, b *platformv1.ParserPlatformBackup, msg string) error {
	if err := r.deleteJobs(ctx, b, func(j *batchv1.Job) bool { s, _ := stateOf(j); return s == jobRunning }); err != nil {
		return err
	}
	metrics.Backups.WithLabelValues(p.Namespace, p.Name, string(platformv1.BackupFailed)).Inc()
	return r.fail(ctx, b, msg)
}

func (r *ParserPlatformBackupReconciler) fail(ctx context.Context, b *platformv1.ParserPlatformBackup, msg string) error {
	if b.Status.Phase == platformv1.BackupFailed {
		return nil
	}
	r.event(b, "Warning", "BackupFailed", msg)
	now := metav1.NewTime(r.Clock.Now())
	return r.setStatus(ctx, b, func(st *platformv1.ParserPlatformBackupStatus) {
		st.Phase, st.CompletedAt, st.Message = platformv1.BackupFailed, &now, msg
	})
}

// deleteJobs removes the backup's Jobs that match: all of them once it is
// Completed (their logs are of no further use), the running ones when it
// failed (the failed ones stay, with their pods' logs, for a day).
func (r *ParserPlatformBackupReconciler) deleteJobs(ctx context.Context, b *platformv1.ParserPlatformBackup, match func(*batchv1.Job) bool) error {
	jobs := &batchv1.JobList{}
	if err := r.List(ctx, jobs, client.InNamespace(b.Namespace), client.MatchingLabels{resource.LabelBackup: resource.Truncate(b.Name)}); err != nil {
		return err
	}
	var errs []error
	for i := range jobs.Items {
		j := &jobs.Items[i]
		if !metav1.IsControlledBy(j, b) || !match(j) {
			continue
		}
		err := r.Delete(ctx, j, client.PropagationPolicy(metav1.DeletePropagationBackground))
		errs = append(errs, client.IgnoreNotFound(err))
	}
	return errors.Join(errs...)
}

// setStatus patches the status when change alters it.
func (r *ParserPlatformBackupReconciler) setStatus(ctx context.Context, b *platformv1.ParserPlatformBackup, change func(*platformv1.ParserPlatformBackupStatus)) error {
	next := b.Status.DeepCopy()
	change(next)
	if equality.Semantic.DeepEqual(&b.Status, next) {
		return nil
	}
	base := b.DeepCopy()
	b.Status = *next
	return r.Status().Patch(ctx, b, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
}

func (r *ParserPlatformBackupReconciler) event(b *platformv1.ParserPlatformBackup, eventType, reason, note string) {
	if r.Recorder != nil {
		r.Recorder.Eventf(b, nil, eventType, reason, "Backup", "%s", note)
	}
}

// pendingOfPlatform wakes the pending backups of a platform that changed.
func (r *ParserPlatformBackupReconciler) pendingOfPlatform(ctx context.Context, obj client.Object) []reconcile.Request {
	return r.pending(ctx, obj.GetNamespace(), obj.GetName(), "")
}

// pendingOfSamePlatform wakes the pending backups of a platform when one of
// its backups changes (finishes): the next may start.
func (r *ParserPlatformBackupReconciler) pendingOfSamePlatform(ctx context.Context, obj client.Object) []reconcile.Request {
	changed, ok := obj.(*platformv1.ParserPlatformBackup)
	if !ok {
		return nil
	}
	return r.pending(ctx, changed.Namespace, changed.Spec.Platform, changed.UID)
}

// pending lists the requests of platform's backups not started yet, but
// except.
func (r *ParserPlatformBackupReconciler) pending(ctx context.Context, namespace, platform string, except types.UID) []reconcile.Request {
	list := &platformv1.ParserPlatformBackupList{}
	if err := r.List(ctx, list, client.InNamespace(namespace)); err != nil {
		return nil
	}
	var out []reconcile.Request
	for _, o := range list.Items {
		if o.Spec.Platform == platform && o.UID != except &&
			slices.Contains([]platformv1.BackupPhase{"", platformv1.BackupPending}, o.Status.Phase) {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&o)})
		}
	}
	return out
}

// SetupWithManager runs the backups one reconcile at a time, so that the
// one-backup-per-platform decision is never taken twice at once.
func (r *ParserPlatformBackupReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if strings.TrimSpace(r.OperatorImage) == "" {
		return errors.New("the backup controller needs the operator's image (--operator-image)")
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&platformv1.ParserPlatformBackup{}).
		Owns(&batchv1.Job{}).
		Watches(&platformv1.ParserPlatformBackup{}, handler.EnqueueRequestsFromMapFunc(r.pendingOfSamePlatform)).
		// A platform's spec or annotations changing (spec.backup set, the
		// restore recorded) may let its pending backups start.
		Watches(&platformv1.ParserPlatform{}, handler.EnqueueRequestsFromMapFunc(r.pendingOfPlatform),
			builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Named("parserplatformbackup").
		WithOptions(controller.Options{MaxConcurrentReconciles: 1}).
		Complete(r)
}
