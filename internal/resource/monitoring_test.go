package resource

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiresource "k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/metrics"
)

// sidecar is the container named name of the pod template, or nil.
func sidecar(tmpl *corev1.PodTemplateSpec, name string) *corev1.Container {
	for i := range tmpl.Spec.Containers {
		if tmpl.Spec.Containers[i].Name == name {
			return &tmpl.Spec.Containers[i]
		}
	}
	return nil
}

// exporterPods: for each exporter, the template of a pod that carries it.
func exporterPods(t *testing.T, p *platformv1.ParserPlatform) map[string]*corev1.PodTemplateSpec {
	templates := podTemplates(t, Children(p, testCredentials))
	return map[string]*corev1.PodTemplateSpec{
		"postgres-exporter": templates["StatefulSet/"+ShardStatefulSetName(p, 0)],
		"redis-exporter":    templates["StatefulSet/"+CacheName(p)],
		"nginx-exporter":    templates["Deployment/"+Name(p.Name, lbName)],
	}
}

func TestExportersRunBesideShardsCacheAndLoadBalancer(t *testing.T) {
	p := samplePlatform()
	ports := map[string]int32{"postgres-exporter": PostgresExporterPort, "redis-exporter": RedisExporterPort, "nginx-exporter": NginxExporterPort}
	images := map[string]string{"postgres-exporter": platformv1.DefaultPostgresExporterImage,
		"redis-exporter": platformv1.DefaultRedisExporterImage, "nginx-exporter": platformv1.DefaultNginxExporterImage}
	for name, tmpl := range exporterPods(t, p) {
		c := sidecar(tmpl, name)
		if c == nil {
			t.Fatalf("no %s container in its pod", name)
		}
		if c.Image != images[name] || len(c.Ports) != 1 || c.Ports[0].Name != MetricsPortName || c.Ports[0].ContainerPort != ports[name] {
			t.Errorf("%s: image %s ports %v, want %s and one port %s:%d", name, c.Image, c.Ports, images[name], MetricsPortName, ports[name])
		}
		if _, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok {
			t.Errorf("%s has no memory limit by default", name)
		}
	}
	shard := exporterPods(t, p)["postgres-exporter"]
	pg := sidecar(shard, "postgres-exporter")
	if dsn := envOf(t, "postgres-exporter", *pg)["DATA_SOURCE_NAME"]; dsn == nil ||
		!strings.Contains(dsn.Value, MonitoringRole+"@") || !strings.Contains(dsn.Value, "host="+postgresSocketDir) || strings.Contains(dsn.Value, "password") {
		t.Errorf("postgres_exporter DSN %v: want the monitoring role over the Unix socket, no password", dsn)
	}
	if !slices.ContainsFunc(pg.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == "run" && m.MountPath == postgresSocketDir }) {
		t.Errorf("postgres_exporter does not share the socket directory: %v", pg.VolumeMounts)
	}
	hook := sidecar(shard, "postgres").Lifecycle
	if hook == nil || hook.PostStart == nil || !strings.Contains(strings.Join(hook.PostStart.Exec.Command, " "), "GRANT pg_monitor TO "+MonitoringRole) {
		t.Errorf("the shard's postStart hook does not create the monitoring role: %+v", hook)
	}
	redis := sidecar(exporterPods(t, p)["redis-exporter"], "redis-exporter")
	if pw := envOf(t, "redis-exporter", *redis)["REDIS_PASSWORD"]; pw == nil || pw.ValueFrom == nil || pw.ValueFrom.SecretKeyRef == nil ||
		pw.ValueFrom.SecretKeyRef.Name != CacheName(p) || pw.ValueFrom.SecretKeyRef.Key != KeyPassword {
		t.Errorf("redis_exporter REDIS_PASSWORD = %+v, want the cache Secret's password key", pw)
	}
	nginx := sidecar(exporterPods(t, p)["nginx-exporter"], "nginx-exporter")
	if !slices.Contains(nginx.Args, "--nginx.scrape-uri=http://127.0.0.1:8080/nginx_status") {
		t.Errorf("nginx exporter args %v do not read stub_status on loopback", nginx.Args)
	}
	conf := RenderNginxConf(p)
	status := conf[strings.Index(conf, "location = /nginx_status"):]
	status = status[:strings.Index(status, "}")]
	if !strings.Contains(status, "stub_status") || !strings.Contains(status, "allow 127.0.0.1;") || !strings.Contains(status, "deny all;") {
		t.Errorf("nginx.conf serves stub_status beyond loopback:\n%s", status)
	}
}

func TestExportersOverriddenAndTurnedOff(t *testing.T) {
	p := samplePlatform()
	p.Spec.Monitoring.Exporters.Redis = platformv1.ExporterSpec{Image: "mirror.example.com/redis_exporter:v9", Resources: &corev1.ResourceRequirements{
		Limits: corev1.ResourceList{corev1.ResourceMemory: apiresource.MustParse("64Mi")},
	}}
	p.Spec.Monitoring.Exporters.Nginx.Enabled = ptr.To(false)
	pods := exporterPods(t, p)
	redis := sidecar(pods["redis-exporter"], "redis-exporter")
	if redis.Image != "mirror.example.com/redis_exporter:v9" || redis.Resources.Requests.Memory().String() != "64Mi" {
		t.Errorf("redis_exporter image %s requests %v: the spec's override is not used", redis.Image, redis.Resources.Requests)
	}
	if sidecar(pods["nginx-exporter"], "nginx-exporter") != nil {
		t.Error("nginx exporter runs although monitoring.exporters.nginx.enabled is false")
	}
	p.Spec.Monitoring.Exporters.Enabled = ptr.To(false)
	for name, tmpl := range exporterPods(t, p) {
		if len(tmpl.Spec.Containers) != 1 {
			t.Errorf("%s's pod has %d containers with monitoring.exporters.enabled false", name, len(tmpl.Spec.Containers))
		}
	}
	if sidecar(exporterPods(t, p)["postgres-exporter"], "postgres").Lifecycle != nil {
		t.Error("the shard keeps its monitoring role hook without an exporter")
	}
}

// TestExporterSidecarsMeetPodSecurityRestricted runs the pods with every
// exporter through the upstream evaluator, and the control: a sidecar that
// lost its security context is refused, so the sidecars are evaluated.
func TestExporterSidecarsMeetPodSecurityRestricted(t *testing.T) {
	for name, tmpl := range exporterPods(t, samplePlatform()) {
		if v := violations(t, tmpl); len(v) > 0 {
			t.Errorf("%s's pod violates Pod Security restricted: %v", name, v)
		}
		broken := tmpl.DeepCopy()
		sidecar(broken, name).SecurityContext = nil
		if v := violations(t, broken); len(v) == 0 {
			t.Errorf("%s without a security context passes the evaluator: the check would not see a sidecar", name)
		}
		if ro := sidecar(tmpl, name).SecurityContext.ReadOnlyRootFilesystem; !ptr.Deref(ro, false) {
			t.Errorf("%s has a writable root file system", name)
		}
	}
}

func TestBrokerServesPerObjectPrometheusMetrics(t *testing.T) {
	p := samplePlatform()
	children := Children(p, testCredentials)
	cm := find[*corev1.ConfigMap](t, children, BrokerName(p))
	if !strings.Contains(cm.Data[RabbitAdvancedConfKey], "{return_per_object_metrics, true}") || !strings.Contains(cm.Data[EnabledPluginsKey], "rabbitmq_prometheus") {
		t.Errorf("broker ConfigMap: advanced.config %q, plugins %q", cm.Data[RabbitAdvancedConfKey], cm.Data[EnabledPluginsKey])
	}
	c := statefulContainer(t, find[*appsv1.StatefulSet](t, children, BrokerName(p)), "rabbitmq")
	if !slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool {
		return cp.Name == RabbitPrometheusPortName && cp.ContainerPort == RabbitPrometheusPort
	}) {
		t.Errorf("rabbitmq ports %v lack %s:%d", c.Ports, RabbitPrometheusPortName, RabbitPrometheusPort)
	}
	if e := envOf(t, "rabbitmq", c)["RABBITMQ_ADVANCED_CONFIG_FILE"]; e == nil || e.Value != rabbitConfigDir+"/config/"+RabbitAdvancedConfKey {
		t.Errorf("RABBITMQ_ADVANCED_CONFIG_FILE = %+v", e)
	}
	if mountPathOf(t, c, "config") != rabbitConfigDir+"/config" {
		t.Error("the config volume moved")
	}
}

// TestPodMonitorScrapesEveryPodWithoutAService: every metrics port of the
// platform is scraped exactly once: Services' pods by the ServiceMonitor,
// every other pod with a metrics or prometheus port by the PodMonitor.
func TestPodMonitorScrapesEveryPodWithoutAService(t *testing.T) {
	p := samplePlatform()
	pm := PodMonitor(p)
	expr, _, _ := unstructured.NestedSlice(pm.Object, "spec", "selector", "matchExpressions")
	selected := map[string]bool{}
	for _, v := range expr[0].(map[string]any)["values"].([]any) {
		selected[v.(string)] = true
	}
	endpoints, _, _ := unstructured.NestedSlice(pm.Object, "spec", "podMetricsEndpoints")
	ports := map[string]bool{}
	for _, e := range endpoints {
		ports[e.(map[string]any)["port"].(string)] = true
	}
	seen := map[string]bool{}
	for name, tmpl := range podTemplates(t, Children(p, testCredentials)) {
		component := tmpl.Labels[LabelComponent]
		for _, c := range tmpl.Spec.Containers {
			for _, port := range c.Ports {
				if port.Name != MetricsPortName && port.Name != RabbitPrometheusPortName {
					continue
				}
				byService := component == ComponentService || component == ComponentGateway
				if byService == selected[component] || !ports[port.Name] && !byService {
					t.Errorf("%s/%s port %s: scraped by the ServiceMonitor %v, by the PodMonitor %v", name, c.Name, port.Name, byService, selected[component] && ports[port.Name])
				}
				seen[component] = true
			}
		}
	}
	for _, c := range []string{ComponentWorker, ComponentDatabase, ComponentCache, ComponentLoadBalancer, ComponentBroker} {
		if !seen[c] {
			t.Errorf("no pod of component %s serves metrics", c)
		}
	}
	if pm.GetName() != p.Name || pm.GetOwnerReferences()[0].UID != p.UID || pm.GetLabels()[LabelInstance] != p.Name {
		t.Errorf("PodMonitor metadata %v %v %v", pm.GetName(), pm.GetOwnerReferences(), pm.GetLabels())
	}
}

var metricRef = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\{`)

// metricNames are the metric names an expression selects (every query
// here selects with braces).
func metricNames(expr string) []string {
	var out []string
	for _, m := range metricRef.FindAllStringSubmatch(expr, -1) {
		out = append(out, m[1])
	}
	return out
}

// operatorMetricNames are the names internal/metrics really registers,
// read from the collectors' descriptions.
func operatorMetricNames() map[string]bool {
	out := map[string]bool{}
	descs := make(chan *prometheus.Desc, 100)
	for _, c := range []prometheus.Collector{metrics.Platforms{}, metrics.Actions, metrics.CacheSteps,
		metrics.Refusals, metrics.ReconcileErrors, metrics.BackupDuration, metrics.BackupSize,
		metrics.BackupLastSuccess, metrics.Backups} {
		c.Describe(descs)
	}
	close(descs)
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	for d := range descs {
		out[fq.FindStringSubmatch(d.String())[1]] = true
	}
	return out
}

// TestRulesAndDashboardReadExportedMetrics: every metric the rules and the
// dashboard query is exported by a component of the platform, and every
// metric the catalogue credits to the operator is one it registers.
func TestRulesAndDashboardReadExportedMetrics(t *testing.T) {
	exported := ExportedMetrics()
	operator := operatorMetricNames()
	for name, source := range exported {
		if source == SourceOperator && !operator[name] {
			t.Errorf("%s is credited to the operator, which does not register it", name)
		}
	}
	var exprs []string
	for _, r := range AlertRules(promtoolPlatform()) {
		exprs = append(exprs, r.Expr)
	}
	dash := dashboardTargets(t, samplePlatform())
	exprs = append(exprs, dash...)
	if len(dash) < 10 {
		t.Fatalf("the dashboard has %d queries", len(dash))
	}
	for _, e := range exprs {
		names := metricNames(e)
		if len(names) == 0 {
			t.Errorf("query %q selects no metric", e)
		}
		for _, n := range names {
			if _, ok := exported[n]; !ok {
				t.Errorf("query %q reads %s, which no component exports", e, n)
			}
		}
		if !strings.Contains(e, `namespace="parser"`) || !strings.Contains(e, `platform="vk"`) {
			t.Errorf("query %q does not select the platform's own series", e)
		}
	}
}

// dashboardTargets parses the rendered dashboard and returns its queries.
func dashboardTargets(t *testing.T, p *platformv1.ParserPlatform) []string {
	t.Helper()
	var d struct {
		UID    string `json:"uid"`
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal([]byte(RenderDashboard(p)), &d); err != nil {
		t.Fatalf("the dashboard is not valid JSON: %v", err)
	}
	if len(d.UID) > 40 || d.UID == "" || !strings.Contains(d.Title, p.Namespace+"/"+p.Name) {
		t.Errorf("dashboard uid %q (Grafana: at most 40 characters), title %q", d.UID, d.Title)
	}
	var out []string
	for _, panel := range d.Panels {
		if len(panel.Targets) == 0 {
			t.Errorf("panel %q has no query", panel.Title)
		}
		for _, target := range panel.Targets {
			out = append(out, target.Expr)
		}
	}
	return out
}

func TestDashboardConfigMapForGrafanaSidecar(t *testing.T) {
	p := samplePlatform()
	cm := DashboardConfigMap(p)
	if cm.Labels[GrafanaDashboardLabel] != "1" || cm.Labels[LabelInstance] != p.Name || cm.OwnerReferences[0].UID != p.UID {
		t.Errorf("dashboard ConfigMap labels %v owners %v", cm.Labels, cm.OwnerReferences)
	}
	if cm.Data[DashboardKey(p)] != RenderDashboard(p) || len(cm.Data) != 1 {
		t.Errorf("dashboard ConfigMap keys %v", len(cm.Data))
	}
	other := samplePlatform()
	other.Namespace = "elsewhere"
	if dashboardUID(t, other) == dashboardUID(t, p) {
		t.Error("two platforms share a dashboard uid: Grafana would keep only one")
	}
}

func dashboardUID(t *testing.T, p *platformv1.ParserPlatform) string {
	var d struct {
		UID string `json:"uid"`
	}
	if err := json.Unmarshal([]byte(RenderDashboard(p)), &d); err != nil {
		t.Fatal(err)
	}
	return d.UID
}

// TestAlertsNamePlatformAndRunbook: every alert has a summary and a
// description naming the platform, and a runbook_url whose section exists
// in docs/runbook.md.
func TestAlertsNamePlatformAndRunbook(t *testing.T) {
	runbook, err := os.ReadFile(filepath.Join("..", "..", "docs", "runbook.md"))
	if err != nil {
		t.Fatal(err)
	}
	headings := map[string]bool{}
	for _, line := range strings.Split(string(runbook), "\n") {
		if strings.HasPrefix(line, "## ") {
			headings[strings.ToLower(strings.TrimSpace(strings.TrimPrefix(line, "## ")))] = true
		}
	}
	rule := PrometheusRule(promtoolPlatform())
	groups, _, _ := unstructured.NestedSlice(rule.Object, "spec", "groups")
	rules := groups[0].(map[string]any)["rules"].([]any)
	if len(rules) < 10 {
		t.Fatalf("%d rules, want every alert", len(rules))
	}
	for _, r := range rules {
		r := r.(map[string]any)
		ann := r["annotations"].(map[string]any)
		for _, key := range []string{"summary", "description"} {
			if !strings.Contains(ann[key].(string), "parser/vk") {
				t.Errorf("%s %s %q does not name the platform", r["alert"], key, ann[key])
			}
		}
		url := ann["runbook_url"].(string)
		if !strings.HasPrefix(url, RunbookURL+"#") || !headings[strings.TrimPrefix(url, RunbookURL+"#")] {
			t.Errorf("%s: runbook_url %s has no section in docs/runbook.md", r["alert"], url)
		}
		if r["labels"].(map[string]any)["platform"] != "vk" {
			t.Errorf("%s does not carry the platform label", r["alert"])
		}
	}
}

func TestAlertThresholdsFromSpec(t *testing.T) {
	p := samplePlatform()
	p.Spec.Monitoring.Alerts = platformv1.AlertsSpec{NotReadyFor: "30m", QueueBacklog: 42, BacklogFor: "1h"}
	for _, r := range AlertRules(p) {
		switch r.Alert {
		case AlertNotReady:
			if r.For != "30m" {
				t.Errorf("%s for %s, want 30m", r.Alert, r.For)
			}
		case AlertQueueBacklogGrowing:
			if r.For != "1h" || !strings.Contains(r.Expr, "> 42") || !strings.Contains(r.Expr, "[1h]") {
				t.Errorf("%s for %s expr %s", r.Alert, r.For, r.Expr)
			}
		case AlertBackupTooOld, AlertBrokerPartitioned:
			t.Errorf("%s rendered for a platform without backups or with one broker node", r.Alert)
		}
	}
	redis := redisBrokerPlatform()
	for _, r := range AlertRules(redis) {
		if strings.Contains(r.Expr, "rabbitmq_") || strings.Contains(r.Expr, "erlang_") {
			t.Errorf("%s reads RabbitMQ metrics on a Redis broker", r.Alert)
		}
	}
}

// TestGoldenPrometheusRule pins the rendered alerts of the platform with
// every rule (promtoolPlatform), so a change to an expression or a
// threshold shows in review as a diff (make golden).
func TestGoldenPrometheusRule(t *testing.T) {
	out, err := yaml.Marshal(PrometheusRule(promtoolPlatform()).Object["spec"])
	if err != nil {
		t.Fatal(err)
	}
	assertGolden(t, "prometheusrule.yaml.golden", string(out))
}
