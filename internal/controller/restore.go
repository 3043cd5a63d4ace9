package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/backup"
	"github.com/vkparser/parser-operator/internal/resource"
	"github.com/vkparser/parser-operator/internal/status"
)

// AnnotationRestored is set on a platform once its restore completed, with
// the set's ID. It is the second record of "restored" beside
// status.restore.completedAt: metadata survives what status does not (a
// copy of the cluster's objects re-applied without status), and a change of
// it wakes the platform's reconciler, whose predicates ignore status writes,
// so the app workloads start at once.
const AnnotationRestored = "platform.vkparser.io/restored-set"

// Reasons of the Restored condition.
const (
	reasonRestoring          = "Restoring"
	reasonRestored           = "Restored"
	reasonShardCountMismatch = "ShardCountMismatch"
	reasonBackupSetUnusable  = "BackupSetUnusable"
	reasonRestoreFailed      = "RestoreFailed"
)

// RestoreReconciler fills a new platform's shards from a backup set
// (spec.database.restore): it resolves the set once (latest -> an ID, so
// every shard restores from the same set), refuses a set whose shard count
// differs from database.shards, runs one restore Job per shard once that
// shard is Ready, and records completion. The platform's own reconciler
// withholds the app workloads until then (restoreGate).
type RestoreReconciler struct {
	client.Client
	// APIReader reads the object store Secret and the Jobs' pods.
	APIReader     client.Reader
	Recorder      events.EventRecorder
	Clock         clock.PassiveClock
	OperatorImage string
}

// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create;delete

// restored says whether p's restore is done (or p has none to do).
func restored(p *platformv1.ParserPlatform) bool {
	if p.Spec.Database.Restore == nil {
		return true
	}
	return (p.Status.Restore != nil && p.Status.Restore.CompletedAt != nil) || p.Annotations[AnnotationRestored] != ""
}

// Reconcile moves the restore along; it does nothing once it is recorded.
func (r *RestoreReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return retryOnConflict(r.reconcile(ctx, req))
}

func (r *RestoreReconciler) reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	p := &platformv1.ParserPlatform{}
	if err := r.Get(ctx, req.NamespacedName, p); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !p.DeletionTimestamp.IsZero() || restored(p) || p.Spec.Paused {
		return ctrl.Result{}, nil
	}
	if p.Status.Restore == nil || p.Status.Restore.BackupSet == "" {
		return r.resolve(ctx, p)
	}
	return r.restoreShards(ctx, p)
}

// resolve reads the set's manifest from the store (the store proves it
// complete: every listed object present with its size) and checks its
// shard count: CEL cannot see the manifest, so this is where a set of
// another shape is refused. md5(key) mod N routes every key elsewhere with
// another N, so such a restore would strand most rows on the wrong shard.
func (r *RestoreReconciler) resolve(ctx context.Context, p *platformv1.ParserPlatform) (ctrl.Result, error) {
	spec := p.Spec.Database.Restore
	store, err := openStore(ctx, r.APIReader, p.Namespace, spec.ObjectStore)
	if err != nil {
		if !errors.Is(err, errStoreConfig) {
			return ctrl.Result{}, err
		}
		return ctrl.Result{RequeueAfter: storeRetryInterval}, r.refuse(ctx, p, reasonBackupSetUnusable, "spec.database.restore.objectStore: "+err.Error())
	}
	src := resource.RestoreSource(p)
	storeCtx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	m, err := store.ResolveSet(storeCtx, src, spec.BackupSet)
	if err != nil {
		msg := fmt.Sprintf("backup set %s of %s/%s cannot be restored: %v; nothing of the platform but its data tier starts until it can",
			spec.BackupSet, src.Namespace, src.Name, err)
		return ctrl.Result{RequeueAfter: storeRetryInterval}, r.refuse(ctx, p, reasonBackupSetUnusable, msg)
	}
	if shards := resource.ShardCount(p); m.ShardCount != shards {
		msg := fmt.Sprintf("backup set %s has %d shards but spec.database.shards is %d: keys are routed by md5(key) mod shards, "+
			"so its rows would land on the wrong shards; create the platform with database.shards: %d to restore this set",
			m.SetID, m.ShardCount, shards, m.ShardCount)
		return ctrl.Result{}, r.refuse(ctx, p, reasonShardCountMismatch, msg)
	}
	now := metav1.NewTime(r.Clock.Now())
	return ctrl.Result{}, r.patchStatus(ctx, p, func(st *platformv1.ParserPlatformStatus) {
		st.Restore = &platformv1.RestoreStatus{BackupSet: m.SetID, Shards: int32(m.ShardCount), StartedAt: &now} //nolint:gosec // G115: a shard count, validated against spec.database.shards (an int32).
		setRestored(st, p, metav1.ConditionFalse, reasonRestoring, fmt.Sprintf("restoring set %s: waiting for the shards to be ready", m.SetID))
	})
}

// restoreShards runs a restore Job per Ready shard and follows them.
func (r *RestoreReconciler) restoreShards(ctx context.Context, p *platformv1.ParserPlatform) (ctrl.Result, error) {
	set := p.Status.Restore.BackupSet
	var waiting []string
	done := 0
	for i := range resource.ShardCount(p) {
		ready, err := r.shardReady(ctx, p, i)
		if err != nil {
			return ctrl.Result{}, err
		}
		if !ready {
			waiting = append(waiting, resource.ShardName(i)+" not ready")
			continue
		}
		job, err := ensureJob(ctx, r.Client, r.APIReader, resource.ShardRestoreJob(p, r.OperatorImage, set, i), p.UID)
		var ref *refusal
		if errors.As(err, &ref) {
			return ctrl.Result{}, r.refuse(ctx, p, reasonRestoreFailed, ref.msg)
		} else if err != nil {
			return ctrl.Result{}, err
		}
		switch state, reason := stateOf(job); state {
		case jobFailed:
			msg := fmt.Sprintf("restoring shard %d from object %s failed (Job %s): %s; fix the cause and delete the Job to try again",
				i, dumpObject(p, set, i), job.Name, describeFailure(ctx, r.APIReader, job, reason))
			return ctrl.Result{}, r.refuse(ctx, p, reasonRestoreFailed, msg)
		case jobSucceeded:
			done++
		default:
			waiting = append(waiting, resource.ShardName(i)+" restoring")
		}
	}
	if len(waiting) > 0 {
		return ctrl.Result{}, r.patchStatus(ctx, p, func(st *platformv1.ParserPlatformStatus) {
			setRestored(st, p, metav1.ConditionFalse, reasonRestoring,
				fmt.Sprintf("restoring set %s: %d of %d shards done; %s", set, done, resource.ShardCount(p), strings.Join(waiting, ", ")))
		})
	}
	return ctrl.Result{}, r.complete(ctx, p, set)
}

// complete records the restore in status and in the annotation.
func (r *RestoreReconciler) complete(ctx context.Context, p *platformv1.ParserPlatform, set string) error {
	now := metav1.NewTime(r.Clock.Now())
	if err := r.patchStatus(ctx, p, func(st *platformv1.ParserPlatformStatus) {
		st.Restore.CompletedAt = &now
		setRestored(st, p, metav1.ConditionTrue, reasonRestored, fmt.Sprintf("every shard was restored from set %s", set))
	}); err != nil {
		return err
	}
	base := p.DeepCopy()
	if p.Annotations == nil {
		p.Annotations = map[string]string{}
	}
	p.Annotations[AnnotationRestored] = set
	if err := r.Patch(ctx, p, client.MergeFrom(base)); err != nil {
		return fmt.Errorf("recording the restore in annotation %s: %w", AnnotationRestored, err)
	}
	r.event(p, "Normal", "Restored", fmt.Sprintf("every shard was restored from backup set %s", set))
	return nil
}

// shardReady: the shard's pod is Ready, so PostgreSQL takes logins.
func (r *RestoreReconciler) shardReady(ctx context.Context, p *platformv1.ParserPlatform, i int) (bool, error) {
	sts := &appsv1.StatefulSet{}
	err := r.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: resource.ShardStatefulSetName(p, i)}, sts)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil && sts.Status.ReadyReplicas >= 1, err
}

// dumpObject is the key of shard i's dump in the restore's set.
func dumpObject(p *platformv1.ParserPlatform, set string, i int) string {
	src := resource.RestoreSource(p)
	parts := []string{src.Namespace, src.Name, set, backup.ShardDumpObject(i)}
	if prefix := strings.Trim(p.Spec.Database.Restore.ObjectStore.Prefix, "/"); prefix != "" {
		parts = append([]string{prefix}, parts...)
	}
	return strings.Join(parts, "/")
}

// refuse reports a restore that cannot go on: a Warning event (once) and
// Restored False with the reason; the platform's reconciler shows it in
// Degraded and keeps the apps withheld.
func (r *RestoreReconciler) refuse(ctx context.Context, p *platformv1.ParserPlatform, reason, msg string) error {
	if c := meta.FindStatusCondition(p.Status.Conditions, status.TypeRestored); c == nil || c.Message != msg {
		r.event(p, "Warning", reason, msg)
	}
	return r.patchStatus(ctx, p, func(st *platformv1.ParserPlatformStatus) {
		setRestored(st, p, metav1.ConditionFalse, reason, msg)
	})
}

func setRestored(st *platformv1.ParserPlatformStatus, p *platformv1.ParserPlatform, s metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type: status.TypeRestored, Status: s, Reason: reason, Message: msg, ObservedGeneration: p.Generation,
	})
}

func (r *RestoreReconciler) patchStatus(ctx context.Context, p *platformv1.ParserPlatform, change func(*platformv1.ParserPlatformStatus)) error {
	next := p.Status.DeepCopy()
	change(next)
	if equality.Semantic.DeepEqual(&p.Status, next) {
		return nil
	}
	base := p.DeepCopy()
	p.Status = *next
	return r.Status().Patch(ctx, p, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
}

func (r *RestoreReconciler) event(p *platformv1.ParserPlatform, eventType, reason, note string) {
	if r.Recorder != nil {
		r.Recorder.Eventf(p, nil, eventType, reason, "Restore", "%s", note)
	}
}

// SetupWithManager watches platforms that have a restore to do, their
// shards' StatefulSets (a shard becoming Ready starts its Job) and their
// restore Jobs.
func (r *RestoreReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if strings.TrimSpace(r.OperatorImage) == "" {
		return errors.New("the restore controller needs the operator's image (--operator-image)")
	}
	pending := predicate.NewPredicateFuncs(func(o client.Object) bool {
		p, ok := o.(*platformv1.ParserPlatform)
		return ok && !restored(p)
	})
	return ctrl.NewControllerManagedBy(mgr).
		For(&platformv1.ParserPlatform{}, builder.WithPredicates(pending)).
		Owns(&batchv1.Job{}).
		Owns(&appsv1.StatefulSet{}).
		Named("parserplatform-restore").
		Complete(r)
}

// restoreGate says whether the platform's app workloads may exist yet: not
// while a restore at creation is unfinished, since apps writing to a shard
// before its data is back would mix two histories (and make pg_restore
// refuse the shard). A refused restore is a problem the platform reports
// (Degraded, Ready False with the reason).
func (r *ParserPlatformReconciler) restoreGate(p *platformv1.ParserPlatform) (appsAllowed bool, res reconcileResult) {
	if restored(p) {
		return true, res
	}
	c := meta.FindStatusCondition(p.Status.Conditions, status.TypeRestored)
	if c != nil && c.Status == metav1.ConditionFalse && c.Reason != reasonRestoring {
		res.refusals = append(res.refusals, "restore: "+c.Message)
	}
	return false, res
}

// withholdApps moves the app workloads (every Deployment, and the HPAs that
// would scale them) from desired to withheld while restoreGate says no; the
// data tier (shards, their Secrets and Services), cache and broker are still
// written. Withheld children are neither written nor pruned.
func (r *ParserPlatformReconciler) withholdApps(p *platformv1.ParserPlatform, desired, withheld []client.Object) (write, held []client.Object, res reconcileResult) {
	allowed, res := r.restoreGate(p)
	if allowed {
		return desired, withheld, res
	}
	held = withheld
	for _, obj := range desired {
		switch obj.(type) {
		case *appsv1.Deployment, *autoscalingv2.HorizontalPodAutoscaler:
			held = append(held, obj)
		default:
			write = append(write, obj)
		}
	}
	return write, held, res
}
