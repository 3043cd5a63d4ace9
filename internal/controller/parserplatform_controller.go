// Package controller reconciles ParserPlatforms: spec -> desired children
// (internal/resource) -> the fewest writes that make the cluster match ->
// status (internal/status).
package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/metrics"
	"github.com/vkparser/parser-operator/internal/rediscluster"
	"github.com/vkparser/parser-operator/internal/resource"
	"github.com/vkparser/parser-operator/internal/status"
)

// refusalRetryInterval is how often a refused child (owned by someone else)
// is looked at again: its owner may have deleted it meanwhile, and that
// object sends the operator no event.
const refusalRetryInterval = time.Minute

// conflictRetryInterval is how soon a reconcile whose status write met a
// newer platform runs again.
const conflictRetryInterval = 200 * time.Millisecond

// ParserPlatformReconciler makes a platform's children match its spec.
type ParserPlatformReconciler struct {
	client.Client
	// APIReader reads past the cache (see childWriter.reader).
	APIReader client.Reader
	Recorder  events.EventRecorder
	// CacheResolver, when set, replaces how cache nodes are reached (by
	// their pod IPs); tests map pods to local redis-servers with it.
	CacheResolver func(podIPs map[string]string) rediscluster.Resolver
}

// +kubebuilder:rbac:groups=platform.vkparser.io,resources=parserplatforms,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=platform.vkparser.io,resources=parserplatforms/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=platform.vkparser.io,resources=parserplatforms/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=serviceaccounts;secrets;configmaps;services,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=persistentvolumeclaims,verbs=list;delete
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=monitoring.coreos.com,resources=servicemonitors,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one platform's children to the spec and reports status.
func (r *ParserPlatformReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	p := &platformv1.ParserPlatform{}
	if err := r.Get(ctx, req.NamespacedName, p); apierrors.IsNotFound(err) {
		metrics.Forget(req.Namespace, req.Name)
		return ctrl.Result{}, nil
	} else if err != nil {
		return ctrl.Result{}, err
	}
	if !p.DeletionTimestamp.IsZero() {
		// Owner references let the garbage collector remove the children;
		// the data volumes go first, if the platform says so.
		return ctrl.Result{}, r.finalize(ctx, p)
	}

	var res reconcileResult
	if !p.Spec.Paused {
		if err := r.syncDataFinalizer(ctx, p); err != nil {
			return ctrl.Result{}, err
		}
		res = r.reconcileChildren(ctx, p)
	}
	if err := r.updateStatus(ctx, p, res); apierrors.IsConflict(err) {
		// The platform changed since it was read (maybe only its status,
		// which sends no event through the predicates): read it again.
		return ctrl.Result{RequeueAfter: conflictRetryInterval}, nil
	} else if err != nil {
		return ctrl.Result{}, fmt.Errorf("updating status: %w", err)
	}
	if err := errors.Join(res.errs...); err != nil {
		return ctrl.Result{}, err
	}
	if res.cache != nil && res.cache.retry {
		return ctrl.Result{RequeueAfter: cacheRetryInterval}, nil
	}
	if len(res.refusals) > 0 {
		return ctrl.Result{RequeueAfter: refusalRetryInterval}, nil
	}
	return ctrl.Result{}, nil
}

// reconcileChildren makes the children match the spec: generated secrets
// first (so builders stay pure), then every child in order, then the removal
// of children the spec no longer asks for.
func (r *ParserPlatformReconciler) reconcileChildren(ctx context.Context, p *platformv1.ParserPlatform) reconcileResult {
	creds, err := r.resolveCredentials(ctx, p)
	if err != nil {
		return reconcileResult{errs: []error{err}}
	}
	desired := resource.Children(p, creds)
	liveCache, err := r.liveStatefulSet(ctx, p.Namespace, resource.CacheName(p))
	if err != nil {
		return reconcileResult{errs: []error{err}}
	}
	keepCacheUntilDrained(desired, liveCache)
	res := r.applyChildren(ctx, p, desired)
	res.merge(r.pruneChildren(ctx, p, desired))
	res.merge(r.reconcileServiceMonitor(ctx, p))
	cache := r.reconcileCacheCluster(ctx, p, creds)
	res.cache = &cache
	return res
}

func (r *ParserPlatformReconciler) liveStatefulSet(ctx context.Context, namespace, name string) (*appsv1.StatefulSet, error) {
	sts := &appsv1.StatefulSet{}
	err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, sts)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return sts, err
}

// reconcileResult collects what went wrong without stopping the rest: one
// bad child never keeps the others from being reconciled.
type reconcileResult struct {
	errs     []error  // transient failures: retried with backoff
	refusals []string // operations refused on purpose: reported, not retried hot
	// monitoring is the ServiceMonitor's condition.
	monitoring *metav1.Condition
	// cache is the Redis Cluster's state, when it was reconciled.
	cache *cacheOutcome
}

func (r *reconcileResult) merge(o reconcileResult) {
	r.errs = append(r.errs, o.errs...)
	r.refusals = append(r.refusals, o.refusals...)
	if o.monitoring != nil {
		r.monitoring = o.monitoring
	}
	if o.cache != nil {
		r.cache = o.cache
	}
}

func (r *reconcileResult) problems() []string {
	out := append([]string(nil), r.refusals...)
	for _, err := range r.errs {
		out = append(out, err.Error())
	}
	return out
}

// applyChildren ensures every desired child, in order, and records an event
// for each one created or updated.
func (r *ParserPlatformReconciler) applyChildren(ctx context.Context, p *platformv1.ParserPlatform, desired []client.Object) reconcileResult {
	w := &childWriter{client: r.Client, reader: r.APIReader, owner: p, hpaTargets: hpaTargets(desired)}
	outcomes := make([]childOutcome, len(desired))
	// Two phases: what pods read (ServiceAccount, Secrets, ConfigMaps) first,
	// so no pod starts without its configuration; then everything else.
	// Within a phase nothing depends on anything else, so writes go in
	// parallel (the API server accepts a Deployment before its Service, an
	// HPA before its Deployment).
	for _, group := range writePhases(desired) {
		var wg sync.WaitGroup
		sem := make(chan struct{}, childWriteParallelism)
		for _, i := range group {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				outcomes[i].act, outcomes[i].err = w.ensure(ctx, desired[i])
			}()
		}
		wg.Wait()
	}
	var res reconcileResult
	for i, obj := range desired {
		r.record(ctx, p, obj, outcomes[i], &res)
	}
	return res
}

// childWriteParallelism bounds the requests one reconcile has in flight:
// the API server's own limit here, measured by the benchmark (16 in flight
// is where a plain client stops getting faster).
const childWriteParallelism = 16

type childOutcome struct {
	act action
	err error
}

// record turns what ensure did to one child into the result, a log line, an
// event and a metric.
func (r *ParserPlatformReconciler) record(ctx context.Context, p *platformv1.ParserPlatform, obj client.Object, o childOutcome, res *reconcileResult) {
	var refused *refusal
	switch {
	case errors.Is(o.err, errNotOwned):
		msg := describe(obj) + " " + errNotOwned.Error() + "; delete it or rename the platform"
		res.refusals = append(res.refusals, msg)
		r.warnOnce(p, "AdoptionRefused", msg)
	case errors.As(o.err, &refused):
		res.refusals = append(res.refusals, refused.Error())
		r.warnOnce(p, refused.reason, refused.Error())
	case o.err != nil:
		res.errs = append(res.errs, fmt.Errorf("reconciling %s: %w", describe(obj), o.err))
	case o.act != actionNone:
		logf.FromContext(ctx).Info(string(o.act)+" child", "child", describe(obj))
		r.event(p, "Normal", string(o.act), string(o.act), describe(obj))
		metrics.Actions.WithLabelValues(p.Namespace, p.Name, kindOf(obj), strings.ToLower(string(o.act))).Inc()
	}
}

// configurationKinds are created before anything that reads them.
var configurationKinds = map[string]bool{"ServiceAccount": true, "Secret": true, "ConfigMap": true}

// writePhases splits the children into the configuration and the rest, as
// indexes into desired.
func writePhases(desired []client.Object) [][]int {
	phases := [][]int{nil, nil}
	for i, obj := range desired {
		if configurationKinds[kindOf(obj)] {
			phases[0] = append(phases[0], i)
		} else {
			phases[1] = append(phases[1], i)
		}
	}
	return phases
}

// pruneChildren deletes children the spec no longer asks for (a removed
// service's Deployment, Service, HPA, PDB). Only children this platform
// controls are candidates.
func (r *ParserPlatformReconciler) pruneChildren(ctx context.Context, p *platformv1.ParserPlatform, desired []client.Object) reconcileResult {
	want := map[string]bool{}
	for _, obj := range desired {
		want[kindOf(obj)+"/"+obj.GetName()] = true
	}
	var res reconcileResult
	for _, k := range managedKinds {
		live, err := r.listChildren(ctx, p, k)
		if err != nil {
			res.errs = append(res.errs, err)
			continue
		}
		for _, obj := range live {
			if want[kindOf(k.object)+"/"+obj.GetName()] {
				continue
			}
			if err := r.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
				res.errs = append(res.errs, fmt.Errorf("deleting %s: %w", describe(obj), err))
				continue
			}
			logf.FromContext(ctx).Info("Deleted child no longer in the spec", "child", describe(obj))
			metrics.Actions.WithLabelValues(p.Namespace, p.Name, kindOf(k.object), "deleted").Inc()
			r.event(p, "Normal", "Deleted", "Delete", kindOf(k.object)+" "+obj.GetName())
		}
	}
	return res
}

// listChildren lists the children of one kind that the platform controls.
func (r *ParserPlatformReconciler) listChildren(ctx context.Context, p *platformv1.ParserPlatform, k managedKind) ([]client.Object, error) {
	list := k.list.DeepCopyObject().(client.ObjectList)
	if err := r.List(ctx, list, client.InNamespace(p.Namespace), client.MatchingLabels(resource.InstanceSelector(p))); err != nil {
		return nil, fmt.Errorf("listing %T: %w", list, err)
	}
	objs, err := metaExtract(list)
	if err != nil {
		return nil, err
	}
	var owned []client.Object
	for _, obj := range objs {
		if isControlledBy(obj, p) {
			owned = append(owned, obj)
		}
	}
	return owned, nil
}

// hpaTargets are the names of the workloads an HPA scales.
func hpaTargets(desired []client.Object) map[string]bool {
	out := map[string]bool{}
	for _, obj := range desired {
		if hpa, ok := obj.(*autoscalingv2.HorizontalPodAutoscaler); ok {
			out[hpa.Spec.ScaleTargetRef.Name] = true
		}
	}
	return out
}

// updateStatus writes the status only when it differs from what is stored.
func (r *ParserPlatformReconciler) updateStatus(ctx context.Context, p *platformv1.ParserPlatform, res reconcileResult) error {
	observed, err := r.observe(ctx, p)
	if err != nil {
		return err
	}
	observed.Problems = res.problems()
	observed.Monitoring = res.monitoring
	if res.cache != nil {
		observed.CacheFormed, observed.CacheDetail, observed.CacheCluster = res.cache.formed, res.cache.detail, res.cache.summary
	} else {
		observed.CacheFormed, observed.CacheDetail = cacheFormedBefore(p), "reconciliation is paused"
	}
	next := p.Status.DeepCopy()
	status.Apply(next, observed)
	if !p.Spec.Paused {
		next.ObservedGeneration = p.Generation
	}
	metrics.Observe(&platformv1.ParserPlatform{ObjectMeta: p.ObjectMeta, Status: *next})
	if equality.Semantic.DeepEqual(&p.Status, next) {
		return nil
	}
	base := p.DeepCopy()
	p.Status = *next
	return r.Status().Patch(ctx, p, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
}

// cacheFormedBefore keeps the last word on the cluster while the operator
// does not look (paused).
func cacheFormedBefore(p *platformv1.ParserPlatform) bool {
	c := meta.FindStatusCondition(p.Status.Conditions, status.TypeCacheReady)
	return c != nil && c.Status == metav1.ConditionTrue
}

// platformOfPod maps a cache pod to its platform, by the instance label.
func platformOfPod(_ context.Context, pod client.Object) []reconcile.Request {
	name := pod.GetLabels()[resource.LabelInstance]
	if name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: pod.GetNamespace(), Name: name}}}
}

// warnOnce emits a Warning event for a refusal the platform does not report
// yet: a refusal that persists is in the Degraded condition already, and
// repeating its event every reconcile would be a write each time.
func (r *ParserPlatformReconciler) warnOnce(p *platformv1.ParserPlatform, reason, msg string) {
	metrics.Refusals.WithLabelValues(p.Namespace, p.Name, reason).Inc()
	if c := meta.FindStatusCondition(p.Status.Conditions, status.TypeDegraded); c != nil && strings.Contains(c.Message, msg) {
		return
	}
	r.event(p, "Warning", reason, "Reconcile", msg)
}

func (r *ParserPlatformReconciler) event(p *platformv1.ParserPlatform, eventType, reason, act, note string) {
	if r.Recorder != nil {
		r.Recorder.Eventf(p, nil, eventType, reason, act, "%s", note)
	}
}

// SetupWithManager watches platforms and every kind of child they own.
func (r *ParserPlatformReconciler) SetupWithManager(mgr ctrl.Manager, maxConcurrentReconciles int) error {
	b := ctrl.NewControllerManagedBy(mgr).
		For(&platformv1.ParserPlatform{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}, predicate.AnnotationChangedPredicate{},
		))).
		Named("parserplatform")
	for _, k := range managedKinds {
		b = b.Owns(k.object)
	}
	// Cache pods getting (new) IPs is when the Redis Cluster can form or
	// must be reached anew.
	b = b.Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(platformOfPod),
		builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			return o.GetLabels()[resource.LabelComponent] == resource.ComponentCache
		})))
	// A ServiceMonitor CRD installed later gives every platform its
	// ServiceMonitor: watch that one CRD (metadata only).
	b = b.Watches(serviceMonitorCRDMetadata(), handler.EnqueueRequestsFromMapFunc(r.allPlatforms),
		builder.OnlyMetadata, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			return o.GetName() == ServiceMonitorCRD
		})))
	b = b.WithOptions(controllerOptions(maxConcurrentReconciles))
	return b.Complete(r)
}
