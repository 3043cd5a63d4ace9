// Command parser-operator runs the ParserPlatform operator (the manager), and
// answers questions about a platform: `parser-operator shard --help`,
// `parser-operator render --help`.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/controller"
	"github.com/vkparser/parser-operator/internal/metrics"
	"github.com/vkparser/parser-operator/internal/resource"
)

var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(platformv1.AddToScheme(scheme))
}

type options struct {
	metricsAddr             string
	secureMetrics           bool
	probeAddr               string
	pprofAddr               string
	leaderElect             bool
	leaderElectionNamespace string
	maxConcurrentReconciles int
	watchNamespaces         string
	qps                     float64
	burst                   int
	compression             bool
	operatorImage           string
	operatorNamespace       string
	zap                     zap.Options
}

func parseFlags() options {
	var o options
	flag.StringVar(&o.metricsAddr, "metrics-bind-address", "0", "Address of the metrics endpoint: :8443 for HTTPS, :8080 for HTTP, 0 to turn it off.")
	flag.BoolVar(&o.secureMetrics, "metrics-secure", true, "Serve metrics over HTTPS, authenticated and authorized through the API server.")
	flag.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz endpoints.")
	flag.StringVar(&o.pprofAddr, "pprof-bind-address", "", "Address of Go's /debug/pprof endpoints (heap, CPU profiles) for debugging, e.g. 127.0.0.1:6060; empty turns them off.")
	flag.BoolVar(&o.leaderElect, "leader-elect", false, "Elect a leader, so that only one of several replicas reconciles.")
	flag.StringVar(&o.leaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader election Lease (default: the pod's).")
	flag.StringVar(&o.watchNamespaces, "watch-namespaces", "", "Comma-separated namespaces whose platforms the operator reconciles (default: all); it needs RBAC in each.")
	flag.IntVar(&o.maxConcurrentReconciles, "max-concurrent-reconciles", 4, "Platforms reconciled in parallel.")
	// client-go limits each resource kind separately; a platform has ~70
	// children, 14 of them Services: 50/s would cap a burst of new platforms
	// well below what the API server takes (docs/benchmarks.md).
	flag.Float64Var(&o.qps, "kube-api-qps", 200, "Sustained requests per second to the API server, per resource kind.")
	flag.IntVar(&o.burst, "kube-api-burst", 400, "Burst of requests to the API server, per resource kind.")
	// Measured (docs/benchmarks.md): with gzip, inflating watch events was
	// a quarter of the operator's CPU under status churn, and the API
	// server spends as much compressing them; in a cluster the API server
	// is a network hop away.
	flag.BoolVar(&o.compression, "kube-api-compression", false, "Ask the API server for gzip-compressed responses and watch streams (less traffic, more CPU on both sides).")
	flag.StringVar(&o.operatorImage, "operator-image", os.Getenv("OPERATOR_IMAGE"),
		"Image of this operator, which backup and restore Jobs run to copy its binary beside pg_dump (default: $OPERATOR_IMAGE, else the image of the operator's own pod, else "+fallbackOperatorImage+").")
	flag.StringVar(&o.operatorNamespace, "operator-namespace", os.Getenv("POD_NAMESPACE"),
		"Namespace of the operator's pods, the only one from which the platforms' NetworkPolicies let the operator reach caches and brokers (default: $POD_NAMESPACE, else the pod's service account namespace, else "+resource.DefaultOperatorNamespace+").")
	o.zap = zap.Options{Development: false}
	o.zap.BindFlags(flag.CommandLine)
	flag.Parse()
	return o
}

func main() {
	// Subcommands first; without one the binary is the operator.
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "shard":
			os.Exit(runShard(os.Args[2:], os.Stdout, os.Stderr))
		case "render":
			os.Exit(runRender(os.Args[2:], os.Stdout, os.Stderr))
		case "backup":
			os.Exit(runBackup(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
		}
	}
	o := parseFlags()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&o.zap)))
	log := ctrl.Log.WithName("setup")
	// The Go heap grows to twice what is live before a collection: under a
	// container's memory limit, collect sooner instead of being killed.
	// GOMEMLIMIT becomes 90 % of the cgroup's limit (AUTOMEMLIMIT sets
	// another ratio, "off" none); a GOMEMLIMIT already set is kept.
	if _, err := memlimit.Set(memlimit.WithLogger(slog.New(logr.ToSlogHandler(log)))); err != nil {
		log.Error(err, "GOMEMLIMIT left as it was")
	}

	if err := run(o); err != nil {
		log.Error(err, "operator stopped")
		os.Exit(1)
	}
}

func run(o options) error {
	cfg := ctrl.GetConfigOrDie()
	cfg.QPS, cfg.Burst = float32(o.qps), o.burst
	cfg.DisableCompression = !o.compression

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsOptions(o),
		HealthProbeBindAddress:  o.probeAddr,
		PprofBindAddress:        o.pprofAddr,
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        "parser-operator.platform.vkparser.io",
		LeaderElectionNamespace: o.leaderElectionNamespace,
		// The new leader starts at once when the old one stops cleanly.
		LeaderElectionReleaseOnCancel: true,
		Cache:                         controller.BackupCacheOptions(controller.CacheOptions(splitNamespaces(o.watchNamespaces)...)),
	})
	if err != nil {
		return err
	}
	r := &controller.ParserPlatformReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("parser-operator"),
		// The policies let the operator reach caches and brokers from here.
		OperatorNamespace: operatorNamespace(o.operatorNamespace),
	}
	if err := r.SetupWithManager(mgr, o.maxConcurrentReconciles); err != nil {
		return err
	}
	if err := metrics.RegisterPlatforms(mgr.GetClient()); err != nil {
		return err
	}
	if err := setupBackups(mgr, operatorImage(mgr.GetAPIReader(), o.operatorImage)); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	ctrl.Log.WithName("setup").Info("starting manager")
	return mgr.Start(ctrl.SetupSignalHandler())
}

// metricsOptions serve metrics as the kubebuilder scaffold does: HTTPS with
// authentication and authorization delegated to the API server, HTTP/2 off
// (CVE-2023-44487).
func metricsOptions(o options) metricsserver.Options {
	m := metricsserver.Options{
		BindAddress:   o.metricsAddr,
		SecureServing: o.secureMetrics,
		TLSOpts:       []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }},
	}
	if o.secureMetrics {
		m.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	return m
}

// splitNamespaces parses --watch-namespaces.
func splitNamespaces(list string) []string {
	var out []string
	for _, ns := range strings.Split(list, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			out = append(out, ns)
		}
	}
	return out
}

// operatorNamespace is the flag (or $POD_NAMESPACE) when given, else the
// namespace of the pod's service account, else the default install's.
func operatorNamespace(flagValue string) string {
	if ns := strings.TrimSpace(flagValue); ns != "" {
		return ns
	}
	if ns, err := os.ReadFile(serviceAccountNamespaceFile); err == nil && strings.TrimSpace(string(ns)) != "" {
		return strings.TrimSpace(string(ns))
	}
	ctrl.Log.WithName("setup").Info("operator namespace unknown; NetworkPolicies admit the operator from the default", "namespace", resource.DefaultOperatorNamespace)
	return resource.DefaultOperatorNamespace
}

// fallbackOperatorImage is the image kustomize deploys by default; it is
// used for the Jobs only when nothing better is known.
const fallbackOperatorImage = "ghcr.io/vkparser/parser-operator:dev"

// serviceAccountNamespaceFile holds the pod's namespace in every pod that
// mounts a service account token.
const serviceAccountNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// setupBackups registers the backup, schedule and restore controllers on
// the manager.
func setupBackups(mgr ctrl.Manager, image string) error {
	recorder := mgr.GetEventRecorder("parser-operator")
	if err := (&controller.ParserPlatformBackupReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: recorder, OperatorImage: image,
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&controller.BackupScheduleReconciler{Client: mgr.GetClient(), Recorder: recorder}).SetupWithManager(mgr); err != nil {
		return err
	}
	return (&controller.RestoreReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: recorder, OperatorImage: image,
	}).SetupWithManager(mgr)
}

// operatorImage is the image the Jobs run: the flag (or $OPERATOR_IMAGE)
// when given, else the image of the operator's own pod, so that an image
// moved to a private registry by Helm values or a kustomize images entry
// is followed without a second setting; else fallbackOperatorImage.
func operatorImage(reader client.Reader, flagValue string) string {
	log := ctrl.Log.WithName("setup")
	if flagValue = strings.TrimSpace(flagValue); flagValue != "" {
		return flagValue
	}
	if image, err := ownImage(reader); err == nil && image != "" {
		return image
	} else if err != nil {
		log.Info("cannot read the operator's own pod; backup Jobs use the fallback image: set --operator-image", "error", err.Error(), "image", fallbackOperatorImage)
	}
	return fallbackOperatorImage
}

// ownImage reads the operator's own pod (its name is the hostname) and
// returns the image of its manager container.
func ownImage(reader client.Reader) (string, error) {
	ns, err := os.ReadFile(serviceAccountNamespaceFile)
	if err != nil {
		return "", err
	}
	name := os.Getenv("POD_NAME")
	if name == "" {
		if name, err = os.Hostname(); err != nil {
			return "", err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pod := &corev1.Pod{}
	if err := reader.Get(ctx, client.ObjectKey{Namespace: strings.TrimSpace(string(ns)), Name: name}, pod); err != nil {
		return "", err
	}
	for _, c := range pod.Spec.Containers {
		if c.Name == "manager" {
			return c.Image, nil
		}
	}
	if len(pod.Spec.Containers) > 0 {
		return pod.Spec.Containers[0].Image, nil
	}
	return "", nil
}
