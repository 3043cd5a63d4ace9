package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/robfig/cron/v3"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/metrics"
	"github.com/vkparser/parser-operator/internal/resource"
	"github.com/vkparser/parser-operator/internal/status"
)

// LabelScheduled marks the ParserPlatformBackups the schedule created (and
// may delete once they are history); users' on-demand backups lack it.
const LabelScheduled = "platform.vkparser.io/scheduled"

// failedHistory is how many failed scheduled backups are kept to look at;
// completed ones are kept as many as spec.backup.retain (their sets).
const failedHistory = 3

// BackupScheduleReconciler drives spec.backup.schedule: it creates a
// ParserPlatformBackup per run, keeps status.backup and BackupReady, and
// deletes scheduled backups that are history. It is separate from the
// platform's reconciler because it wakes on time and on backups, not on
// children.
type BackupScheduleReconciler struct {
	client.Client
	Recorder events.EventRecorder
	// Clock decides when runs are due; tests inject a fake one.
	Clock clock.PassiveClock
	// MaxWait caps how long a reconcile sleeps until the next run (0: until
	// the run), so a test that moves a fake clock is seen at once.
	MaxWait time.Duration
}

// Reconcile creates the run that is due, if any, and reports the backups.
func (r *BackupScheduleReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return retryOnConflict(r.reconcile(ctx, req))
}

func (r *BackupScheduleReconciler) reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	p := &platformv1.ParserPlatform{}
	if err := r.Get(ctx, req.NamespacedName, p); apierrors.IsNotFound(err) {
		metrics.ForgetBackups(req.Namespace, req.Name)
		return ctrl.Result{}, nil
	} else if err != nil {
		return ctrl.Result{}, err
	}
	if !p.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	if p.Spec.Backup == nil {
		return ctrl.Result{}, r.forgetSchedule(ctx, p)
	}
	now := r.Clock.Now()
	next := p.Status.DeepCopy()
	if next.Backup == nil {
		next.Backup = &platformv1.BackupStatus{}
	}
	sched, err := cron.ParseStandard(p.Spec.Backup.Schedule)
	if err != nil {
		r.event(p, "Warning", "InvalidSchedule", "spec.backup.schedule: "+err.Error())
		cond := status.BackupReadyCondition(status.BackupInput{ScheduleError: err.Error()})
		return ctrl.Result{}, r.patchStatus(ctx, p, next, cond)
	}
	wake, err := r.runIfDue(ctx, p, sched, now, next.Backup)
	if err != nil {
		return ctrl.Result{}, err
	}
	in, err := r.history(ctx, p, next.Backup)
	if err != nil {
		return ctrl.Result{}, err
	}
	in.Schedule, in.Created, in.Now = sched, p.CreationTimestamp.Time, now
	cond := status.BackupReadyCondition(in)
	if err := r.patchStatus(ctx, p, next, cond); err != nil {
		return ctrl.Result{}, err
	}
	// BackupReady turns False on its own when the newest set grows old.
	if !in.LastCompleted.IsZero() {
		if stale := status.StaleAt(sched, in.LastCompleted); stale.After(now) && stale.Before(wake) {
			wake = stale
		}
	}
	return ctrl.Result{RequeueAfter: r.wait(wake.Sub(now))}, nil
}

// runIfDue creates the ParserPlatformBackup of the newest run that is due
// and returns when the following one is. Runs missed while the operator was
// down are not made up one by one: only the newest is taken, as a CronJob
// does. The backup's name comes from the run's time, so a reconcile that
// repeats finds it already there instead of making a second.
func (r *BackupScheduleReconciler) runIfDue(ctx context.Context, p *platformv1.ParserPlatform, sched cron.Schedule, now time.Time, st *platformv1.BackupStatus) (time.Time, error) {
	last := p.CreationTimestamp.Time
	if st.LastScheduled != nil {
		last = st.LastScheduled.Time
	}
	run := sched.Next(last)
	if run.After(now) {
		return run, nil
	}
	for n, i := sched.Next(run), 0; !n.After(now) && i < 100000; n, i = sched.Next(n), i+1 {
		run = n
	}
	b := scheduledBackup(p, run)
	if err := r.Create(ctx, b); err != nil && !apierrors.IsAlreadyExists(err) {
		return time.Time{}, fmt.Errorf("creating ParserPlatformBackup %s: %w", b.Name, err)
	}
	st.LastScheduled = &metav1.Time{Time: run}
	return sched.Next(run), nil
}

// scheduledBackup is the ParserPlatformBackup of the run at t, owned by
// the platform (it goes with it; its set stays in the store).
func scheduledBackup(p *platformv1.ParserPlatform, t time.Time) *platformv1.ParserPlatformBackup {
	labels := resource.Labels(p, "backup", resource.ComponentBackup)
	labels[LabelScheduled] = "true"
	return &platformv1.ParserPlatformBackup{
		ObjectMeta: metav1.ObjectMeta{
			Name: resource.Name(p.Name, "backup", t.UTC().Format("20060102-150405")), Namespace: p.Namespace,
			Labels: labels, OwnerReferences: []metav1.OwnerReference{resource.OwnerReference(p)},
		},
		Spec: platformv1.ParserPlatformBackupSpec{Platform: p.Name},
	}
}

// history reads the platform's backups: the newest completed one for
// status.backup and BackupReady, and deletes scheduled ones beyond what is
// kept (as many completed as sets are retained, failedHistory failed).
func (r *BackupScheduleReconciler) history(ctx context.Context, p *platformv1.ParserPlatform, st *platformv1.BackupStatus) (status.BackupInput, error) {
	list := &platformv1.ParserPlatformBackupList{}
	if err := r.List(ctx, list, client.InNamespace(p.Namespace)); err != nil {
		return status.BackupInput{}, err
	}
	var mine []*platformv1.ParserPlatformBackup
	for i := range list.Items {
		if list.Items[i].Spec.Platform == p.Name {
			mine = append(mine, &list.Items[i])
		}
	}
	// Newest first.
	slices.SortFunc(mine, func(a, b *platformv1.ParserPlatformBackup) int {
		if before(a, b) {
			return 1
		}
		return -1
	})
	var in status.BackupInput
	if len(mine) > 0 && mine[0].Status.Phase == platformv1.BackupFailed {
		in.LastFailure = mine[0].Name + ": " + mine[0].Status.Message
	}
	kept := map[platformv1.BackupPhase]int{}
	limit := map[platformv1.BackupPhase]int{platformv1.BackupCompleted: int(max(p.Spec.Backup.Retain, 1)), platformv1.BackupFailed: failedHistory}
	var errs []error
	for _, b := range mine {
		phase := b.Status.Phase
		if phase == platformv1.BackupCompleted && b.Status.CompletedAt != nil && in.LastCompleted.IsZero() {
			in.LastCompleted, in.LastCompletedSet = b.Status.CompletedAt.Time, b.Status.BackupSet
		}
		if _, terminal := limit[phase]; !terminal {
			continue
		}
		if kept[phase]++; kept[phase] > limit[phase] && b.Labels[LabelScheduled] == "true" && metav1.IsControlledBy(b, p) {
			errs = append(errs, client.IgnoreNotFound(r.Delete(ctx, b, client.Preconditions{UID: ptr.To(b.UID)})))
		}
	}
	if !in.LastCompleted.IsZero() {
		st.LastCompleted, st.LastCompletedSet = &metav1.Time{Time: in.LastCompleted}, in.LastCompletedSet
		// Also after a restart of the operator, before the next backup.
		metrics.BackupLastSuccess.WithLabelValues(p.Namespace, p.Name).Set(float64(in.LastCompleted.Unix()))
	}
	return in, errors.Join(errs...)
}

// forgetSchedule drops BackupReady once spec.backup is removed: a condition
// nobody keeps would turn stale and lie. status.backup stays, as history.
func (r *BackupScheduleReconciler) forgetSchedule(ctx context.Context, p *platformv1.ParserPlatform) error {
	if meta.FindStatusCondition(p.Status.Conditions, status.TypeBackupReady) == nil {
		return nil
	}
	base := p.DeepCopy()
	meta.RemoveStatusCondition(&p.Status.Conditions, status.TypeBackupReady)
	return r.Status().Patch(ctx, p, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
}

// patchStatus writes status.backup and BackupReady when they changed.
func (r *BackupScheduleReconciler) patchStatus(ctx context.Context, p *platformv1.ParserPlatform, next *platformv1.ParserPlatformStatus, cond metav1.Condition) error {
	cond.ObservedGeneration = p.Generation
	meta.SetStatusCondition(&next.Conditions, cond)
	if equality.Semantic.DeepEqual(&p.Status, next) {
		return nil
	}
	base := p.DeepCopy()
	p.Status = *next
	return r.Status().Patch(ctx, p, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
}

func (r *BackupScheduleReconciler) wait(d time.Duration) time.Duration {
	d = max(d, time.Second)
	if r.MaxWait > 0 {
		d = min(d, r.MaxWait)
	}
	return d
}

func (r *BackupScheduleReconciler) event(p *platformv1.ParserPlatform, eventType, reason, note string) {
	if r.Recorder != nil {
		r.Recorder.Eventf(p, nil, eventType, reason, "Schedule", "%s", note)
	}
}

// platformOfBackup maps a ParserPlatformBackup to its platform.
func platformOfBackup(_ context.Context, obj client.Object) []reconcile.Request {
	b, ok := obj.(*platformv1.ParserPlatformBackup)
	if !ok {
		return nil
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: b.Namespace, Name: b.Spec.Platform}}}
}

// SetupWithManager wakes on spec changes of platforms (not on their status,
// which the platform's reconciler writes often) and on their backups.
func (r *BackupScheduleReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&platformv1.ParserPlatform{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&platformv1.ParserPlatformBackup{}, handler.EnqueueRequestsFromMapFunc(platformOfBackup)).
		Named("parserplatform-backup-schedule").
		Complete(r)
}
