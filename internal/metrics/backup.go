package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	// BackupDuration is how long the newest completed backup took, from
	// leaving Pending to its manifest.
	BackupDuration = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "parser_operator_backup_duration_seconds",
		Help: "Duration of the platform's newest completed backup.",
	}, []string{"namespace", "platform"})

	// BackupSize is the size of the newest complete set (all shard dumps).
	BackupSize = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "parser_operator_backup_size_bytes",
		Help: "Bytes of the shard dumps of the platform's newest complete backup set.",
	}, []string{"namespace", "platform"})

	// BackupLastSuccess is when the newest backup completed: alert on
	// time() minus it.
	BackupLastSuccess = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "parser_operator_backup_last_success_timestamp_seconds",
		Help: "Unix time the platform's newest backup completed.",
	}, []string{"namespace", "platform"})

	// Backups counts finished backups by phase (Completed, Failed).
	Backups = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "parser_operator_backups_total",
		Help: "Backups that finished, by phase.",
	}, []string{"namespace", "platform", "phase"})
)

func init() {
	metrics.Registry.MustRegister(BackupDuration, BackupSize, BackupLastSuccess, Backups)
}

// ForgetBackups drops a deleted platform's backup gauges.
func ForgetBackups(namespace, platform string) {
	labels := prometheus.Labels{"namespace": namespace, "platform": platform}
	BackupDuration.DeletePartialMatch(labels)
	BackupSize.DeletePartialMatch(labels)
	BackupLastSuccess.DeletePartialMatch(labels)
	Backups.DeletePartialMatch(labels)
}
