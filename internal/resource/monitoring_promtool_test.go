package resource

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/testutil"
)

// promtool is the path of promtool, built and cached by hack/promtool.sh
// (or $PROMTOOL; hack/test.sh builds it before the tests). Without it the
// test is skipped on a developer's machine and fails in CI (testutil.
// MissingTool), where a skip would hide the alerts' tests.
func promtool(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PROMTOOL"); p != "" {
		return p
	}
	out, err := exec.Command("bash", filepath.Join("..", "..", "hack", "promtool.sh")).Output()
	if err != nil {
		testutil.MissingTool(t, "promtool (hack/promtool.sh builds it from the Go module proxy)", err)
	}
	return strings.TrimSpace(string(out))
}

// promtoolPlatform exercises every rule: a three-node RabbitMQ (partition
// rule), backups (backup rule, its age overridden), autoscaled queues.
func promtoolPlatform() *platformv1.ParserPlatform {
	p := samplePlatform()
	p.Spec.Queues.Broker.Replicas = 3
	p.Spec.Backup = &platformv1.BackupSpec{Schedule: "0 3 * * *"}
	p.Spec.Monitoring.Alerts.BackupMaxAge = "5m"
	p.Spec.Queues.Queues[1].Autoscaling = &platformv1.QueueAutoscaling{AutoscalingOverride: platformv1.AutoscalingOverride{Enabled: ptr.To(false)}}
	return p
}

// writeRules writes the PrometheusRule's spec as a Prometheus rule file.
func writeRules(t *testing.T, dir string, p *platformv1.ParserPlatform) string {
	t.Helper()
	out, err := yaml.Marshal(PrometheusRule(p).Object["spec"])
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPromtoolChecksTheRules(t *testing.T) {
	bin := promtool(t)
	for name, p := range map[string]*platformv1.ParserPlatform{
		"sample": samplePlatform(), "every rule": promtoolPlatform(), "redis broker": redisBrokerPlatform(),
	} {
		t.Run(name, func(t *testing.T) {
			rules := writeRules(t, t.TempDir(), p)
			if out, err := exec.Command(bin, "check", "rules", rules).CombinedOutput(); err != nil {
				t.Fatalf("promtool check rules: %v\n%s", err, out)
			}
		})
	}
}

// alertCase is one promtool unit test: input series, an evaluation time and
// the alert expected then (fire), or none.
type alertCase struct {
	alert, name string
	series      map[string]string // series -> promtool values notation
	eval        string
	fire        map[string]string // the alert's labels; nil: must not fire
}

const vkSel = `namespace="parser", platform="vk"`

func replicas(component, kind, state string) string {
	return fmt.Sprintf(`parser_operator_component_replicas{%s, component=%q, kind=%q, state=%q}`, vkSel, component, kind, state)
}

func vkLabels(kv ...string) map[string]string {
	l := map[string]string{"namespace": "parser", "platform": "vk"}
	for i := 0; i+1 < len(kv); i += 2 {
		l[kv[i]] = kv[i+1]
	}
	return l
}

// alertCases fire and do not fire every alert of promtoolPlatform.
var alertCases = []alertCase{
	{alert: AlertNotReady, name: "not Ready past notReadyFor",
		series: map[string]string{`parser_operator_platform_condition{` + vkSel + `, condition="Ready"}`: "0x20"}, eval: "11m",
		fire: vkLabels("condition", "Ready", "severity", "warning")},
	{alert: AlertNotReady, name: "not Ready for less than notReadyFor",
		series: map[string]string{`parser_operator_platform_condition{` + vkSel + `, condition="Ready"}`: "0x20"}, eval: "9m"},
	{alert: AlertNotReady, name: "Ready",
		series: map[string]string{`parser_operator_platform_condition{` + vkSel + `, condition="Ready"}`: "1x20"}, eval: "11m"},
	{alert: AlertShardDown, name: "no ready pod",
		series: map[string]string{replicas("db-1", "StatefulSet", "ready"): "0x10"}, eval: "6m",
		fire: vkLabels("component", "db-1", "kind", "StatefulSet", "state", "ready", "severity", "critical")},
	{alert: AlertShardDown, name: "exporter cannot reach it",
		series: map[string]string{`pg_up{` + vkSel + `, component="db-2", pod="vk-db-2-0"}`: "0x10"}, eval: "6m",
		fire: vkLabels("component", "db-2", "pod", "vk-db-2-0", "severity", "critical")},
	{alert: AlertShardDown, name: "up and ready",
		series: map[string]string{replicas("db-1", "StatefulSet", "ready"): "1x10", `pg_up{` + vkSel + `, component="db-1", pod="vk-db-1-0"}`: "1x10"}, eval: "6m"},
	{alert: AlertCacheSlotsNotServed, name: "slots unassigned",
		series: map[string]string{`parser_operator_cache_slots{` + vkSel + `, state="assigned"}`: "16000x10"}, eval: "6m",
		fire: vkLabels("state", "assigned", "severity", "critical")},
	{alert: AlertCacheSlotsNotServed, name: "every slot served",
		series: map[string]string{`parser_operator_cache_slots{` + vkSel + `, state="assigned"}`: "16384x10", `redis_cluster_state{` + vkSel + `, pod="vk-cache-0"}`: "1x10"}, eval: "6m"},
	{alert: AlertCacheSlotsOpen, name: "slots left open",
		series: map[string]string{`parser_operator_cache_slots{` + vkSel + `, state="open"}`: "3x15"}, eval: "11m",
		fire: vkLabels("state", "open", "severity", "warning")},
	{alert: AlertCacheSlotsOpen, name: "no open slot",
		series: map[string]string{`parser_operator_cache_slots{` + vkSel + `, state="open"}`: "0x15"}, eval: "11m"},
	{alert: AlertReconcileErrors, name: "errors every minute",
		series: map[string]string{`parser_operator_reconcile_errors_total{` + vkSel + `}`: "0+1x30"}, eval: "22m",
		fire: vkLabels("severity", "warning")},
	{alert: AlertReconcileErrors, name: "old errors only",
		series: map[string]string{`parser_operator_reconcile_errors_total{` + vkSel + `}`: "5x30"}, eval: "22m"},
	{alert: AlertBrokerDown, name: "a node not ready",
		series: map[string]string{replicas("broker", "StatefulSet", "ready"): "1x10", replicas("broker", "StatefulSet", "desired"): "3x10"}, eval: "6m",
		fire: vkLabels("component", "broker", "kind", "StatefulSet", "severity", "critical")}, // ignoring(state) drops it
	{alert: AlertBrokerDown, name: "every node ready",
		series: map[string]string{replicas("broker", "StatefulSet", "ready"): "3x10", replicas("broker", "StatefulSet", "desired"): "3x10"}, eval: "6m"},
	{alert: AlertBrokerPartitioned, name: "a node sees one peer of two",
		series: map[string]string{
			`erlang_vm_dist_node_state{` + vkSel + `, pod="vk-broker-0", peer="rabbit@vk-broker-1"}`: "3x10",
			`erlang_vm_dist_node_state{` + vkSel + `, pod="vk-broker-0", peer="rabbit@vk-broker-2"}`: "1x10"}, eval: "6m",
		fire: vkLabels("pod", "vk-broker-0", "severity", "critical")},
	{alert: AlertBrokerPartitioned, name: "every peer up",
		series: map[string]string{
			`erlang_vm_dist_node_state{` + vkSel + `, pod="vk-broker-0", peer="rabbit@vk-broker-1"}`: "3x10",
			`erlang_vm_dist_node_state{` + vkSel + `, pod="vk-broker-0", peer="rabbit@vk-broker-2"}`: "3x10"}, eval: "6m"},
	{alert: AlertQueueBacklogGrowing, name: "growing past queueBacklog",
		series: map[string]string{`rabbitmq_queue_messages_ready{` + vkSel + `, queue="parser", vhost="/", pod="vk-broker-0"}`: "0+100x60"}, eval: "40m",
		fire: vkLabels("queue", "parser", "severity", "warning")},
	{alert: AlertQueueBacklogGrowing, name: "large but steady",
		series: map[string]string{`rabbitmq_queue_messages_ready{` + vkSel + `, queue="parser", vhost="/", pod="vk-broker-0"}`: "5000x60"}, eval: "40m"},
	{alert: AlertWorkersAtMaxReplicas, name: "at maxReplicas with a backlog",
		series: map[string]string{
			replicas("worker-parser", "Deployment", "desired"):                                           "20x30",
			`rabbitmq_queue_messages_ready{` + vkSel + `, queue="parser", vhost="/", pod="vk-broker-0"}`: "5000x30"}, eval: "20m",
		fire: vkLabels("component", "worker-parser", "kind", "Deployment", "state", "desired", "queue", "parser", "severity", "warning")},
	{alert: AlertWorkersAtMaxReplicas, name: "below maxReplicas",
		series: map[string]string{
			replicas("worker-parser", "Deployment", "desired"):                                           "10x30",
			`rabbitmq_queue_messages_ready{` + vkSel + `, queue="parser", vhost="/", pod="vk-broker-0"}`: "5000x30"}, eval: "20m"},
	{alert: AlertBackupTooOld, name: "older than backupMaxAge",
		series: map[string]string{`parser_operator_backup_last_success_timestamp_seconds{` + vkSel + `}`: "0x40"}, eval: "20m",
		fire: vkLabels("severity", "critical")},
	{alert: AlertBackupTooOld, name: "fresh backups",
		series: map[string]string{`parser_operator_backup_last_success_timestamp_seconds{` + vkSel + `}`: "0+60x40"}, eval: "20m"},
}

// TestPromtoolUnitTestsEveryAlert runs `promtool test rules` on the
// rendered rules: each alert fires on series that should fire it, and
// stays silent on series that should not.
func TestPromtoolUnitTestsEveryAlert(t *testing.T) {
	bin := promtool(t)
	p := promtoolPlatform()
	dir := t.TempDir()
	writeRules(t, dir, p)
	rules := map[string][]AlertRule{}
	for _, r := range AlertRules(p) {
		rules[r.Alert] = append(rules[r.Alert], r)
	}
	covered := map[string]bool{}
	var tests []any
	for _, c := range alertCases {
		if len(rules[c.alert]) == 0 {
			t.Fatalf("case %q: the rules have no alert %s", c.name, c.alert)
		}
		if c.fire != nil {
			covered[c.alert] = true
		}
		tests = append(tests, promtoolTest(c, rules[c.alert]))
	}
	for name := range rules {
		if !covered[name] {
			t.Errorf("alert %s has no firing case", name)
		}
	}
	out, err := yaml.Marshal(map[string]any{"rule_files": []any{"rules.yaml"}, "evaluation_interval": "1m", "tests": tests})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tests.yaml"), out, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "test", "rules", "tests.yaml")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s\ntests.yaml:\n%s", err, out, readFile(t, filepath.Join(dir, "tests.yaml")))
	}
}

func promtoolTest(c alertCase, rules []AlertRule) map[string]any {
	var series []any
	for s, v := range c.series {
		series = append(series, map[string]any{"series": s, "values": v})
	}
	expected := []any{}
	if c.fire != nil {
		r := ruleFor(rules, c.fire)
		annotations := map[string]any{"summary": expand(r.Summary, c.fire), "description": expand(r.Description, c.fire),
			"runbook_url": RunbookURL + "#" + strings.ToLower(r.Alert)}
		expected = append(expected, map[string]any{"exp_labels": c.fire, "exp_annotations": annotations})
	}
	return map[string]any{
		"name": c.alert + ": " + c.name, "interval": "1m", "input_series": series,
		"alert_rule_test": []any{map[string]any{"eval_time": c.eval, "alertname": c.alert, "exp_alerts": expected}},
	}
}

// ruleFor picks the rule of an alert whose static labels the expected
// labels carry (WorkersAtMaxReplicas has one rule per queue).
func ruleFor(rules []AlertRule, labels map[string]string) AlertRule {
	for _, r := range rules {
		match := true
		for k, v := range r.Labels {
			match = match && labels[k] == v
		}
		if match {
			return r
		}
	}
	return rules[0]
}

// expand does what Prometheus' templating does to {{ $labels.x }}, the
// only template the annotations use.
func expand(s string, labels map[string]string) string {
	for k, v := range labels {
		s = strings.ReplaceAll(s, "{{ $labels."+k+" }}", v)
	}
	return s
}
