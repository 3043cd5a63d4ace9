package v1alpha1

import "k8s.io/utils/ptr"

// Defaults of the monitoring fields, for platforms that never went through
// the API server (render, unit tests); the CRD sets the same at admission.
const (
	DefaultPostgresExporterImage = "quay.io/prometheuscommunity/postgres-exporter:v0.17.1"
	DefaultRedisExporterImage    = "oliver006/redis_exporter:v1.74.0"
	DefaultNginxExporterImage    = "nginx/nginx-prometheus-exporter:1.4.2"

	DefaultAlertNotReadyFor              = "10m"
	DefaultAlertDownFor                  = "5m"
	DefaultAlertQueueBacklog       int32 = 1000
	DefaultAlertBacklogFor               = "15m"
	DefaultAlertReconcileErrorsFor       = "15m"
	DefaultAlertBackupMaxAge             = "26h"
)

// Override is the part of a queue's autoscaling every workload shares (nil
// when the queue overrides nothing).
func (q *QueueAutoscaling) Override() *AutoscalingOverride {
	if q == nil {
		return nil
	}
	return &q.AutoscalingOverride
}

// QueueLengthTarget is the queue's targetQueueLength, 0 when it has none
// (the worker then scales on CPU and memory alone).
func (q *QueueSpec) QueueLengthTarget() int32 {
	if q.Autoscaling == nil {
		return 0
	}
	return ptr.Deref(q.Autoscaling.TargetQueueLength, 0)
}

// ExporterOn tells whether an exporter runs: its own enabled, else
// exporters.enabled, else on.
func (m *MonitoringSpec) ExporterOn(e ExporterSpec) bool {
	return ptr.Deref(e.Enabled, ptr.Deref(m.Exporters.Enabled, true))
}

// DashboardOn tells whether the Grafana dashboard ConfigMap is made (default on).
func (m *MonitoringSpec) DashboardOn() bool { return ptr.Deref(m.Dashboard, true) }

// EffectiveAlerts is AlertsSpec with every threshold resolved. It is computed
// by the operator and never serialized, so no field is part of the API
// (json:"-").
type EffectiveAlerts struct {
	NotReadyFor, DownFor, BacklogFor, ReconcileErrorsFor, BackupMaxAge string `json:"-"`
	QueueBacklog                                                       int32  `json:"-"`
}

// EffectiveAlerts resolves spec.monitoring.alerts.
func (m *MonitoringSpec) EffectiveAlerts() EffectiveAlerts {
	a := m.Alerts
	return EffectiveAlerts{
		NotReadyFor:        orDefault(a.NotReadyFor, DefaultAlertNotReadyFor),
		DownFor:            orDefault(a.DownFor, DefaultAlertDownFor),
		QueueBacklog:       orDefault(a.QueueBacklog, DefaultAlertQueueBacklog),
		BacklogFor:         orDefault(a.BacklogFor, DefaultAlertBacklogFor),
		ReconcileErrorsFor: orDefault(a.ReconcileErrorsFor, DefaultAlertReconcileErrorsFor),
		BackupMaxAge:       orDefault(a.BackupMaxAge, DefaultAlertBackupMaxAge),
	}
}
