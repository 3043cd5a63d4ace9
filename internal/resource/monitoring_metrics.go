package resource

// Metric names the PrometheusRule and the dashboard read, by the component
// that exports them. The rules and the dashboard are written with these
// constants only, and tests check every name they use against this
// catalogue (and the operator's against internal/metrics' collectors).
const (
	// The operator's own (internal/metrics), labelled namespace, platform.
	MetricPlatformCondition    = "parser_operator_platform_condition"
	MetricComponentReplicas    = "parser_operator_component_replicas"
	MetricPlatformShards       = "parser_operator_platform_shards"
	MetricChildActions         = "parser_operator_child_actions_total"
	MetricRefusals             = "parser_operator_refusals_total"
	MetricReconcileErrors      = "parser_operator_reconcile_errors_total"
	MetricCacheSlots           = "parser_operator_cache_slots"
	MetricBackupLastSuccess    = "parser_operator_backup_last_success_timestamp_seconds"
	MetricCacheTopologySteps   = "parser_operator_cache_topology_steps_total"
	MetricBackupDuration       = "parser_operator_backup_duration_seconds"
	MetricBackupSize           = "parser_operator_backup_size_bytes"
	MetricPrometheusTargetUp   = "up" // Prometheus' own, for every target
	MetricPostgresUp           = "pg_up"
	MetricPostgresBackends     = "pg_stat_database_numbackends"
	MetricPostgresDatabaseSize = "pg_database_size_bytes"
	MetricPostgresCommits      = "pg_stat_database_xact_commit"
	MetricRedisUp              = "redis_up"
	MetricRedisClusterState    = "redis_cluster_state" //nolint:gosec // G101: a metric's name, not a credential.
	MetricRedisConnected       = "redis_connected_clients"
	MetricRedisMemoryUsed      = "redis_memory_used_bytes"
	MetricRedisCommands        = "redis_commands_processed_total"
	MetricNginxUp              = "nginx_up"
	MetricNginxConnections     = "nginx_connections_active"
	MetricNginxRequests        = "nginx_http_requests_total"
	MetricRabbitReady          = "rabbitmq_queue_messages_ready"
	MetricRabbitUnacked        = "rabbitmq_queue_messages_unacked"
	MetricRabbitConsumers      = "rabbitmq_queue_consumers"
	MetricErlangDistNodeState  = "erlang_vm_dist_node_state"
	// The services' application metrics (docs/runbook.md, "What is
	// scraped"), served by every service and the gateway on
	// monitoring.metricsPort.
	MetricHTTPRequests        = "http_requests_total"
	MetricHTTPDurationBuckets = "http_request_duration_seconds_bucket"
)

// Sources of metrics: who exports what the rules and the dashboard read.
const (
	SourceOperator   = "parser-operator"
	SourcePrometheus = "prometheus"
	SourcePostgres   = "postgres_exporter"
	SourceRedis      = "redis_exporter"
	SourceNginx      = "nginx-prometheus-exporter"
	SourceRabbitMQ   = "rabbitmq_prometheus"
	SourceApps       = "services and gateway"
)

// ExportedMetrics maps every metric name the rules and the dashboard may
// use to the component that exports it.
func ExportedMetrics() map[string]string {
	by := map[string][]string{
		SourceOperator: {MetricPlatformCondition, MetricComponentReplicas, MetricPlatformShards, MetricChildActions,
			MetricRefusals, MetricReconcileErrors, MetricCacheSlots, MetricBackupLastSuccess, MetricCacheTopologySteps,
			MetricBackupDuration, MetricBackupSize},
		SourcePrometheus: {MetricPrometheusTargetUp},
		SourcePostgres:   {MetricPostgresUp, MetricPostgresBackends, MetricPostgresDatabaseSize, MetricPostgresCommits},
		SourceRedis:      {MetricRedisUp, MetricRedisClusterState, MetricRedisConnected, MetricRedisMemoryUsed, MetricRedisCommands},
		SourceNginx:      {MetricNginxUp, MetricNginxConnections, MetricNginxRequests},
		SourceRabbitMQ:   {MetricRabbitReady, MetricRabbitUnacked, MetricRabbitConsumers, MetricErlangDistNodeState},
		SourceApps:       {MetricHTTPRequests, MetricHTTPDurationBuckets},
	}
	out := map[string]string{}
	for source, names := range by {
		for _, n := range names {
			out[n] = source
		}
	}
	return out
}
