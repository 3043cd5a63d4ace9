package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Series the platform's alerts (resource.PrometheusRule) read that the
// status gauges (platforms.go) do not give: per platform, so an alert names the platform
// it is about (controller-runtime's reconcile error counter is per
// controller only).
var (
	// ReconcileErrors counts reconciles of a platform that ended in an
	// error (not a refusal: refusals have their own counter).
	ReconcileErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "parser_operator_reconcile_errors_total",
		Help: "Reconciles of the platform that returned an error.",
	}, []string{"namespace", "platform"})
)

func init() {
	metrics.Registry.MustRegister(ReconcileErrors)
}

// RecordReconcileError counts one failed reconcile of a platform.
func RecordReconcileError(namespace, platform string) {
	ReconcileErrors.WithLabelValues(namespace, platform).Inc()
}

// ForgetAlertSeries drops a deleted platform's series of this file.
func ForgetAlertSeries(namespace, platform string) {
	labels := prometheus.Labels{"namespace": namespace, "platform": platform}
	ReconcileErrors.DeletePartialMatch(labels)
}
