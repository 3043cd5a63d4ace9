// Package controller reconciles ParserPlatforms: spec -> desired children
// (internal/resource) -> the fewest writes that make the cluster match ->
// status (internal/status).
package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
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
	// BrokerResolver, when set, replaces how the broker's management API is
	// reached (its pods' IPs, port 15672); tests point it at local servers.
	BrokerResolver BrokerResolver
	// OperatorNamespace is where the operator's pods run: the platform's
	// NetworkPolicies let the operator reach the cache and the broker from
	// there only (resource.DefaultOperatorNamespace when empty).
	OperatorNamespace string

	// checks remembers what the platforms' servers last said (server_checks.go).
	checks serverChecks
	// memo remembers the children found matching their desired state
	// (memo.go), so that an unchanged child costs no read past the cache.
	memo childMemo
}

// +kubebuilder:rbac:groups=platform.vkparser.io,resources=parserplatforms,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=platform.vkparser.io,resources=parserplatforms/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=platform.vkparser.io,resources=parserplatforms/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=serviceaccounts;secrets;configmaps;services,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=persistentvolumeclaims,verbs=get;list;patch;delete
// +kubebuilder:rbac:groups=storage.k8s.io,resources=storageclasses,verbs=get
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=monitoring.coreos.com,resources=servicemonitors;podmonitors;prometheusrules,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=keda.sh,resources=scaledobjects;triggerauthentications,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one platform's children to the spec and reports status.
func (r *ParserPlatformReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	p := &platformv1.ParserPlatform{}
	if err := r.Get(ctx, req.NamespacedName, p); apierrors.IsNotFound(err) {
		metrics.Forget(req.Namespace, req.Name)
		metrics.ForgetAlertSeries(req.Namespace, req.Name)
		r.checks.forgetPlatform(req.NamespacedName)
		r.memo.forgetPlatform(req.NamespacedName)
		return ctrl.Result{}, nil
	} else if err != nil {
		return ctrl.Result{}, err
	}
	if !p.DeletionTimestamp.IsZero() {
		// Owner references let the garbage collector remove the children;
		// the data volumes go first, if the platform says so.
		return ctrl.Result{}, r.finalize(ctx, p)
	}

	// Even while paused: deletion must find the finalizer whatever happens
	// to the platform meanwhile.
	if err := r.syncDataFinalizer(ctx, p); err != nil {
		return ctrl.Result{}, err
	}
	var res reconcileResult
	if !p.Spec.Paused {
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
		metrics.RecordReconcileError(p.Namespace, p.Name)
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: res.requeueAfter()}, nil
}

// requeueAfter is the soonest of the looks again the parts asked for (0: none).
func (r *reconcileResult) requeueAfter() time.Duration {
	var after []time.Duration
	if r.cache != nil && r.cache.retryAfter > 0 {
		after = append(after, r.cache.retryAfter)
	}
	if r.broker != nil && r.broker.retryAfter > 0 {
		after = append(after, r.broker.retryAfter)
	}
	if len(r.refusals) > 0 {
		after = append(after, refusalRetryInterval)
	}
	if r.requeue > 0 {
		after = append(after, r.requeue)
	}
	if len(after) == 0 {
		return 0
	}
	return slices.Min(after)
}

// reconcileChildren makes the children match the spec: generated secrets
// first (so builders stay pure), then every child in order, then the removal
// of children the spec no longer asks for.
func (r *ParserPlatformReconciler) reconcileChildren(ctx context.Context, p *platformv1.ParserPlatform) reconcileResult {
	creds, missing, err := r.resolveCredentials(ctx, p)
	if err != nil {
		return reconcileResult{errs: []error{err}}
	}
	desired, withheld := withholdChildren(resource.Children(p, creds, resource.WithOperatorNamespace(r.OperatorNamespace)), missing)
	// No app workload before a restore at creation has filled the shards (restore.go).
	desired, withheld, restoring := r.withholdApps(p, desired, withheld)
	keda, err := r.planKEDA(ctx, p)
	if err != nil {
		return reconcileResult{errs: []error{err}}
	}
	if keda.served {
		desired, withheld = resource.WithoutReplacedHPAs(desired, keda.objects), resource.WithoutReplacedHPAs(withheld, keda.objects)
	}
	// A ScaledObject no longer wanted goes before its HPA comes back, and
	// the HPA waits until KEDA's own is gone.
	if err := r.dropUnwantedScaledObjects(ctx, p, keda); err != nil {
		return reconcileResult{errs: []error{err}}
	}
	desired, heldHPAs, err := r.withoutContestedHPAs(ctx, p, desired)
	if err != nil {
		return reconcileResult{errs: []error{err}}
	}
	liveCache, err := r.liveStatefulSet(ctx, p.Namespace, resource.CacheName(p))
	if err != nil {
		return reconcileResult{errs: []error{err}}
	}
	keepCacheUntilDrained(desired, liveCache)
	// Replicas of a worker KEDA scales, or whose HPA waits for KEDA's to go,
	// are the autoscaler's.
	res := r.applyPlatformChildren(ctx, p, desired, append(keda.scaledWorkers(), heldHPAs...))
	res.merge(restoring)
	res.merge(r.refuseMissingCredentials(p, missing))
	// A held-back HPA is not pruned: it may be the one still in place.
	res.merge(r.pruneChildren(ctx, p, slices.Concat(desired, withheld, heldHPAObjects(heldHPAs))))
	if len(heldHPAs) > 0 {
		res.requeue = contestedHPARetry
	}
	// After the prune: the HPA a ScaledObject replaces is gone first.
	res.merge(r.applyKEDA(ctx, p, keda, desired))
	res.queueScaling = keda.condition()
	res.merge(r.reconcileMonitoring(ctx, p))
	if !missingFor(missing, resource.ComponentCache) {
		cache := r.reconcileCacheCluster(ctx, p, creds)
		res.cache = &cache
	}
	if !missingFor(missing, resource.ComponentBroker) {
		broker := r.reconcileBrokerQueues(ctx, p, creds)
		res.broker = &broker
		for _, msg := range broker.refusals {
			res.refusals = append(res.refusals, msg)
			r.warnOnce(p, ReasonQueueRemovalRefused, msg)
		}
	}
	return res
}

// refuseMissingCredentials reports each missing credential: a Warning event
// (once), Degraded, and the False condition of its area.
func (r *ParserPlatformReconciler) refuseMissingCredentials(p *platformv1.ParserPlatform, missing []missingCredential) reconcileResult {
	var res reconcileResult
	for _, m := range missing {
		res.refusals = append(res.refusals, m.Error())
		res.missing = append(res.missing, status.MissingCredential{Condition: areaOfComponent[m.Component], Message: m.Error()})
		r.warnOnce(p, "CredentialsMissing", m.Error())
	}
	return res
}

// areaOfComponent is the condition that reports each stateful component.
var areaOfComponent = map[string]string{
	resource.ComponentDatabase: status.TypeDatabaseReady,
	resource.ComponentCache:    status.TypeCacheReady,
	resource.ComponentBroker:   status.TypeQueuesReady,
}

func missingFor(missing []missingCredential, component string) bool {
	return slices.ContainsFunc(missing, func(m missingCredential) bool { return m.Component == component })
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
	// monitoring is the ServiceMonitor's condition, queueScaling KEDA's.
	monitoring, queueScaling *metav1.Condition
	// cache is the Redis Cluster's state, when it was reconciled.
	cache *cacheOutcome
	// broker is the RabbitMQ queues' state, when reconciled.
	broker *brokerOutcome
	// missing are credentials that cannot be made again over existing data.
	missing []status.MissingCredential
	// requeue asks for another look soon, for nothing wrong (0: none).
	requeue time.Duration
	// childrenDigest is the digest of the children as verified (memo.go),
	// set by applyPlatformChildren on the result the others merge into;
	// "": not all of them were.
	childrenDigest string
}

func (r *reconcileResult) merge(o reconcileResult) {
	r.errs = append(r.errs, o.errs...)
	r.refusals = append(r.refusals, o.refusals...)
	r.missing = append(r.missing, o.missing...)
	if o.monitoring != nil {
		r.monitoring = o.monitoring
	}
	if o.queueScaling != nil {
		r.queueScaling = o.queueScaling
	}
	if o.requeue > 0 && (r.requeue == 0 || o.requeue < r.requeue) {
		r.requeue = o.requeue
	}
	if o.cache != nil {
		r.cache = o.cache
	}
	if o.broker != nil {
		r.broker = o.broker
	}
}

func (r *reconcileResult) problems() []string {
	out := append([]string(nil), r.refusals...)
	for _, err := range r.errs {
		out = append(out, err.Error())
	}
	return out
}

// platformOfPod maps a cache pod to its platform, by the instance label.
func platformOfPod(_ context.Context, pod client.Object) []reconcile.Request {
	name := pod.GetLabels()[resource.LabelInstance]
	if name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: pod.GetNamespace(), Name: name}}}
}

// SetupWithManager watches platforms and every kind of child they own.
func (r *ParserPlatformReconciler) SetupWithManager(mgr ctrl.Manager, maxConcurrentReconciles int) error {
	b := ctrl.NewControllerManagedBy(mgr).
		For(&platformv1.ParserPlatform{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}, predicate.AnnotationChangedPredicate{},
		))).
		Named("parserplatform")
	for _, k := range managedKinds {
		if k.statusRead == nil {
			b = b.Owns(k.object)
			continue
		}
		b = b.Owns(k.object, builder.WithPredicates(statusChurnFilter(k.statusRead)))
	}
	// Cache and broker pods getting (new) IPs is when the Redis Cluster can
	// form or must be reached anew, and when the broker's queues can be
	// applied.
	b = b.Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(platformOfPod),
		builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			c := o.GetLabels()[resource.LabelComponent]
			return c == resource.ComponentCache || c == resource.ComponentBroker
		})))
	// A ServiceMonitor CRD installed later gives every platform its
	// ServiceMonitor: watch that one CRD (metadata only).
	b = b.Watches(crdMetadata(), handler.EnqueueRequestsFromMapFunc(r.allPlatforms),
		builder.OnlyMetadata, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			return slices.Contains(watchedCRDs(), o.GetName())
		})))
	b = b.WithOptions(controllerOptions(maxConcurrentReconciles))
	return b.Complete(r)
}
