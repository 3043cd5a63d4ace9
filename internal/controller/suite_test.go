package controller

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/rediscluster"
)

// unreachableRedis sends every cache connection to a port nothing listens on.
var unreachableRedis = rediscluster.ResolverFunc(func(context.Context, string) (string, error) {
	return "127.0.0.1:1", nil
})

// The suite runs the reconciler in a real manager against a real API server
// (envtest: kube-apiserver + etcd, no kubelet, no controllers): children are
// created for real, but Deployments never get pods, so tests that need a
// ready workload write its status themselves.
var (
	testEnv   *envtest.Environment
	k8sClient client.Client
	writes    *writeCounter
	// reconciler is the suite's operator (its memo is looked at).
	reconciler *ParserPlatformReconciler
	cancel     context.CancelFunc
)

func TestController(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Controller Suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	Expect(platformv1.AddToScheme(scheme.Scheme)).To(Succeed())

	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: envtestAssets(),
	}
	// envtest's default /24 holds ~250 ClusterIPs; every spec's platform
	// takes about ten, and namespaces are not deleted (no controller
	// manager), so the suite needs a wider range.
	testEnv.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", "10.96.0.0/16")
	cfg, err := testEnv.Start()
	Expect(err).NotTo(HaveOccurred())

	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme.Scheme})
	Expect(err).NotTo(HaveOccurred())

	// The operator's own requests go through a counting transport, so tests
	// can assert how many writes a reconcile made.
	writes = &writeCounter{}
	operatorCfg := rest.CopyConfig(cfg)
	operatorCfg.Wrap(writes.wrap)
	mgr, err := ctrl.NewManager(operatorCfg, ctrl.Options{
		Scheme:  scheme.Scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache:   CacheOptions(),
	})
	Expect(err).NotTo(HaveOccurred())
	reconciler = &ParserPlatformReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("parser-operator"),
		// No Redis runs in this suite: every cache node is "reached" at a
		// closed port, so the operator meets unreachable nodes.
		CacheResolver: func(map[string]string) rediscluster.Resolver { return unreachableRedis },
		// Nor RabbitMQ: the management API is "reached" at a closed port.
		BrokerResolver: closedManagementPort,
	}
	Expect(reconciler.SetupWithManager(mgr, 2)).To(Succeed())

	var ctx context.Context
	ctx, cancel = context.WithCancel(context.Background())
	go func() {
		defer GinkgoRecover()
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
})

var _ = AfterSuite(func() {
	if cancel != nil {
		cancel()
	}
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

// envtestAssets finds the kube-apiserver and etcd binaries: KUBEBUILDER_ASSETS
// when set (make test sets it), else the project's script.
func envtestAssets() string {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir
	}
	out, err := exec.Command(filepath.Join("..", "..", "hack", "envtest-assets.sh")).Output()
	Expect(err).NotTo(HaveOccurred(), "hack/envtest-assets.sh failed")
	return strings.TrimSpace(string(out))
}

// writeCounter counts the mutating requests (POST, PUT, PATCH, DELETE) that
// pass through it, with their paths for failure messages, and apart from
// them the reads (GETs other than watches: reads past the cache).
type writeCounter struct {
	mu       sync.Mutex
	requests []string
	reads    []string
}

func (w *writeCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		switch {
		case req.Method == http.MethodGet && req.URL.Query().Get("watch") != "true":
			w.mu.Lock()
			w.reads = append(w.reads, req.Method+" "+req.URL.Path)
			w.mu.Unlock()
		case req.Method != http.MethodGet && req.Method != http.MethodHead && req.Method != http.MethodOptions:
			w.mu.Lock()
			w.requests = append(w.requests, req.Method+" "+req.URL.Path)
			w.mu.Unlock()
		}
		return rt.RoundTrip(req)
	})
}

// readCount is a mark for readsSince.
func (w *writeCounter) readCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.reads)
}

// readsSince returns the reads made after mark (a value of readCount()).
func (w *writeCounter) readsSince(mark int) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.reads[mark:]...)
}

// since returns the writes made after mark (a value of count()).
func (w *writeCounter) since(mark int) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.requests[mark:]...)
}

func (w *writeCounter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.requests)
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
