// Package metrics holds the operator's own Prometheus metrics, served beside
// controller-runtime's on the manager's metrics endpoint: what each platform
// looks like (conditions, replicas, shards) and what the operator did to it.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
)

var (
	// Condition is 1 while a platform's condition is True, else 0.
	Condition = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "parser_operator_platform_condition",
		Help: "1 while the platform's condition is True, 0 otherwise.",
	}, []string{"namespace", "platform", "condition"})

	// Replicas are a component's desired and ready replicas.
	Replicas = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "parser_operator_component_replicas",
		Help: "Desired and ready replicas of each workload of a platform.",
	}, []string{"namespace", "platform", "component", "kind", "state"})

	// Shards is the number of database shards a platform routes to.
	Shards = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "parser_operator_platform_shards",
		Help: "Database shards of the platform.",
	}, []string{"namespace", "platform"})

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
	metrics.Registry.MustRegister(Condition, Replicas, Shards, Actions, CacheSteps, ServerChecks, Refusals)
}

// Observe records a platform's status in the gauges.
func Observe(p *platformv1.ParserPlatform) {
	ns, name := p.Namespace, p.Name
	// Components come and go with the spec: start from none.
	Replicas.DeletePartialMatch(prometheus.Labels{"namespace": ns, "platform": name})
	for _, c := range p.Status.Conditions {
		value := 0.0
		if c.Status == "True" {
			value = 1
		}
		Condition.WithLabelValues(ns, name, c.Type).Set(value)
	}
	for _, c := range p.Status.Components {
		Replicas.WithLabelValues(ns, name, c.Name, c.Kind, "desired").Set(float64(c.DesiredReplicas))
		Replicas.WithLabelValues(ns, name, c.Name, c.Kind, "ready").Set(float64(c.ReadyReplicas))
	}
	Shards.WithLabelValues(ns, name).Set(float64(p.Status.Shards))
}

// Forget drops every series of a platform that is gone, so dashboards do not
// show deleted platforms forever.
func Forget(namespace, name string) {
	labels := prometheus.Labels{"namespace": namespace, "platform": name}
	for _, vec := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{Condition, Replicas, Shards, Actions, CacheSteps, Refusals} {
		vec.DeletePartialMatch(labels)
	}
}
