package controller

import (
	"context"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/metrics"
	"github.com/vkparser/parser-operator/internal/status"
)

// updateStatus writes the status only when it differs from what is stored.
func (r *ParserPlatformReconciler) updateStatus(ctx context.Context, p *platformv1.ParserPlatform, res reconcileResult) error {
	observed, err := r.observe(ctx, p)
	if err != nil {
		return err
	}
	observed.Problems = res.problems()
	observed.Monitoring = res.monitoring
	observed.QueueScaling = res.queueScaling
	if p.Spec.Paused {
		// Not looked at while paused: the last word stays.
		observed.QueueScaling = meta.FindStatusCondition(p.Status.Conditions, status.TypeQueueScaling)
	}
	observed.MissingCredentials = res.missing
	if res.broker != nil && res.broker.applies {
		observed.BrokerQueues = &status.BrokerQueues{InLine: res.broker.inLine && len(res.broker.refusals) == 0,
			Reason: res.broker.reason, Message: res.broker.message}
	}
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
	if res.childrenDigest != "" {
		next.ChildrenDigest = res.childrenDigest
	}
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
