package resource

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
)

// ServiceMonitorGVK is the Prometheus Operator's ServiceMonitor. The operator
// does not import the Prometheus Operator's Go module for one object: it
// builds it unstructured and creates it only when the CRD exists.
var ServiceMonitorGVK = schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: "ServiceMonitor"}

// ServiceMonitor scrapes the metrics port of every Service of the platform
// (services and gateway expose one named "metrics").
func ServiceMonitor(p *platformv1.ParserPlatform) *unstructured.Unstructured {
	meta := objectMeta(p, Name(p.Name), "monitoring", "monitoring")
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(ServiceMonitorGVK)
	u.SetName(meta.Name)
	u.SetNamespace(meta.Namespace)
	u.SetLabels(meta.Labels)
	u.SetOwnerReferences(meta.OwnerReferences)
	u.Object["spec"] = map[string]any{
		"selector": map[string]any{"matchLabels": map[string]any{
			LabelInstance: p.Name, LabelPartOf: PartOf,
		}},
		"namespaceSelector": map[string]any{"matchNames": []any{p.Namespace}},
		"endpoints": []any{map[string]any{
			"port": MetricsPortName, "path": "/metrics", "interval": "30s",
			"relabelings": platformRelabelings(),
		}},
	}
	return u
}
