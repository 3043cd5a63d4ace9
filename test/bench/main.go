// Command bench measures the operator against what a user would do instead,
// on one local control plane (kube-apiserver + etcd, the envtest binaries),
// and prints the table of docs/benchmarks.md:
//
//   - one platform (config/samples): time from create until every child
//     exists and status.observedGeneration matches, vs `kubectl apply
//     --server-side` of the rendered children (`parser-operator render`), vs
//     a plain client-go loop creating them with 16 requests in flight;
//   - many platforms (--platforms across --namespaces, created at once):
//     time to converge, children per second vs the plain loop, reconcile
//     latency and work-queue wait from the operator's metrics, peak RSS and
//     Go heap, client-side throttling and 429s;
//   - idle: the writes the API server counts (apiserver_request_total) in
//     --idle after convergence, and after an operator restart;
//   - churn: --churn of every HPA's and Deployment's status rewritten every
//     --churn-period, as a live cluster's controllers do: the operator's
//     reconciles, writes, requests, server dials and CPU (churn.go);
//   - trickle: one spec change every --trickle-period for --trickle, each
//     to the next platform: time from the change to the child updated, and
//     the work-queue wait (trickle.go);
//   - migration: on a simulated cluster of its own (real redis-servers),
//     three caches holding --migration-keys keys each scale out from 3 to
//     4 masters while a fourth platform's spec changes: that platform's
//     change-to-child times, and the keys counted after (migration.go).
//
// The operator runs as its own process (the binary `go build ./cmd` makes),
// as a service-account user bound to config/rbac/role.yaml. Everything the
// benchmark starts is stopped when it ends, also on Ctrl-C.
//
//	go run ./test/bench                                   # the full run (make bench)
//	go run ./test/bench --platforms=5 --namespaces=5 --idle=5s --repeat=1   # make bench-ci
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
)

var scheme = runtime.NewScheme()

func init() {
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err)
	}
	if err := platformv1.AddToScheme(scheme); err != nil {
		panic(err)
	}
}

// options are the benchmark's flags.
type options struct {
	platforms, namespaces, repeat, inflight int
	idle, timeout, churn, churnPeriod       time.Duration
	trickle, tricklePeriod                  time.Duration
	migrationKeys                           int
	operatorArgs, operatorBinary            string
	operatorMemLimit                        string
	sample, crds, rbac, serviceRange        string
	jsonOut, work                           string
	keep                                    bool
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.IntVar(&o.platforms, "platforms", 300, "platforms of the many-platforms phase")
	fs.IntVar(&o.namespaces, "namespaces", 30, "namespaces they are spread across")
	fs.IntVar(&o.repeat, "repeat", 3, "runs of the one-platform phase (medians are reported)")
	fs.IntVar(&o.inflight, "inflight", 16, "requests in flight of the plain client-go loop")
	fs.DurationVar(&o.idle, "idle", 60*time.Second, "idle window after convergence, and after the restart")
	fs.DurationVar(&o.churn, "churn", 60*time.Second, "status churn window after the idle one (0: none)")
	fs.DurationVar(&o.churnPeriod, "churn-period", 15*time.Second, "how often the churn rewrites every HPA's and Deployment's status")
	fs.DurationVar(&o.trickle, "trickle", 30*time.Second, "spec-change trickle window after the churn one (0: none)")
	fs.DurationVar(&o.tricklePeriod, "trickle-period", 500*time.Millisecond, "how often the trickle changes a platform's spec")
	fs.IntVar(&o.migrationKeys, "migration-keys", 100000, "keys in each of the 3 caches the migration phase scales out, on a simulated cluster with real redis-servers (0: no migration phase)")
	fs.DurationVar(&o.timeout, "timeout", 20*time.Minute, "give up on a convergence after this long")
	fs.StringVar(&o.operatorMemLimit, "operator-gomemlimit", "", "GOMEMLIMIT of the operator only, as the chart's container memory limit sets it (90 % of the limit), e.g. 115MiB; empty: none")
	fs.StringVar(&o.operatorArgs, "operator-args", "", "extra flags for the operator, e.g. \"--max-concurrent-reconciles=8 --kube-api-qps=200\"")
	fs.StringVar(&o.operatorBinary, "operator-binary", "", "use this operator binary instead of building ./cmd")
	fs.StringVar(&o.sample, "sample", "config/samples/platform_v1alpha1_parserplatform.yaml", "the platform manifest to benchmark")
	fs.StringVar(&o.crds, "crds", "config/crd/bases", "CRDs to install")
	fs.StringVar(&o.rbac, "rbac", "config/rbac/role.yaml", "the operator's ClusterRole")
	fs.StringVar(&o.serviceRange, "service-cluster-ip-range", "10.96.0.0/16", "ClusterIP range of the API server (envtest's /24 runs out after ~60 platforms)")
	fs.StringVar(&o.jsonOut, "json", "", "also write the results as JSON to this file")
	fs.StringVar(&o.work, "work-dir", "", "folder for kubeconfigs, logs and rendered YAML (default: a temporary one, removed at the end)")
	fs.BoolVar(&o.keep, "keep", false, "keep the work folder (operator logs) at the end")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.platforms < 1 || o.namespaces < 1 || o.repeat < 1 || o.inflight < 1 {
		return o, fmt.Errorf("--platforms, --namespaces, --repeat and --inflight must be at least 1")
	}
	o.namespaces = min(o.namespaces, o.platforms)
	return o, nil
}

func main() {
	// The benchmark's controller-runtime clients log nothing worth reading;
	// without a logger they print a warning with a stack trace instead.
	ctrllog.SetLogger(logr.Discard())
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// progress reports what the benchmark is doing, on stderr (the table goes
// to stdout).
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench %s: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// env is what every phase uses.
type env struct {
	o       options
	root    string
	work    string
	bin     string
	kubectl string
	c       *cluster
	t       *tracker
	// sampleObj is the sample manifest; sample its render.
	sampleObj *unstructured.Unstructured
	sample    *platformSpec
	children  int
	// many are the platforms of the many-platforms phase.
	many []*platformSpec
	res  *results
}

func run(ctx context.Context, o options) (err error) {
	e := &env{o: o, res: &results{
		Command: strings.TrimSpace("go run ./test/bench " + strings.Join(os.Args[1:], " ")),
		Started: time.Now(), OperatorArgs: strings.TrimSpace(strings.Join(append(o.operatorEnv(), o.operatorArgs), " ")), Inflight: o.inflight,
	}}
	if e.root, err = repoRoot(); err != nil {
		return err
	}
	if err := os.Chdir(e.root); err != nil {
		return err
	}
	if e.work, err = workDir(o); err != nil {
		return err
	}
	if !o.keep && o.work == "" {
		defer func() { _ = os.RemoveAll(e.work) }()
	} else {
		defer progress("kept %s (operator logs, kubeconfigs, rendered YAML)", e.work)
	}
	if err := e.prepare(ctx); err != nil {
		return err
	}
	progress("starting the control plane (kube-apiserver + etcd, service range %s)", o.serviceRange)
	if e.c, err = startCluster(ctx, e.work, o.crds, o.rbac, o.serviceRange); err != nil {
		return err
	}
	defer func() { progress("stopping the control plane"); e.c.stop() }()
	e.res.Machine = describeMachine(e.c)
	if err := e.onePlatform(ctx); err != nil {
		return fmt.Errorf("one platform: %w", err)
	}
	if err := e.manyPlatforms(ctx); err != nil {
		return fmt.Errorf("many platforms: %w", err)
	}
	if err := e.plainMany(ctx); err != nil {
		return fmt.Errorf("plain loop over many platforms: %w", err)
	}
	if err := e.migration(ctx); err != nil {
		return fmt.Errorf("migration: %w", err)
	}
	e.res.Finished = time.Now()
	e.res.Machine.LoadAfter = loadAverage()
	e.res.print(os.Stdout)
	if o.jsonOut != "" {
		return e.res.writeJSON(o.jsonOut)
	}
	return nil
}

// prepare finds the envtest binaries and kubectl, builds the operator and
// renders the sample once.
func (e *env) prepare(ctx context.Context) error {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		progress("KUBEBUILDER_ASSETS is not set: asking hack/envtest-assets.sh (the first time builds kube-apiserver and etcd)")
		out, err := exec.CommandContext(ctx, filepath.Join(e.root, "hack", "envtest-assets.sh")).Output()
		if err != nil {
			return fmt.Errorf("hack/envtest-assets.sh: %w", err)
		}
		if err := os.Setenv("KUBEBUILDER_ASSETS", strings.TrimSpace(string(out))); err != nil {
			return err
		}
	}
	e.kubectl = filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	if _, err := os.Stat(e.kubectl); err != nil {
		if e.kubectl, err = exec.LookPath("kubectl"); err != nil {
			return fmt.Errorf("kubectl is neither in KUBEBUILDER_ASSETS nor on PATH")
		}
	}
	e.bin = e.o.operatorBinary
	if e.bin == "" {
		e.bin = filepath.Join(e.work, "parser-operator")
		progress("go build ./cmd")
		if err := buildOperator(ctx, e.root, e.bin); err != nil {
			return err
		}
	}
	sample, err := readSample(e.o.sample)
	if err != nil {
		return err
	}
	e.res.Sample = e.o.sample
	e.sampleObj = sample
	if e.sample, err = newPlatform(ctx, e.bin, sample, sample.GetName(), "render-check"); err != nil {
		return err
	}
	e.children = len(e.sample.children)
	progress("render: the sample has %d children", e.children)
	return nil
}

func repoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("run the benchmark inside the parser-operator module")
	}
	return filepath.Dir(mod), nil
}

func workDir(o options) (string, error) {
	if o.work != "" {
		return o.work, os.MkdirAll(o.work, 0o755)
	}
	return os.MkdirTemp("", "parser-operator-bench-")
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// operatorEnv is what the operator's process gets beside the benchmark's
// own environment (the control plane's processes do not get it).
func (o *options) operatorEnv() []string {
	if o.operatorMemLimit == "" {
		return nil
	}
	return []string{"GOMEMLIMIT=" + o.operatorMemLimit}
}
