package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"
)

// results is everything the benchmark measured: the table, and its JSON.
type results struct {
	Command           string
	Sample            string
	OperatorArgs      string
	Inflight          int // requests in flight of the plain loop
	Started, Finished time.Time
	Machine           machine
	One               onePlatform
	Many              manyPlatforms
	Idle              window
	Restart           restartWindow
	Churn             churnWindow
	Trickle           trickleWindow
	Migration         migrationWindow
}

type machine struct {
	CPU        string
	Cores      int
	MemoryGiB  float64
	Kernel     string
	Go         string
	APIServer  string
	LoadBefore string
	LoadAfter  string
}

type onePlatform struct {
	Children                 int
	Operator, Kubectl, Plain []time.Duration
}

// operatorFigures are read from one operator process's metrics, log and
// /proc entry.
type operatorFigures struct {
	Reconciles, ReconcileErrors, Requeues float64
	ReconcileP50, ReconcileP99            float64 // seconds, interpolated in the histogram's buckets
	ReconcileP99Bucket                    float64 // the bucket bound the p99 is under
	QueueWaitP99, QueueWaitP99Bucket      float64
	PeakRSS, RSS                          float64 // bytes: VmHWM, VmRSS
	PeakHeapAlloc, PeakHeapInuse          float64 // bytes, sampled every 500 ms
	PeakAnonRSS                           float64 // bytes: RssAnon, sampled with the heap (no binary pages)
	ThrottleLogLines                      int
	Requests                              map[string]float64 // rest_client_requests_total by "METHOD code"
}

type manyPlatforms struct {
	Platforms, Namespaces, Children int
	Converge, Settle, PlainDuration time.Duration
	Writes, TrailingWrites          float64
	WriteRows, TrailingRows         []string
	Code429, PlainCode429           float64
	Operator                        operatorFigures
	// CPU seconds used while converging, and during the plain loop.
	CPU, PlainCPU cpuUse
}

type window struct {
	Window           time.Duration
	Writes, Internal float64
	Rows             []string
	Reconciles       float64
	CPU              cpuUse // restart: from the start until settled
}

type restartWindow struct {
	window
	Settled  time.Duration
	Operator operatorFigures
}

func describeMachine(c *cluster) machine {
	m := machine{Cores: runtime.NumCPU(), Go: runtime.Version(), LoadBefore: loadAverage()}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		if _, err := fmt.Sscanf(string(data), "MemTotal: %f kB", &kb); err == nil {
			m.MemoryGiB = kb / (1 << 20)
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(data))
	}
	if v, err := c.kube.Discovery().ServerVersion(); err == nil {
		m.APIServer = v.GitVersion
	}
	if strings.HasPrefix(m.APIServer, "v0.0.0") {
		// Built from the module proxy, no version stamped: the assets
		// folder says which (hack/envtest-assets.sh: envtest-<version>).
		m.APIServer = "built from source (" + filepath.Base(os.Getenv("KUBEBUILDER_ASSETS")) + ")"
	}
	return m
}

func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "n/a"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "n/a"
	}
	return strings.Join(f[:3], " ")
}

func (r *results) writeJSON(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

func seconds(d time.Duration) string {
	switch {
	case d < 10*time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	default:
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
}

func secondsF(s float64) string {
	switch {
	case math.IsNaN(s):
		return "n/a"
	case math.IsInf(s, 1):
		return "+Inf"
	case s < 1:
		return fmt.Sprintf("%.0f ms", s*1000)
	}
	return fmt.Sprintf("%.2f s", s)
}

func (u cpuUse) String() string {
	return fmt.Sprintf("%.1f / %.1f / %.1f / %.1f", u.Operator, u.APIServer, u.Etcd, u.Bench)
}

func mib(b float64) string { return fmt.Sprintf("%.0f MiB", b/(1<<20)) }

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func runs(ds []time.Duration) string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = fmt.Sprintf("%.2f", d.Seconds())
	}
	return strings.Join(out, ", ")
}

// verdict says whether a target is met.
func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**not met**"
}

// print writes the report as Markdown, ready for docs/benchmarks.md.
func (r *results) print(w io.Writer) {
	p := func(format string, args ...any) { _, _ = fmt.Fprintf(w, format+"\n", args...) }
	m := r.Machine
	p("## parser-operator benchmark, %s", r.Started.Format("2006-01-02 15:04 MST"))
	p("")
	p("- command: `%s` (%s)", r.Command, seconds(r.Finished.Sub(r.Started)))
	p("- machine: %s, %d cores, %.1f GiB, %s; %s; kube-apiserver %s (envtest: kube-apiserver + etcd, no other controllers)", m.CPU, m.Cores, m.MemoryGiB, m.Kernel, m.Go, m.APIServer)
	p("- load average (1, 5, 15 min) before: %s, after: %s", m.LoadBefore, m.LoadAfter)
	args := r.OperatorArgs
	if args == "" {
		args = "none: the binary's defaults"
	}
	p("- operator: its own process, as a service account bound to config/rbac/role.yaml; extra flags: %s", args)
	p("")
	r.printOne(p)
	r.printMany(p)
	r.printIdle(p)
	r.printChurn(p)
	r.printTrickle(p)
	r.printMigration(p)
	r.printWrites(p)
}

func (r *results) printOne(p func(string, ...any)) {
	one := r.One
	op, kc, plain := median(one.Operator), median(one.Kubectl), median(one.Plain)
	p("### One platform (%s: %d children), median of %d runs", r.Sample, one.Children, len(one.Operator))
	p("")
	p("| way | median | runs (s) | the operator | target |")
	p("|---|---|---|---|---|")
	p("| operator: create until every child exists and observedGeneration matches | %s | %s | | |", seconds(op), runs(one.Operator))
	p("| `kubectl apply --server-side` of `parser-operator render` | %s | %s | %.1fx faster | >= 5x faster: %s |",
		seconds(kc), runs(one.Kubectl), kc.Seconds()/op.Seconds(), verdict(kc.Seconds()/op.Seconds() >= 5))
	p("| plain client-go loop, %d in flight | %s | %s | %.2fx its time | <= 1.5x: %s |",
		r.Inflight, seconds(plain), runs(one.Plain), op.Seconds()/plain.Seconds(), verdict(op.Seconds()/plain.Seconds() <= 1.5))
	p("")
}

func (r *results) printMany(p func(string, ...any)) {
	m := r.Many
	f := m.Operator
	opRate := float64(m.Children) / m.Converge.Seconds()
	plainRate := float64(m.Children) / m.PlainDuration.Seconds()
	p("### Many platforms: %d platforms in %d namespaces (%d children), created at once", m.Platforms, m.Namespaces, m.Children)
	p("")
	p("| measure | value | target |")
	p("|---|---|---|")
	p("| time to converge (every child exists, every observedGeneration matches) | %s | |", seconds(m.Converge))
	p("| children/s, operator | %.0f | |", opRate)
	p("| children/s, plain client-go loop (%d in flight, no operator running) | %.0f (%s) | |", r.Inflight, plainRate, seconds(m.PlainDuration))
	p("| operator / plain loop | %.0f %% | >= 70 %%: %s |", 100*opRate/plainRate, verdict(opRate/plainRate >= 0.7))
	p("| reconciles while converging (errors, requeues) | %.0f (%.0f, %.0f) | |", f.Reconciles, f.ReconcileErrors, f.Requeues)
	p("| reconcile time p50 / p99 | %s / %s (p99 bucket <= %s) | |", secondsF(f.ReconcileP50), secondsF(f.ReconcileP99), secondsF(f.ReconcileP99Bucket))
	p("| work-queue wait p99 | %s (bucket <= %s) | < 1 s: %s |", secondsF(f.QueueWaitP99), secondsF(f.QueueWaitP99Bucket), verdict(f.QueueWaitP99 < 1))
	p("| operator peak RSS (VmHWM) | %s (now %s) | <= 100 MiB: %s |", mib(f.PeakRSS), mib(f.RSS), verdict(f.PeakRSS <= 100<<20))
	p("| operator peak anonymous RSS (RssAnon: VmHWM less the binary's file pages) | %s | |", mib(f.PeakAnonRSS))
	p("| operator peak Go heap, alloc / in use | %s / %s | |", mib(f.PeakHeapAlloc), mib(f.PeakHeapInuse))
	p("| \"client-side throttling\" lines in the operator's log | %d | 0: %s |", f.ThrottleLogLines, verdict(f.ThrottleLogLines == 0))
	p("| 429 responses (apiserver_request_total, all clients), operator phase / plain loop | %.0f / %.0f | 0: %s |", m.Code429, m.PlainCode429, verdict(m.Code429 == 0))
	p("| CPU seconds while converging: operator / kube-apiserver / etcd / benchmark | %s | |", m.CPU)
	p("| CPU seconds during the plain loop: kube-apiserver / etcd / benchmark | %.1f / %.1f / %.1f | |", m.PlainCPU.APIServer, m.PlainCPU.Etcd, m.PlainCPU.Bench)
	p("| operator writes until converged | %.0f (%.1f per child) | |", m.Writes, m.Writes/float64(m.Children))
	p("| operator writes after convergence, until settled (%s) | %.0f | |", seconds(m.Settle), m.TrailingWrites)
	p("")
}

func (r *results) printIdle(p func(string, ...any)) {
	i, rs := r.Idle, r.Restart
	f := rs.Operator
	p("### Idle and restart (%d platforms)", r.Many.Platforms)
	p("")
	p("| measure | value | target |")
	p("|---|---|---|")
	p("| writes in %s after convergence (operator settled) | %.0f (reconciles: %.0f) | 0: %s |", seconds(i.Window), i.Writes, i.Reconciles, verdict(i.Writes == 0))
	p("| writes in %s from an operator restart (every platform reconciled once, settled after %s) | %.0f (reconciles: %.0f) | 0: %s |",
		seconds(rs.Window), seconds(rs.Settled), rs.Writes, rs.Reconciles, verdict(rs.Writes == 0))
	p("| no-change reconcile time p50 / p99 (the restart's reconciles) | %s / %s (p99 bucket <= %s) | p99 < 100 ms: %s |",
		secondsF(f.ReconcileP50), secondsF(f.ReconcileP99), secondsF(f.ReconcileP99Bucket), verdict(f.ReconcileP99 < 0.1))
	p("| work-queue wait p99 (restart) | %s (bucket <= %s) | < 1 s: %s |", secondsF(f.QueueWaitP99), secondsF(f.QueueWaitP99Bucket), verdict(f.QueueWaitP99 < 1))
	p("| restarted operator: peak RSS / anonymous / peak Go heap in use | %s / %s / %s | <= 100 MiB: %s |", mib(f.PeakRSS), mib(f.PeakAnonRSS), mib(f.PeakHeapInuse), verdict(f.PeakRSS <= 100<<20))
	p("| \"client-side throttling\" lines (restart) | %d | 0: %s |", f.ThrottleLogLines, verdict(f.ThrottleLogLines == 0))
	p("| CPU seconds, operator / kube-apiserver / etcd / benchmark: idle window | %s | |", i.CPU)
	p("| CPU seconds, the same: restart until settled | %s | |", rs.CPU)
	p("")
	p("Writes are the API server's own apiserver_request_total (verbs POST, PUT, PATCH, APPLY, DELETE),")
	p("less the benchmark's own writes (counted by its client's round tripper: namespaces, RBAC, the platforms)")
	p("and less what the API server writes by itself (%.0f while idle, %.0f during the restart): its identity lease, renewed every 10 s,", i.Internal, rs.Internal)
	p("and one networking.k8s.io IPAddress per ClusterIP it allocates; the operator writes neither (leader election is off).")
	p("")
}

func (r *results) printWrites(p func(string, ...any)) {
	p("### Writes by verb, resource and response code")
	p("")
	for _, s := range []struct {
		title string
		rows  []string
	}{
		{"many platforms, until converged", r.Many.WriteRows},
		{"many platforms, after convergence until settled", r.Many.TrailingRows},
		{"idle", r.Idle.Rows},
		{"restart", r.Restart.Rows},
	} {
		if len(s.rows) == 0 {
			p("- %s: none", s.title)
			continue
		}
		p("- %s: %s", s.title, strings.Join(s.rows, "; "))
	}
	p("")
	p("### Operator requests (rest_client_requests_total by method and code)")
	p("")
	for _, s := range []struct {
		title string
		reqs  map[string]float64
	}{{"many platforms", r.Many.Operator.Requests}, {"restart", r.Restart.Operator.Requests}} {
		var keys []string
		for k := range s.reqs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		rows := make([]string, len(keys))
		for i, k := range keys {
			rows[i] = fmt.Sprintf("%s: %.0f", k, s.reqs[k])
		}
		p("- %s: %s", s.title, strings.Join(rows, "; "))
	}
}
