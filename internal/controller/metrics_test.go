package controller

import (
	"context"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/vkparser/parser-operator/internal/metrics"
)

var _ = Describe("Operator metrics", func() {
	It("follow a platform's conditions, replicas and the operator's actions, and forget deleted platforms", func() {
		ctx := context.Background()
		ns := newNamespace(ctx)
		p := samplePlatform(ns, "vk")
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		settled(ctx, p)

		platforms := metrics.Platforms{Reader: reconciler.Client}
		// -1: no such series.
		gauge := func(name string, labels ...string) func() float64 {
			return func() float64 {
				v, ok := gaugeValue(platforms, name, append([]string{"namespace", ns, "platform", "vk"}, labels...)...)
				if !ok {
					return -1
				}
				return v
			}
		}
		Eventually(gauge("parser_operator_platform_condition", "condition", "Ready")).Should(Equal(0.0))
		Expect(testutil.ToFloat64(metrics.Actions.WithLabelValues(ns, "vk", "Deployment", "created"))).To(Equal(4.0),
			"auth, comments, gateway and lb")
		Expect(testutil.ToFloat64(metrics.Actions.WithLabelValues(ns, "vk", "StatefulSet", "created"))).To(Equal(2.0),
			"one shard and the cache")
		Eventually(gauge("parser_operator_platform_shards")).Should(Equal(1.0))

		markDeploymentReady(ctx, ns, "vk-auth")
		Eventually(gauge("parser_operator_component_replicas", "component", "auth", "kind", "Deployment", "state", "ready"),
			timeout, interval).Should(Equal(3.0))
		Eventually(gauge("parser_operator_platform_condition", "condition", "Paused"), timeout, interval).Should(Equal(0.0))

		Expect(k8sClient.Delete(ctx, p)).To(Succeed())
		Eventually(func() bool { return hasSeriesIn(platforms, ns) }, timeout, interval).Should(BeFalse())
		Expect(hasSeriesIn(metrics.Actions, ns)).To(BeFalse())
	})
})

// series is one collected series: its metric's description, labels and
// gauge value.
type series struct {
	desc   string
	labels map[string]string
	gauge  float64
}

// collect gathers every series of c.
func collect(c prometheus.Collector) []series {
	ch := make(chan prometheus.Metric, 1024)
	go func() { c.Collect(ch); close(ch) }()
	var out []series
	for m := range ch {
		var d dto.Metric
		Expect(m.Write(&d)).To(Succeed())
		s := series{desc: m.Desc().String(), labels: map[string]string{}, gauge: d.GetGauge().GetValue()}
		for _, l := range d.GetLabel() {
			s.labels[l.GetName()] = l.GetValue()
		}
		out = append(out, s)
	}
	return out
}

// gaugeValue is the value of the series of c named name with the labels
// given as name, value pairs (false: no such series).
func gaugeValue(c prometheus.Collector, name string, labels ...string) (float64, bool) {
	for _, s := range collect(c) {
		matches := strings.Contains(s.desc, `"`+name+`"`)
		for i := 0; i+1 < len(labels); i += 2 {
			matches = matches && s.labels[labels[i]] == labels[i+1]
		}
		if matches {
			return s.gauge, true
		}
	}
	return 0, false
}

// hasSeriesIn tells whether a collector has a series for a namespace.
func hasSeriesIn(c prometheus.Collector, ns string) bool {
	for _, s := range collect(c) {
		if s.labels["namespace"] == ns {
			return true
		}
	}
	return false
}
