package resource

import (
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
)

// RunbookURL is where every alert's runbook_url points: a section of
// docs/runbook.md named after the alert (GitHub's anchor: the heading in
// lower case).
const RunbookURL = "https://github.com/vkparser/parser-operator/blob/main/docs/runbook.md"

// Alert names, one runbook section each.
const (
	AlertNotReady                     = "ParserPlatformNotReady"
	AlertShardDown                    = "ParserPlatformShardDown"
	AlertCacheSlotsNotServed          = "ParserPlatformCacheSlotsNotServed"
	AlertCacheSlotsOpen               = "ParserPlatformCacheSlotsOpen"
	AlertQueueBacklogGrowing          = "ParserPlatformQueueBacklogGrowing"
	AlertWorkersAtMaxReplicas         = "ParserPlatformWorkersAtMaxReplicas"
	AlertBrokerDown                   = "ParserPlatformBrokerDown"
	AlertBrokerPartitioned            = "ParserPlatformBrokerPartitioned"
	AlertReconcileErrors              = "ParserPlatformReconcileErrors"
	AlertBackupTooOld                 = "ParserPlatformBackupTooOld"
	cacheHashSlots                    = 16384
	severityCritical, severityWarning = "critical", "warning"
)

// AlertRule is one rule of the platform's PrometheusRule.
type AlertRule struct {
	Alert       string
	Expr        string
	For         string
	Severity    string
	Labels      map[string]string // beyond severity and platform
	Summary     string
	Description string
}

// PrometheusRule holds the platform's alerts (AlertRules), named P.
func PrometheusRule(p *platformv1.ParserPlatform) *unstructured.Unstructured {
	u := monitoringObject(p, PrometheusRuleGVK)
	rules := make([]any, 0)
	for _, r := range AlertRules(p) {
		labels := map[string]any{"severity": r.Severity, TargetLabelPlatform: p.Name}
		for k, v := range r.Labels {
			labels[k] = v
		}
		rules = append(rules, map[string]any{
			"alert": r.Alert, "expr": r.Expr, "for": r.For, "labels": labels,
			"annotations": map[string]any{
				"summary": r.Summary, "description": r.Description,
				"runbook_url": RunbookURL + "#" + strings.ToLower(r.Alert),
			},
		})
	}
	u.Object["spec"] = map[string]any{"groups": []any{map[string]any{
		"name": "parser-platform." + p.Namespace + "." + p.Name, "rules": rules,
	}}}
	return u
}

// AlertRules are the platform's alerts, thresholds from
// spec.monitoring.alerts. Every expression selects the platform's own
// series (namespace and platform labels), so each alert names it.
func AlertRules(p *platformv1.ParserPlatform) []AlertRule {
	a := p.Spec.Monitoring.EffectiveAlerts()
	sel := fmt.Sprintf(`namespace=%q, %s=%q`, p.Namespace, TargetLabelPlatform, p.Name)
	who := p.Namespace + "/" + p.Name
	rules := []AlertRule{
		{
			Alert: AlertNotReady, For: a.NotReadyFor, Severity: severityWarning,
			Expr:        fmt.Sprintf(`%s{%s, condition="Ready"} == 0`, MetricPlatformCondition, sel),
			Summary:     "ParserPlatform " + who + " is not Ready",
			Description: "ParserPlatform " + who + " has not been Ready for " + a.NotReadyFor + ": kubectl describe pp " + p.Name + " -n " + p.Namespace + " names the area (its False condition) and why.",
		},
		{
			Alert: AlertShardDown, For: a.DownFor, Severity: severityCritical,
			Expr: fmt.Sprintf(`(%[1]s{%[2]s, component=~"db-[0-9]+", state="ready"} < 1) or (%[3]s{%[2]s} == 0) or (%[4]s{%[2]s, component=~"db-[0-9]+"} == 0)`,
				MetricComponentReplicas, sel, MetricPostgresUp, MetricPrometheusTargetUp),
			Summary:     "A database shard of " + who + " is down",
			Description: "Shard {{ $labels.component }} of ParserPlatform " + who + " has had no ready PostgreSQL (or its exporter cannot log in) for " + a.DownFor + ": the keys routed to it (md5(key) mod N) cannot be read or written.",
		},
		{
			Alert: AlertCacheSlotsNotServed, For: a.DownFor, Severity: severityCritical,
			Expr: fmt.Sprintf(`(%[1]s{%[2]s, state="assigned"} < %[3]d) or (%[4]s{%[2]s} == 0)`,
				MetricCacheSlots, sel, cacheHashSlots, MetricRedisClusterState),
			Summary:     "Cache slots of " + who + " are not served",
			Description: "The Redis Cluster of ParserPlatform " + who + " has not served all 16384 hash slots (or a node reports cluster_state fail) for " + a.DownFor + ": keys of the unserved slots fail.",
		},
		{
			Alert: AlertCacheSlotsOpen, For: a.NotReadyFor, Severity: severityWarning,
			Expr:        fmt.Sprintf(`%s{%s, state="open"} > 0`, MetricCacheSlots, sel),
			Summary:     "Cache slots of " + who + " are left open",
			Description: "The Redis Cluster of ParserPlatform " + who + " has had slots migrating or importing for " + a.NotReadyFor + ": a slot migration is stuck or was interrupted.",
		},
		{
			Alert: AlertReconcileErrors, For: a.ReconcileErrorsFor, Severity: severityWarning,
			Expr:        fmt.Sprintf(`sum by (namespace, platform) (rate(%s{%s}[5m])) > 0`, MetricReconcileErrors, sel),
			Summary:     "The operator keeps failing to reconcile " + who,
			Description: "parser-operator has returned errors reconciling ParserPlatform " + who + " for " + a.ReconcileErrorsFor + ": its logs and the platform's events say which child.",
		},
	}
	if hasQueues(p) {
		rules = append(rules, brokerRules(p, a, sel, who)...)
	}
	if p.Spec.Backup != nil {
		rules = append(rules, AlertRule{
			Alert: AlertBackupTooOld, For: "10m", Severity: severityCritical,
			Expr:        fmt.Sprintf(`time() - %s{%s} > %d`, MetricBackupLastSuccess, sel, durationSeconds(a.BackupMaxAge)),
			Summary:     "The newest backup of " + who + " is too old",
			Description: "The newest complete backup set of ParserPlatform " + who + " is older than " + a.BackupMaxAge + ": check the last ParserPlatformBackup (kubectl get ppbackup -n " + p.Namespace + ") and the BackupReady condition.",
		})
	}
	return rules
}

// brokerRules: the broker down or partitioned; and, on RabbitMQ, whose
// per-queue depth is a series, backlogs.
func brokerRules(p *platformv1.ParserPlatform, a platformv1.EffectiveAlerts, sel, who string) []AlertRule {
	rules := []AlertRule{{
		Alert: AlertBrokerDown, For: a.DownFor, Severity: severityCritical,
		Expr: fmt.Sprintf(`(%[1]s{%[2]s, component="broker", state="ready"} < ignoring(state) %[1]s{%[2]s, component="broker", state="desired"}) or (%[3]s{%[2]s, component="broker"} == 0)`,
			MetricComponentReplicas, sel, MetricPrometheusTargetUp),
		Summary:     "The broker of " + who + " is down",
		Description: "The broker of ParserPlatform " + who + " has had fewer ready nodes than it should for " + a.DownFor + ": tasks cannot be queued or taken.",
	}}
	if isRedisBroker(p) {
		return rules
	}
	if replicas := orInt32(p.Spec.Queues.Broker.Replicas, 1); replicas > 1 {
		rules = append(rules, AlertRule{
			Alert: AlertBrokerPartitioned, For: a.DownFor, Severity: severityCritical,
			// 3 is "up" in erlang_vm_dist_node_state; every node should
			// see its replicas-1 peers.
			Expr:        fmt.Sprintf(`count by (namespace, platform, pod) (%s{%s} == 3) < %d`, MetricErlangDistNodeState, sel, replicas-1),
			Summary:     "The broker of " + who + " is partitioned",
			Description: "Broker node {{ $labels.pod }} of ParserPlatform " + who + " has seen fewer than " + fmt.Sprint(replicas-1) + " peers for " + a.DownFor + ": the RabbitMQ cluster is split.",
		})
	}
	ready := func(extra string) string { return fmt.Sprintf(`%s{%s%s}`, MetricRabbitReady, sel, extra) }
	rules = append(rules, AlertRule{
		Alert: AlertQueueBacklogGrowing, For: a.BacklogFor, Severity: severityWarning,
		Expr: fmt.Sprintf(`(sum by (namespace, platform, queue) (%[1]s) > %[2]d) and (sum by (namespace, platform, queue) (delta(%[1]s[%[3]s])) > 0)`,
			ready(""), a.QueueBacklog, a.BacklogFor),
		Summary:     "Queue {{ $labels.queue }} of " + who + " keeps growing",
		Description: "Queue {{ $labels.queue }} of ParserPlatform " + who + " has held more than " + fmt.Sprint(a.QueueBacklog) + " ready messages and kept growing for " + a.BacklogFor + ": its workers take tasks slower than they arrive.",
	})
	for i := range p.Spec.Queues.Queues {
		q := &p.Spec.Queues.Queues[i]
		scaling := p.Spec.AutoscalingFor(q.Autoscaling.Override())
		if !scaling.Enabled {
			continue
		}
		rules = append(rules, AlertRule{
			Alert: AlertWorkersAtMaxReplicas, For: a.BacklogFor, Severity: severityWarning,
			Labels: map[string]string{"queue": q.Name},
			Expr: fmt.Sprintf(`(%s{%s, component=%q, state="desired"} >= %d) and on (namespace, platform) (sum by (namespace, platform) (%s) > %d)`,
				MetricComponentReplicas, sel, WorkerName(q.Name), scaling.MaxReplicas, ready(fmt.Sprintf(", queue=%q", q.Name)), a.QueueBacklog),
			Summary:     "Workers of queue " + q.Name + " of " + who + " are at their maximum with a backlog",
			Description: "The workers of queue " + q.Name + " of ParserPlatform " + who + " have run at their maximum of " + fmt.Sprint(scaling.MaxReplicas) + " replicas with more than " + fmt.Sprint(a.QueueBacklog) + " messages waiting for " + a.BacklogFor + ": raise maxReplicas or look at what slows the tasks.",
		})
	}
	return rules
}

// durationSeconds reads a Prometheus duration of the spec (the CRD's
// pattern admits only those); one that does not parse counts as 0, which
// the promtool test of the rendered rules would catch.
func durationSeconds(d string) int64 {
	v, err := model.ParseDuration(d)
	if err != nil {
		return 0
	}
	return int64(time.Duration(v).Seconds())
}
