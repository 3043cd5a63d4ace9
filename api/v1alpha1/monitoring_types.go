package v1alpha1

import corev1 "k8s.io/api/core/v1"

// QueueAutoscaling is a queue worker's autoscaling: the override every
// workload has, plus the backlog target that KEDA scales the worker on.
// (AutoscalingOverride brings its minReplicas <= maxReplicas rule along.)
type QueueAutoscaling struct {
	AutoscalingOverride `json:",inline"`

	// targetQueueLength is how many messages may wait in the queue per
	// worker replica. Set, and with KEDA's scaledobjects.keda.sh CRD
	// installed, the worker is scaled by a KEDA ScaledObject on its queue's
	// backlog (and on the CPU and memory targets) instead of the operator's
	// HPA; without KEDA the HPA stays, and a condition says why. Left out,
	// the worker scales on CPU and memory alone.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	// +optional
	TargetQueueLength *int32 `json:"targetQueueLength,omitempty"`
}

// ExportersSpec are the Prometheus exporter sidecars. Each reads only what it
// needs: postgres_exporter logs in as a monitoring role (pg_monitor) of its
// shard, redis_exporter reads the cache password from the cache's Secret,
// nginx-prometheus-exporter reads nginx's stub_status on the pod's loopback.
type ExportersSpec struct {
	// enabled turns every exporter on (default) or off.
	// +default=true
	// +optional
	Enabled *bool `json:"enabled,omitempty"`

	// postgres is the postgres_exporter beside each shard.
	// +optional
	Postgres ExporterSpec `json:"postgres,omitempty"`

	// redis is the redis_exporter beside each cache node.
	// +optional
	Redis ExporterSpec `json:"redis,omitempty"`

	// nginx is the nginx-prometheus-exporter beside each load balancer pod.
	// +optional
	Nginx ExporterSpec `json:"nginx,omitempty"`
}

// ExporterSpec is one exporter sidecar.
type ExporterSpec struct {
	// enabled overrides exporters.enabled for this exporter.
	// +optional
	Enabled *bool `json:"enabled,omitempty"`

	// image of the exporter; left out, the version the operator is tested
	// with.
	// +kubebuilder:validation:MinLength=1
	// +optional
	Image string `json:"image,omitempty"`

	// resources of the exporter container; left out, small requests and a
	// memory limit.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`
}

// AlertsSpec are the thresholds of the platform's alerts (docs/runbook.md
// has one section per alert). Durations are Prometheus durations: 30s,
// 10m, 2h, 1d.
type AlertsSpec struct {
	// notReadyFor is how long the platform may stay not Ready before
	// ParserPlatformNotReady fires.
	// +default="10m"
	// +kubebuilder:validation:Pattern=`^([0-9]+(ms|s|m|h|d|w|y))+$`
	// +optional
	NotReadyFor string `json:"notReadyFor,omitempty"`

	// downFor is how long a shard, the cache or the broker may be down (or
	// the cache's slots unserved, the broker partitioned) before its alert
	// fires.
	// +default="5m"
	// +kubebuilder:validation:Pattern=`^([0-9]+(ms|s|m|h|d|w|y))+$`
	// +optional
	DownFor string `json:"downFor,omitempty"`

	// queueBacklog is the number of ready messages in one queue above which
	// a growing backlog, or workers at their maximum replicas, is alerted on.
	// +default=1000
	// +kubebuilder:validation:Minimum=1
	// +optional
	QueueBacklog int32 `json:"queueBacklog,omitempty"`

	// backlogFor is how long a backlog must keep growing (or the workers
	// stay at their maximum with a backlog) before the alert fires.
	// +default="15m"
	// +kubebuilder:validation:Pattern=`^([0-9]+(ms|s|m|h|d|w|y))+$`
	// +optional
	BacklogFor string `json:"backlogFor,omitempty"`

	// reconcileErrorsFor is how long the operator may keep failing to
	// reconcile the platform before ParserPlatformReconcileErrors fires.
	// +default="15m"
	// +kubebuilder:validation:Pattern=`^([0-9]+(ms|s|m|h|d|w|y))+$`
	// +optional
	ReconcileErrorsFor string `json:"reconcileErrorsFor,omitempty"`

	// backupMaxAge is the age of the newest complete backup above which
	// ParserPlatformBackupTooOld fires (only with spec.backup); leave room
	// for one schedule period and a backup's duration.
	// +default="26h"
	// +kubebuilder:validation:Pattern=`^([0-9]+(ms|s|m|h|d|w|y))+$`
	// +optional
	BackupMaxAge string `json:"backupMaxAge,omitempty"`
}
