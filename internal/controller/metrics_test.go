package controller

import (
	"context"

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

		Expect(testutil.ToFloat64(metrics.Condition.WithLabelValues(ns, "vk", "Ready"))).To(Equal(0.0))
		Expect(testutil.ToFloat64(metrics.Actions.WithLabelValues(ns, "vk", "Deployment", "created"))).To(Equal(4.0),
			"auth, comments, gateway and lb")
		Expect(testutil.ToFloat64(metrics.Actions.WithLabelValues(ns, "vk", "StatefulSet", "created"))).To(Equal(2.0),
			"one shard and the cache")
		Expect(testutil.ToFloat64(metrics.Shards.WithLabelValues(ns, "vk"))).To(Equal(1.0))

		markDeploymentReady(ctx, ns, "vk-auth")
		Eventually(func() float64 {
			return testutil.ToFloat64(metrics.Replicas.WithLabelValues(ns, "vk", "auth", "Deployment", "ready"))
		}, timeout, interval).Should(Equal(3.0))
		Eventually(func() float64 {
			return testutil.ToFloat64(metrics.Condition.WithLabelValues(ns, "vk", "Paused"))
		}, timeout, interval).Should(Equal(0.0))

		Expect(k8sClient.Delete(ctx, p)).To(Succeed())
		Eventually(func() bool { return hasSeriesIn(metrics.Shards, ns) }, timeout, interval).Should(BeFalse())
		Expect(hasSeriesIn(metrics.Replicas, ns)).To(BeFalse())
	})
})

// hasSeriesIn tells whether a collector has a series for a namespace.
func hasSeriesIn(c prometheus.Collector, ns string) bool {
	ch := make(chan prometheus.Metric, 1024)
	go func() { c.Collect(ch); close(ch) }()
	found := false
	for m := range ch {
		var out dto.Metric
		Expect(m.Write(&out)).To(Succeed())
		for _, l := range out.GetLabel() {
			if l.GetName() == "namespace" && l.GetValue() == ns {
				found = true
			}
		}
	}
	return found
}
