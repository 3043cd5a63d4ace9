// Package metrics holds the operator's own Prometheus metrics, served beside
// controller-runtime's on the manager's metrics endpoint: what each platform
// looks like (conditions, replicas, shards: platforms.go, from the status at
// each scrape) and what the operator did to it (counters, here).
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	// Actions counts the writes the operator made to children.
	Actions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "parser_operator_child_actions_total",
		Help: "Children created, updated or deleted by the operator.",
	}, []string{"namespace", "platform", "kind", "action"})

	// CacheSteps counts the Redis Cluster topology steps the operator ran
	// (meet, assign slots, replicate, migrate slots, forget, fix open slot).
	CacheSteps = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "parser_operator_cache_topology_steps_total",
		Help: "Redis Cluster topology steps run by the operator, by kind.",
	}, []string{"namespace", "platform", "step"})

	// ServerChecks counts the reconciles that needed a platform's server
	// (the cache's Redis nodes, the broker's management API): dialed, or
	// recalled from its last settled answer because nothing it depends on
	// moved. Not per platform: it measures the operator, not a platform.
	ServerChecks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "parser_operator_server_checks_total",
		Help: "Reconciles that needed a platform's server (cache, broker), by whether it was dialed or its last settled answer recalled.",
	}, []string{"server", "result"})

	// Refusals counts operations the operator refused on purpose.
	Refusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "parser_operator_refusals_total",
		Help: "Operations the operator refused (adoption of foreign objects, immutable storage changes, ...).",
	}, []string{"namespace", "platform", "reason"})
)

func init() {
	metrics.Registry.MustRegister(Actions, CacheSteps, ServerChecks, Refusals)
}

// Forget drops every series of a platform that is gone, so dashboards do not
// show deleted platforms forever.
func Forget(namespace, name string) {
	labels := prometheus.Labels{"namespace": namespace, "platform": name}
	for _, vec := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{Actions, CacheSteps, Refusals} {
		vec.DeletePartialMatch(labels)
	}
}
