package v1alpha1

import "k8s.io/utils/ptr"

// Defaults the operator falls back to when a field is left out. The CRD
// defaults most of them at admission; these cover objects that never went
// through an API server (the render subcommand, unit tests) and fields whose
// default depends on another field.
const (
	DefaultMinReplicas                   int32 = 3
	DefaultMaxReplicas                   int32 = 20
	DefaultTargetCPUUtilization          int32 = 70
	DefaultTargetMemoryUtilization       int32 = 80
	DefaultScaleDownStabilizationSeconds int32 = 300
	DefaultRabbitMQImage                       = "rabbitmq:3.13-management-alpine"
	DefaultRedisImage                          = "redis:7.2-alpine"
	DefaultMetricsPort                   int32 = 9090
)

// EffectiveAutoscaling is an HPA setting with every field resolved. It is
// computed by the operator and never serialized, so no field is part of the
// API (json:"-").
type EffectiveAutoscaling struct {
	Enabled                       bool  `json:"-"`
	MinReplicas                   int32 `json:"-"`
	MaxReplicas                   int32 `json:"-"`
	TargetCPUUtilization          int32 `json:"-"`
	TargetMemoryUtilization       int32 `json:"-"` // 0: no memory metric
	ScaleDownStabilizationSeconds int32 `json:"-"`
}

// platformAutoscaling resolves spec.autoscaling, filling in the Default*
// constants for unset fields.
func (s *ParserPlatformSpec) platformAutoscaling() EffectiveAutoscaling {
	a := s.Autoscaling
	return EffectiveAutoscaling{
		Enabled:                       ptr.Deref(a.Enabled, true),
		MinReplicas:                   orDefault(a.MinReplicas, DefaultMinReplicas),
		MaxReplicas:                   orDefault(a.MaxReplicas, DefaultMaxReplicas),
		TargetCPUUtilization:          orDefault(a.TargetCPUUtilizationPercentage, DefaultTargetCPUUtilization),
		TargetMemoryUtilization:       ptr.Deref(a.TargetMemoryUtilizationPercentage, DefaultTargetMemoryUtilization),
		ScaleDownStabilizationSeconds: ptr.Deref(a.ScaleDownStabilizationSeconds, DefaultScaleDownStabilizationSeconds),
	}
}

// AutoscalingFor merges a per-workload override onto spec.autoscaling: every
// field the override leaves out comes from the platform.
func (s *ParserPlatformSpec) AutoscalingFor(o *AutoscalingOverride) EffectiveAutoscaling {
	e := s.platformAutoscaling()
	if o == nil {
		return e
	}
	e.Enabled = ptr.Deref(o.Enabled, e.Enabled)
	e.MinReplicas = ptr.Deref(o.MinReplicas, e.MinReplicas)
	e.MaxReplicas = ptr.Deref(o.MaxReplicas, e.MaxReplicas)
	e.TargetCPUUtilization = ptr.Deref(o.TargetCPUUtilizationPercentage, e.TargetCPUUtilization)
	e.TargetMemoryUtilization = ptr.Deref(o.TargetMemoryUtilizationPercentage, e.TargetMemoryUtilization)
	e.ScaleDownStabilizationSeconds = ptr.Deref(o.ScaleDownStabilizationSeconds, e.ScaleDownStabilizationSeconds)
	return e
}

// MetricsPort is the port every app container serves Prometheus metrics on.
func (s *ParserPlatformSpec) MetricsPort() int32 {
	return orDefault(s.Monitoring.MetricsPort, DefaultMetricsPort)
}

// MonitoringNamespace is where Prometheus runs.
func (s *ParserPlatformSpec) MonitoringNamespace() string {
	return orDefault(s.Monitoring.Namespace, "monitoring")
}

// GatewayPort is the port the gateway listens on.
func (s *ParserPlatformSpec) GatewayPort() int32 {
	return orDefault(s.Gateway.Port, 8080)
}

// RoutingKeyOf is the queue's routing key, its name when left out.
func (q *QueueSpec) RoutingKeyOf() string {
	if q.RoutingKey == "" {
		return q.Name
	}
	return q.RoutingKey
}

// BrokerImage is the broker's image, the default of its type when left out.
func (b *BrokerSpec) BrokerImage() string {
	switch {
	case b.Image != "":
		return b.Image
	case b.Type == BrokerRedis:
		return DefaultRedisImage
	default:
		return DefaultRabbitMQImage
	}
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
