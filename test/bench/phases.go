package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

const controllerName = "parserplatform"

// onePlatform times the sample three ways, interleaved run by run so that
// the machine's noise falls on all three alike.
func (e *env) onePlatform(ctx context.Context) error {
	o := e.o
	var namespaces []string
	for r := 1; r <= o.repeat; r++ {
		namespaces = append(namespaces, fmt.Sprintf("one-plain-%d", r), fmt.Sprintf("one-kubectl-%d", r), fmt.Sprintf("one-operator-%d", r))
	}
	if err := e.c.createNamespaces(ctx, namespaces...); err != nil {
		return err
	}
	cacheDir := filepath.Join(e.work, "kubectl-cache")
	if err := warmKubectl(ctx, e.kubectl, e.c.adminKubeconfig, cacheDir); err != nil {
		return err
	}
	op, err := startOperator(ctx, e.bin, e.c.operatorKubeconfig, filepath.Join(e.work, "operator-one.log"), strings.Fields(o.operatorArgs), o.operatorEnv())
	if err != nil {
		return err
	}
	defer op.stop()
	if e.t, err = startTracker(ctx, e.c.admin); err != nil {
		return err
	}
	one := &e.res.One
	one.Children = e.children
	for r := 1; r <= o.repeat; r++ {
		d, err := e.onePlain(ctx, fmt.Sprintf("one-plain-%d", r))
		if err != nil {
			return err
		}
		one.Plain = append(one.Plain, d)
		if d, err = e.oneKubectl(ctx, fmt.Sprintf("one-kubectl-%d", r), cacheDir); err != nil {
			return err
		}
		one.Kubectl = append(one.Kubectl, d)
		if d, err = e.oneOperator(ctx, fmt.Sprintf("one-operator-%d", r)); err != nil {
			return err
		}
		one.Operator = append(one.Operator, d)
		progress("one platform, run %d/%d: operator %s, kubectl %s, plain loop %s", r, o.repeat,
			seconds(one.Operator[r-1]), seconds(one.Kubectl[r-1]), seconds(one.Plain[r-1]))
	}
	return nil
}

func (e *env) onePlain(ctx context.Context, ns string) (time.Duration, error) {
	p, err := e.render(ctx, ns)
	if err != nil {
		return 0, err
	}
	return plainCreate(ctx, e.c.operatorClient, p.children, e.o.inflight)
}

func (e *env) oneKubectl(ctx context.Context, ns, cacheDir string) (time.Duration, error) {
	p, err := e.render(ctx, ns)
	if err != nil {
		return 0, err
	}
	file := filepath.Join(e.work, ns+".yaml")
	if err := os.WriteFile(file, p.rendered, 0o600); err != nil {
		return 0, err
	}
	return kubectlApply(ctx, e.kubectl, e.c.adminKubeconfig, cacheDir, file)
}

// oneOperator creates the platform and waits for every rendered child and
// for observedGeneration; any other child the operator made is an error:
// render must print exactly what the operator creates.
func (e *env) oneOperator(ctx context.Context, ns string) (time.Duration, error) {
	p, err := e.render(ctx, ns)
	if err != nil {
		return 0, err
	}
	e.t.expect(p.childKeys(), []string{p.key()}, []string{ns})
	start := time.Now()
	if err := e.createPlatforms(ctx, []*platformSpec{p}); err != nil {
		return 0, err
	}
	doneAt, err := e.t.wait(ctx, e.o.timeout)
	if err != nil {
		return 0, err
	}
	if extra := e.t.unexpected(); len(extra) > 0 {
		return 0, fmt.Errorf("the operator made children render does not print: %v", extra)
	}
	return doneAt.Sub(start), nil
}

func (e *env) render(ctx context.Context, ns string) (*platformSpec, error) {
	return newPlatform(ctx, e.bin, e.sampleObj, e.sampleObj.GetName(), ns)
}

// createPlatforms creates the platforms with the benchmark's admin client,
// inflight at a time.
func (e *env) createPlatforms(ctx context.Context, ps []*platformSpec) error {
	objs := make([]*unstructured.Unstructured, len(ps))
	for i, p := range ps {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(p.manifest, &u.Object); err != nil {
			return err
		}
		objs[i] = u
	}
	_, err := plainCreate(ctx, e.c.adminClient, objs, e.o.inflight)
	return err
}

// manyNames spreads the platforms over the namespaces.
func manyNames(o options, prefix string) (names, namespaces []string) {
	for i := range o.platforms {
		names = append(names, fmt.Sprintf("p%03d", i))
		namespaces = append(namespaces, fmt.Sprintf("%s-%02d", prefix, i%o.namespaces))
	}
	return names, namespaces
}

func unique(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// manyPlatforms: a fresh operator process, all platforms created at once;
// then the idle window, then a restart.
func (e *env) manyPlatforms(ctx context.Context) error {
	o := e.o
	names, namespaces := manyNames(o, "many")
	progress("rendering %d platforms", o.platforms)
	platforms, err := renderAll(ctx, e.bin, e.sampleObj, names, namespaces)
	if err != nil {
		return err
	}
	e.many = platforms
	if err := e.c.createNamespaces(ctx, unique(namespaces)...); err != nil {
		return err
	}
	var children, keys []string
	for _, p := range platforms {
		children = append(children, p.childKeys()...)
		keys = append(keys, p.key())
	}
	m := &e.res.Many
	m.Platforms, m.Namespaces, m.Children = o.platforms, o.namespaces, len(children)

	op, err := startOperator(ctx, e.bin, e.c.operatorKubeconfig, filepath.Join(e.work, "operator-many.log"), strings.Fields(o.operatorArgs), o.operatorEnv())
	if err != nil {
		return err
	}
	defer func() { op.stop() }()
	e.t.expect(children, keys, unique(namespaces))
	before, err := e.c.apiserverWrites(ctx)
	if err != nil {
		return err
	}
	own := e.c.ownWrites.snapshot()
	progress("many platforms: creating %d platforms (%d children) in %d namespaces", o.platforms, len(children), o.namespaces)
	cpuBefore := e.c.cpu(op)
	start := time.Now()
	if err := e.createPlatforms(ctx, platforms); err != nil {
		return err
	}
	doneAt, err := e.t.wait(ctx, o.timeout)
	if err != nil {
		return err
	}
	m.Converge = doneAt.Sub(start)
	m.CPU = e.c.cpu(op).minus(cpuBefore)
	if extra := e.t.unexpected(); len(extra) > 0 {
		return fmt.Errorf("the operator made children render does not print: %v", extra[:min(5, len(extra))])
	}
	progress("many platforms: converged in %s; waiting for the operator to settle", seconds(m.Converge))
	atConvergence, err := e.c.apiserverWrites(ctx)
	if err != nil {
		return err
	}
	settleStart := time.Now()
	if err := op.settle(ctx, 0, o.timeout); err != nil {
		return err
	}
	m.Settle = time.Since(settleStart)
	after, err := e.c.apiserverWrites(ctx)
	if err != nil {
		return err
	}
	ownDuring := e.c.ownWrites.since(own)
	m.Writes, m.WriteRows = atConvergence.minus(before).operatorWrites(ownDuring)
	m.TrailingWrites, m.TrailingRows = after.minus(atConvergence).operatorWrites(nil)
	m.Code429 = count429(after.minus(before))
	if err := e.operatorFigures(ctx, op, &m.Operator); err != nil {
		return err
	}
	progress("many platforms: settled after %s more; operator peak RSS %s", seconds(m.Settle), mib(m.Operator.PeakRSS))

	if err := e.overConverged(ctx, op); err != nil {
		return err
	}
	op.stop()
	return e.restart(ctx, len(platforms))
}

// overConverged runs the phases over the converged platforms, with the
// operator that converged them: idle, churn, trickle.
func (e *env) overConverged(ctx context.Context, op *operatorProcess) error {
	if err := e.idle(ctx, op); err != nil {
		return err
	}
	if err := e.churn(ctx, op); err != nil {
		return fmt.Errorf("churn: %w", err)
	}
	if err := e.trickle(ctx, op); err != nil {
		return fmt.Errorf("trickle: %w", err)
	}
	return nil
}

// operatorFigures reads what the operator's own metrics and log say.
func (e *env) operatorFigures(ctx context.Context, op *operatorProcess, f *operatorFigures) error {
	metrics, err := op.scrape(ctx)
	if err != nil {
		return err
	}
	ours := where("controller", controllerName)
	reconcile := metrics.histogram("controller_runtime_reconcile_time_seconds", ours)
	queue := metrics.histogram("workqueue_queue_duration_seconds", ours)
	f.Reconciles = reconcile.count
	f.ReconcileErrors = metrics.sum("controller_runtime_reconcile_errors_total", ours)
	f.Requeues = metrics.sum("controller_runtime_reconcile_total", where("controller", controllerName, "result", "requeue_after")) +
		metrics.sum("controller_runtime_reconcile_total", where("controller", controllerName, "result", "requeue"))
	f.ReconcileP50, f.ReconcileP99 = reconcile.quantile(0.5), reconcile.quantile(0.99)
	f.ReconcileP99Bucket = reconcile.bucketAbove(0.99)
	f.QueueWaitP99, f.QueueWaitP99Bucket = queue.quantile(0.99), queue.bucketAbove(0.99)
	f.Requests = map[string]float64{}
	if mf, ok := metrics["rest_client_requests_total"]; ok {
		for _, s := range mf.GetMetric() {
			l := labelsOf(s)
			f.Requests[l["method"]+" "+l["code"]] += s.GetCounter().GetValue()
		}
	}
	f.PeakRSS, f.RSS, err = op.memory()
	if err != nil {
		progress("no RSS: %v", err)
	}
	f.PeakHeapAlloc, f.PeakHeapInuse = op.peakHeaps()
	f.PeakAnonRSS = op.peakAnonymous()
	f.ThrottleLogLines, err = op.countLog("client-side throttling")
	return err
}

func count429(w writes) float64 {
	n := 0.0
	for k, v := range w {
		if strings.HasSuffix(k, " 429") {
			n += v
		}
	}
	return n
}

// idle counts the writes of the window after the operator settled.
func (e *env) idle(ctx context.Context, op *operatorProcess) error {
	op.endSampling()
	progress("idle: counting writes for %s", e.o.idle)
	before, err := e.c.apiserverWrites(ctx)
	if err != nil {
		return err
	}
	reconciles := op.reconciles(ctx)
	own := e.c.ownWrites.snapshot()
	cpuBefore := e.c.cpu(op)
	if err := sleep(ctx, e.o.idle); err != nil {
		return err
	}
	e.res.Idle.CPU = e.c.cpu(op).minus(cpuBefore)
	after, err := e.c.apiserverWrites(ctx)
	if err != nil {
		return err
	}
	w := &e.res.Idle
	w.Window = e.o.idle
	w.Writes, w.Rows = after.minus(before).operatorWrites(e.c.ownWrites.since(own))
	w.Internal = internalWrites(after.minus(before))
	w.Reconciles = op.reconciles(ctx) - reconciles
	progress("idle: %.0f writes, %.0f reconciles", w.Writes, w.Reconciles)
	return nil
}

func internalWrites(w writes) float64 {
	n := 0.0
	for k, v := range w {
		if apiServerInternal(k) {
			n += v
		}
	}
	return n
}

// restart starts a new operator over the converged platforms and counts
// the writes from its start until it has reconciled every platform once
// and settled, and at least the idle window.
func (e *env) restart(ctx context.Context, platforms int) error {
	progress("restart: a new operator over %d platforms", platforms)
	before, err := e.c.apiserverWrites(ctx)
	if err != nil {
		return err
	}
	own := e.c.ownWrites.snapshot()
	cpuBefore := e.c.cpu(nil)
	start := time.Now()
	op, err := startOperator(ctx, e.bin, e.c.operatorKubeconfig, filepath.Join(e.work, "operator-restart.log"), strings.Fields(e.o.operatorArgs), e.o.operatorEnv())
	if err != nil {
		return err
	}
	defer op.stop()
	if err := op.settle(ctx, float64(platforms), e.o.timeout); err != nil {
		return err
	}
	r := &e.res.Restart
	r.Settled = time.Since(start)
	r.CPU = e.c.cpu(op).minus(cpuBefore)
	op.endSampling()
	if err := sleep(ctx, e.o.idle-time.Since(start)); err != nil {
		return err
	}
	after, err := e.c.apiserverWrites(ctx)
	if err != nil {
		return err
	}
	r.Window = time.Since(start)
	r.Writes, r.Rows = after.minus(before).operatorWrites(e.c.ownWrites.since(own))
	r.Internal = internalWrites(after.minus(before))
	if err := e.operatorFigures(ctx, op, &r.Operator); err != nil {
		return err
	}
	r.Reconciles = r.Operator.Reconciles
	progress("restart: %.0f writes, %.0f reconciles, settled in %s", r.Writes, r.Reconciles, seconds(r.Settled))
	return nil
}

// plainMany creates the many-platform phase's children once more, with the
// plain loop, into fresh namespaces, with no operator running.
//
// The benchmark's watches stay on, as while the operator converged: both
// pay for them alike.
func (e *env) plainMany(ctx context.Context) error {
	defer e.t.stop()
	_, namespaces := manyNames(e.o, "plain")
	if err := e.c.createNamespaces(ctx, unique(namespaces)...); err != nil {
		return err
	}
	var objs []*unstructured.Unstructured
	for i, p := range e.many {
		objs = append(objs, inNamespace(p.children, namespaces[i])...)
	}
	before, err := e.c.apiserverWrites(ctx)
	if err != nil {
		return err
	}
	progress("plain loop: creating %d objects, %d in flight", len(objs), e.o.inflight)
	cpuBefore := e.c.cpu(nil)
	d, err := plainCreate(ctx, e.c.operatorClient, objs, e.o.inflight)
	if err != nil {
		return err
	}
	e.res.Many.PlainCPU = e.c.cpu(nil).minus(cpuBefore)
	after, err := e.c.apiserverWrites(ctx)
	if err != nil {
		return err
	}
	e.res.Many.PlainDuration = d
	e.res.Many.PlainCode429 = count429(after.minus(before))
	progress("plain loop: %d objects in %s", len(objs), seconds(d))
	return nil
}

// reconciles is the operator's reconcile count so far.
func (o *operatorProcess) reconciles(ctx context.Context) float64 {
	m, err := o.scrape(ctx)
	if err != nil {
		return 0
	}
	return m.sum("controller_runtime_reconcile_total", where("controller", controllerName))
}

// settle waits until the operator has made at least minReconciles
// reconciles, its work queue is empty, nothing is being reconciled and it
// sent no write for 2 s (events are sent in the background, after the
// reconcile that records them).
func (o *operatorProcess) settle(ctx context.Context, minReconciles float64, timeout time.Duration) error {
	const quiet = 2 * time.Second
	deadline := time.Now().Add(timeout)
	var lastState string
	var since time.Time
	for time.Now().Before(deadline) {
		m, err := o.scrape(ctx)
		if err != nil {
			return err
		}
		ours := where("controller", controllerName)
		reconciles := m.sum("controller_runtime_reconcile_total", ours)
		busy := m.sum("workqueue_depth", ours) + m.sum("controller_runtime_active_workers", ours)
		writes := m.sum("rest_client_requests_total", func(l map[string]string) bool { return l["method"] != "GET" })
		state := fmt.Sprintf("%.0f/%.0f", reconciles, writes)
		switch {
		case reconciles < minReconciles || busy > 0 || state != lastState:
			lastState, since = state, time.Now()
		case time.Since(since) >= quiet:
			return nil
		}
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("the operator did not settle in %s", timeout)
}
