package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vkparser/parser-operator/internal/resource"
)

// churnWindow is what the operator did while the benchmark played a live
// cluster's controllers over the converged platforms: every HPA's status
// rewritten each period with new current metrics (an HPA controller with a
// metrics server does so every 15 s), every Deployment's status bumped
// (its Progressing condition's lastUpdateTime, as the Deployment controller
// moves it). Nothing the operator reads for the platforms' status changes.
type churnWindow struct {
	Window, Period            time.Duration
	Rounds, HPAs, Deployments int
	// StatusWrites are the benchmark's own status updates.
	StatusWrites int
	Reconciles   float64
	// Writes are the operator's (apiserver_request_total less the
	// benchmark's own), Rows by verb, resource and code.
	Writes float64
	Rows   []string
	// Requests are the operator's rest_client_requests_total by "METHOD
	// code" during the window: reads past its cache and writes.
	Requests map[string]float64
	// ServerChecks are parser_operator_server_checks_total by
	// "server/result" during the window.
	ServerChecks map[string]float64
	CPU          cpuUse
	// Scrapes are the benchmark's scrapes of the operator's metrics in the
	// window, ScrapeCPU the operator's CPU seconds for one (measured just
	// before the window), OwnCPU the operator's CPU less theirs.
	Scrapes           int64
	ScrapeCPU, OwnCPU float64
}

// churn runs --churn of status churn over the many platforms' children,
// after one round that makes the Deployments report ready (so the rounds
// measured change nothing the platforms' status shows) and a settle.
func (e *env) churn(ctx context.Context, op *operatorProcess) error {
	if e.o.churn <= 0 {
		return nil
	}
	w := &e.res.Churn
	w.Period = e.o.churnPeriod
	hpas, deployments, err := e.churnTargets(ctx)
	if err != nil {
		return err
	}
	w.HPAs, w.Deployments = len(hpas), len(deployments)
	progress("churn: one round making %d Deployments ready, then settle", len(deployments))
	if _, err := e.churnRound(ctx, hpas, deployments, 0); err != nil {
		return err
	}
	if err := op.settle(ctx, 0, e.o.timeout); err != nil {
		return err
	}
	progress("churn: rewriting %d HPA and %d Deployment statuses every %s for %s", len(hpas), len(deployments), w.Period, e.o.churn)
	if w.ScrapeCPU, err = e.scrapeCost(ctx, op); err != nil {
		return err
	}
	mark, err := e.markWindow(ctx, op)
	if err != nil {
		return err
	}
	cpuBefore, scrapesBefore := e.c.cpu(op), op.scrapes.Load()
	start := time.Now()
	for round := 1; time.Since(start) < e.o.churn; round++ {
		n, err := e.churnRound(ctx, hpas, deployments, round)
		if err != nil {
			return err
		}
		w.Rounds, w.StatusWrites = round, w.StatusWrites+n
		if err := sleep(ctx, min(w.Period, e.o.churn-time.Since(start))); err != nil {
			return err
		}
	}
	if err := op.settle(ctx, 0, e.o.timeout); err != nil {
		return err
	}
	w.Window = time.Since(start)
	w.CPU = e.c.cpu(op).minus(cpuBefore)
	w.Scrapes = op.scrapes.Load() - scrapesBefore
	w.OwnCPU = max(0, w.CPU.Operator-float64(w.Scrapes)*w.ScrapeCPU)
	m0 := mark.metrics
	var m1 families
	w.Writes, w.Rows, m1, err = e.closeWindow(ctx, op, mark)
	if err != nil {
		return err
	}
	ours := where("controller", controllerName)
	w.Reconciles = m1.sum("controller_runtime_reconcile_total", ours) - m0.sum("controller_runtime_reconcile_total", ours)
	w.Requests = countersBy(m1, m0, "rest_client_requests_total", "method", "code")
	w.ServerChecks = countersBy(m1, m0, "parser_operator_server_checks_total", "server", "result")
	progress("churn: %d rounds, %.0f reconciles, %.0f operator writes, operator CPU %.1f %% of a core (%.1f %% with the benchmark's %d scrapes)",
		w.Rounds, w.Reconciles, w.Writes, 100*w.OwnCPU/w.Window.Seconds(), 100*w.CPU.Operator/w.Window.Seconds(), w.Scrapes)
	return nil
}

// windowMark is where a measured window over the operator starts: the API
// server's write counts, the benchmark's own writes and the operator's
// metrics.
type windowMark struct {
	writes  writes
	own     map[string]int
	metrics families
}

func (e *env) markWindow(ctx context.Context, op *operatorProcess) (windowMark, error) {
	w, err := e.c.apiserverWrites(ctx)
	if err != nil {
		return windowMark{}, err
	}
	own := e.c.ownWrites.snapshot()
	m, err := op.scrape(ctx)
	return windowMark{writes: w, own: own, metrics: m}, err
}

// closeWindow returns the operator's writes since the mark (the
// benchmark's own taken out), their rows, and the operator's metrics now.
func (e *env) closeWindow(ctx context.Context, op *operatorProcess, mark windowMark) (float64, []string, families, error) {
	after, err := e.c.apiserverWrites(ctx)
	if err != nil {
		return 0, nil, nil, err
	}
	total, rows := after.minus(mark.writes).operatorWrites(e.c.ownWrites.since(mark.own))
	now, err := op.scrape(ctx)
	return total, rows, now, err
}

// churnTargets are the many platforms' HPAs and Deployments.
func (e *env) churnTargets(ctx context.Context) ([]client.ObjectKey, []client.ObjectKey, error) {
	ours := client.MatchingLabels{resource.LabelManagedBy: resource.ManagedBy}
	var hpas, deployments []client.ObjectKey
	hl := &autoscalingv2.HorizontalPodAutoscalerList{}
	if err := e.c.adminClient.List(ctx, hl, ours); err != nil {
		return nil, nil, err
	}
	for _, h := range hl.Items {
		hpas = append(hpas, client.ObjectKeyFromObject(&h))
	}
	dl := &appsv1.DeploymentList{}
	if err := e.c.adminClient.List(ctx, dl, ours); err != nil {
		return nil, nil, err
	}
	for _, d := range dl.Items {
		deployments = append(deployments, client.ObjectKeyFromObject(&d))
	}
	return hpas, deployments, nil
}

// churnRound rewrites each status once; round 0 makes the Deployments
// report every replica ready and available. It returns the writes made.
func (e *env) churnRound(ctx context.Context, hpas, deployments []client.ObjectKey, round int) (int, error) {
	writes := 0
	now := metav1.Now()
	for _, key := range hpas {
		h := &autoscalingv2.HorizontalPodAutoscaler{}
		if err := e.c.adminClient.Get(ctx, key, h); err != nil {
			return writes, err
		}
		replicas := ptr.Deref(h.Spec.MinReplicas, 1)
		h.Status.CurrentReplicas, h.Status.DesiredReplicas = replicas, replicas
		h.Status.CurrentMetrics = []autoscalingv2.MetricStatus{{Type: autoscalingv2.ResourceMetricSourceType,
			Resource: &autoscalingv2.ResourceMetricStatus{Name: corev1.ResourceCPU,
				Current: autoscalingv2.MetricValueStatus{AverageUtilization: ptr.To(int32(10 + (round*7)%50))}}}}
		h.Status.LastScaleTime = &now
		if err := e.c.adminClient.Status().Update(ctx, h); err != nil {
			return writes, fmt.Errorf("HPA %s: %w", key, err)
		}
		writes++
	}
	for _, key := range deployments {
		d := &appsv1.Deployment{}
		if err := e.c.adminClient.Get(ctx, key, d); err != nil {
			return writes, err
		}
		replicas := ptr.Deref(d.Spec.Replicas, 1)
		d.Status.ObservedGeneration = d.Generation
		d.Status.Replicas, d.Status.UpdatedReplicas, d.Status.ReadyReplicas, d.Status.AvailableReplicas = replicas, replicas, replicas, replicas
		d.Status.Conditions = []appsv1.DeploymentCondition{
			{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable", LastUpdateTime: now, LastTransitionTime: now},
			{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable", LastUpdateTime: now, LastTransitionTime: now},
		}
		if err := e.c.adminClient.Status().Update(ctx, d); err != nil {
			return writes, fmt.Errorf("deployment %s: %w", key, err)
		}
		writes++
	}
	return writes, nil
}

// scrapeCost is the operator's CPU seconds for one scrape of its metrics,
// from three in a row.
func (e *env) scrapeCost(ctx context.Context, op *operatorProcess) (float64, error) {
	const n = 3
	before := e.c.cpu(op).Operator
	for range n {
		if _, err := op.scrape(ctx); err != nil {
			return 0, err
		}
	}
	return (e.c.cpu(op).Operator - before) / n, nil
}

// countersBy is the growth of a counter between two scrapes, summed by the
// values of two labels ("a/b", or "a b" for method and code).
func countersBy(now, then families, name, l1, l2 string) map[string]float64 {
	sep := "/"
	if l1 == "method" {
		sep = " "
	}
	by := func(f families) map[string]float64 {
		out := map[string]float64{}
		mf, ok := f[name]
		if !ok {
			return out
		}
		for _, s := range mf.GetMetric() {
			l := labelsOf(s)
			out[l[l1]+sep+l[l2]] += s.GetCounter().GetValue()
		}
		return out
	}
	a, b := by(now), by(then)
	out := map[string]float64{}
	for k, v := range a {
		if d := v - b[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

func (r *results) printChurn(p func(string, ...any)) {
	w := r.Churn
	if w.Rounds == 0 {
		return
	}
	cpu := 100 * w.OwnCPU / w.Window.Seconds()
	p("### Churn: %d platforms' children statuses rewritten every %s (%d rounds in %s)", r.Many.Platforms, seconds(w.Period), w.Rounds, seconds(w.Window))
	p("")
	p("| measure | value | target |")
	p("|---|---|---|")
	p("| statuses rewritten by the benchmark (%d HPAs, %d Deployments a round) | %d | |", w.HPAs, w.Deployments, w.StatusWrites)
	p("| reconciles (per second) | %.0f (%.1f/s) | |", w.Reconciles, w.Reconciles/w.Window.Seconds())
	p("| operator writes | %.0f | 0: %s |", w.Writes, verdict(w.Writes == 0))
	p("| operator requests (rest_client_requests_total) | %s | no GET: %s |", formatCounts(w.Requests), verdict(w.Requests["GET 200"] == 0))
	p("| server checks (dialed / recalled) | %s | no dial per status event |", formatCounts(w.ServerChecks))
	p("| operator CPU, less the benchmark's %d scrapes of its metrics (%.2f s each) | %.1f %% of one core (%.1f s; %.1f s with them) | < 5 %%: %s |",
		w.Scrapes, w.ScrapeCPU, cpu, w.OwnCPU, w.CPU.Operator, verdict(cpu < 5))
	p("")
}

func formatCounts(m map[string]float64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	rows := make([]string, len(keys))
	for i, k := range keys {
		rows[i] = fmt.Sprintf("%s: %.0f", k, m[k])
	}
	return strings.Join(rows, "; ")
}
