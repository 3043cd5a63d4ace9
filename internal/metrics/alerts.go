package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
)

// Series the platform's alerts (resource.PrometheusRule) read that the
// status gauges do not give: per platform, so an alert names the platform
// it is about (controller-runtime's reconcile error counter is per
// controller only).
var (
	// ReconcileErrors counts reconciles of a platform that ended in an
	// error (not a refusal: refusals have their own counter).
	ReconcileErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "parser_operator_reconcile_errors_total",
		Help: "Reconciles of the platform that returned an error.",
	}, []string{"namespace", "platform"})

	// CacheSlots are the Redis Cluster's hash slots as the operator last
	// saw them: assigned (of 16384) and open (migrating or importing).
	CacheSlots = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "parser_operator_cache_slots",
		Help: "Redis Cluster hash slots of the platform's cache, by state (assigned of 16384, open).",
	}, []string{"namespace", "platform", "state"})
)

func init() {
	metrics.Registry.MustRegister(ReconcileErrors, CacheSlots)
}

// RecordReconcileError counts one failed reconcile of a platform.
func RecordReconcileError(namespace, platform string) {
	ReconcileErrors.WithLabelValues(namespace, platform).Inc()
}

// ObserveCache records status.cache in CacheSlots; a platform whose cache
// was never observed has no series (the alert then waits for one).
func ObserveCache(p *platformv1.ParserPlatform) {
	if p.Status.Cache == nil {
		return
	}
	CacheSlots.WithLabelValues(p.Namespace, p.Name, "assigned").Set(float64(p.Status.Cache.SlotsAssigned))
	CacheSlots.WithLabelValues(p.Namespace, p.Name, "open").Set(float64(p.Status.Cache.OpenSlots))
}

// ForgetAlertSeries drops a deleted platform's series of this file.
func ForgetAlertSeries(namespace, platform string) {
	labels := prometheus.Labels{"namespace": namespace, "platform": platform}
	ReconcileErrors.DeletePartialMatch(labels)
	CacheSlots.DeletePartialMatch(labels)
}
