package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
)

// The platforms' state gauges are made at each scrape from their status as
// the operator's cache holds it, as kube-state-metrics does: nothing is
// kept between scrapes (a series per condition and per workload replica
// count was a tenth of the operator's memory at 300 platforms), a deleted
// platform has no series, and a reconcile does nothing for them.
var (
	conditionDesc = prometheus.NewDesc("parser_operator_platform_condition",
		"1 while the platform's condition is True, 0 otherwise.",
		[]string{"namespace", "platform", "condition"}, nil)
	replicasDesc = prometheus.NewDesc("parser_operator_component_replicas",
		"Desired and ready replicas of each workload of a platform.",
		[]string{"namespace", "platform", "component", "kind", "state"}, nil)
	shardsDesc = prometheus.NewDesc("parser_operator_platform_shards",
		"Database shards of the platform.",
		[]string{"namespace", "platform"}, nil)
	cacheSlotsDesc = prometheus.NewDesc("parser_operator_cache_slots",
		"Redis Cluster hash slots of the platform's cache, by state (assigned of 16384, open).",
		[]string{"namespace", "platform", "state"}, nil)
)

// scrapeTimeout bounds the cache read of one scrape.
const scrapeTimeout = 10 * time.Second

// Platforms reports every platform's status gauges, read from platforms (the
// manager's cache) at each scrape.
type Platforms struct {
	Reader client.Reader
}

// RegisterPlatforms serves the platforms' status gauges on the operator's
// metrics endpoint.
func RegisterPlatforms(reader client.Reader) error {
	return metrics.Registry.Register(Platforms{Reader: reader})
}

// Describe implements prometheus.Collector.
func (c Platforms) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{conditionDesc, replicasDesc, shardsDesc, cacheSlotsDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c Platforms) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	list := &platformv1.ParserPlatformList{}
	// Read only: no copy of the cache's objects.
	if err := c.Reader.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
		ch <- prometheus.NewInvalidMetric(conditionDesc, err)
		return
	}
	for i := range list.Items {
		collectPlatform(ch, &list.Items[i])
	}
}

// collectPlatform sends one platform's gauges.
func collectPlatform(ch chan<- prometheus.Metric, p *platformv1.ParserPlatform) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{p.Namespace, p.Name}, labels...)...)
	}
	for _, c := range p.Status.Conditions {
		value := 0.0
		if c.Status == "True" {
			value = 1
		}
		gauge(conditionDesc, value, c.Type)
	}
	for _, c := range p.Status.Components {
		gauge(replicasDesc, float64(c.DesiredReplicas), c.Name, c.Kind, "desired")
		gauge(replicasDesc, float64(c.ReadyReplicas), c.Name, c.Kind, "ready")
	}
	gauge(shardsDesc, float64(p.Status.Shards))
	// A platform whose cache was never observed has no series (its alert
	// then waits for one).
	if cache := p.Status.Cache; cache != nil {
		gauge(cacheSlotsDesc, float64(cache.SlotsAssigned), "assigned")
		gauge(cacheSlotsDesc, float64(cache.OpenSlots), "open")
	}
}
