package resource

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
)

// The Prometheus Operator kinds the platform writes beside the
// ServiceMonitor, each only while its CRD is served. Like the
// ServiceMonitor they are built unstructured: the operator does not import
// the Prometheus Operator's Go module for three objects.
var (
	PodMonitorGVK     = schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: "PodMonitor"}
	PrometheusRuleGVK = schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: "PrometheusRule"}
)

// CRD names to watch for (as ServiceMonitorCRD in the controller).
const (
	PodMonitorCRD     = "podmonitors.monitoring.coreos.com"
	PrometheusRuleCRD = "prometheusrules.monitoring.coreos.com"
)

// Target labels every scrape of the platform carries, copied from the
// pod's labels, so the exporters' series and the operator's own
// (parser_operator_*{namespace, platform, component}) join on the same
// names: platform is app.kubernetes.io/instance, component
// app.kubernetes.io/name ("db-0", "cache", "lb", "broker", "worker-parser").
const (
	TargetLabelPlatform  = "platform"
	TargetLabelComponent = "component"
)

// platformRelabelings are the relabelings of every endpoint of the
// ServiceMonitor and the PodMonitor.
func platformRelabelings() []any {
	return []any{
		map[string]any{"sourceLabels": []any{"__meta_kubernetes_pod_label_app_kubernetes_io_instance"}, "targetLabel": TargetLabelPlatform},
		map[string]any{"sourceLabels": []any{"__meta_kubernetes_pod_label_app_kubernetes_io_name"}, "targetLabel": TargetLabelComponent},
	}
}

// podMonitoredComponents are the components scraped by pod (they have no
// Service with a metrics port): the workers on their metrics port, the
// exporter sidecars of shards, cache and load balancer on theirs, and
// RabbitMQ's rabbitmq_prometheus. Services and the gateway are the
// ServiceMonitor's, so they are left out here and not scraped twice.
var podMonitoredComponents = []any{ComponentWorker, ComponentDatabase, ComponentCache, ComponentLoadBalancer, ComponentBroker}

// PodMonitor scrapes every pod of the platform that has no Service to be
// scraped through: named like the ServiceMonitor (the kind differs).
func PodMonitor(p *platformv1.ParserPlatform) *unstructured.Unstructured {
	u := monitoringObject(p, PodMonitorGVK)
	endpoint := func(port string) map[string]any {
		return map[string]any{"port": port, "path": "/metrics", "interval": "30s", "relabelings": platformRelabelings()}
	}
	u.Object["spec"] = map[string]any{
		"selector": map[string]any{
			"matchLabels": map[string]any{LabelInstance: p.Name, LabelPartOf: PartOf},
			"matchExpressions": []any{map[string]any{
				"key": LabelComponent, "operator": "In", "values": podMonitoredComponents,
			}},
		},
		"namespaceSelector": map[string]any{"matchNames": []any{p.Namespace}},
		// A pod without one of these ports is simply not a target of that
		// endpoint: workers and exporters serve "metrics", RabbitMQ
		// "prometheus".
		"podMetricsEndpoints": []any{endpoint(MetricsPortName), endpoint(RabbitPrometheusPortName)},
	}
	return u
}

// monitoringObject is an empty object of kind gvk with the metadata of
// every child (name P, labels, owner reference).
func monitoringObject(p *platformv1.ParserPlatform, gvk schema.GroupVersionKind) *unstructured.Unstructured {
	meta := objectMeta(p, Name(p.Name), "monitoring", "monitoring")
	u := &unstructured.Unstructured{Object: map[string]any{}}
	u.SetGroupVersionKind(gvk)
	u.SetName(meta.Name)
	u.SetNamespace(meta.Namespace)
	u.SetLabels(meta.Labels)
	u.SetOwnerReferences(meta.OwnerReferences)
	return u
}
