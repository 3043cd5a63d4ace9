// Package simcluster is a whole Kubernetes cluster on one machine, without a
// container runtime: etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler as they run in a real cluster, and kwok for the kubelets of a
// few fake Nodes. Deployments and StatefulSets get their pods scheduled,
// Running and Ready, PVCs of the default StorageClass bind, the garbage
// collector and Pod Security admission are the real ones. Pods have loopback
// IPs (127.N.x.y), so where a test needs the pod itself to be real, the
// harness starts the real server on the pod's IP: redis-server, PostgreSQL
// and RabbitMQ behind the pods that run them (the runtime, runtime.go).
//
// The e2e suite starts it in-process (Start); hack/simcluster.sh runs the
// same code as a command (test/e2e/cmd/simcluster) for `make demo` and for
// poking around.
package simcluster

import (
	"context"
	"crypto/tls"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"
)

// Options configure a simulated cluster; the zero value is a good default.
type Options struct {
	// Dir holds the certificates, etcd's data, logs, the kubeconfig and the
	// redis-servers' files. Empty: a new temporary directory, removed by Stop.
	Dir string
	// Nodes is the number of fake Nodes (default 3, in zones a, b, c).
	Nodes int
	// PodCIDR is kwok's pod IP range, inside 127.0.0.0/8 so that the machine
	// can bind real servers to pod IPs. Empty: the first 127.N.0.0/16,
	// N >= 1, that no other simulated cluster on the machine holds (a lock
	// file in the temp directory), so two clusters never share pod IPs.
	PodCIDR string
	// ServiceCIDR is the ClusterIP range (default 10.96.0.0/16: room for the
	// Services of many platforms).
	ServiceCIDR string
	// NoRedis turns off the real redis-servers behind redis pods.
	NoRedis bool
	// NoPostgres turns off the real PostgreSQL servers behind postgres pods
	// (container "postgres", image postgres:*): kwok makes them Ready.
	NoPostgres bool
	// NoRabbitMQ turns off the real RabbitMQ nodes behind rabbitmq pods
	// (container "rabbitmq"): kwok makes them Ready.
	NoRabbitMQ bool
	// NoJobs turns off running the operator's backup and restore Job pods
	// (jobs.go; they need PostgreSQL's client tools): kwok makes them
	// succeed at once, as every other Job pod.
	NoJobs bool
	// PostgresBinDir holds postgres, initdb, pg_ctl, psql, pg_isready
	// (default /usr/lib/postgresql/15/bin, Debian's postgresql-15).
	PostgresBinDir string
	// RedisServer is the redis-server binary (default: found on PATH or in
	// /usr/sbin, /usr/bin; Debian's package, hack/install-test-deps.sh).
	RedisServer string
	// RedisAnnounceIP makes each redis-server announce its pod IP where the
	// pod's arguments say --cluster-announce-hostname <pod DNS name>: the
	// cluster's DNS names do not resolve on the machine, so a cluster client
	// outside the cluster that follows redirects needs addresses it can dial.
	RedisAnnounceIP bool
	// Log receives one line per step (nil: discarded).
	Log io.Writer
}

// Cluster is a running simulated cluster.
type Cluster struct {
	// Dir is the working directory; Kubeconfig the admin kubeconfig in it.
	Dir, Kubeconfig string
	// PodCIDR is where pod IPs come from; ServiceCIDR the ClusterIP range.
	PodCIDR, ServiceCIDR string
	// Config and Client are the admin's (system:masters).
	Config *rest.Config
	Client kubernetes.Interface
	// StartupTime is how long Start took, binaries already built.
	StartupTime time.Duration

	opts      Options
	caCert    string
	removeDir bool
	log       io.Writer
	procs     []*process // in start order
	unlock    func()
	runtime   *runtime
	rabbit    *rabbitKind
	jobs      *jobKind
	podRoute  bool       // addPodRoute succeeded
	failed    chan error // the first unexpected exit of a component
	stopOnce  sync.Once
	stopping  chan struct{}
}

const (
	defaultServiceCIDR = "10.96.0.0/16"
	// startTimeout bounds each component's start, binaries already built.
	startTimeout = 60 * time.Second
)

// Start builds (first use) or finds the binaries and starts the cluster. It
// returns once every component works: the API server is ready, the Nodes
// are Ready, the controller manager has created the default ServiceAccount
// and the scheduler is healthy. On error everything started is stopped.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	root, err := findRepoRoot()
	if err != nil {
		return nil, err
	}
	logw := opts.Log
	if logw == nil {
		logw = io.Discard
	}
	bins, err := findBinaries(root, logw)
	if err != nil {
		return nil, err
	}
	begin := time.Now()
	c := &Cluster{opts: opts, log: logw, failed: make(chan error, 1), stopping: make(chan struct{})}
	if err := c.start(ctx, bins); err != nil {
		_ = c.Stop()
		return nil, err
	}
	c.StartupTime = time.Since(begin)
	c.logf("ready in %s; kubeconfig: %s", c.StartupTime.Round(100*time.Millisecond), c.Kubeconfig)
	return c, nil
}

func (c *Cluster) start(ctx context.Context, bins binaries) error {
	if err := c.prepare(); err != nil {
		return err
	}
	if err := c.startControlPlane(ctx, bins); err != nil {
		return err
	}
	if err := c.startNodes(ctx, bins); err != nil {
		return err
	}
	kinds, err := c.serverKinds()
	if err != nil || len(kinds) == 0 {
		return err
	}
	// Servers see their clients as a pod would (podroute.go).
	if err := addPodRoute(c.PodCIDR); err != nil {
		c.logf("connections to pod IPs come from 127.0.0.1: %v", err)
	} else {
		c.podRoute = true
	}
	c.runtime, err = startRuntime(ctx, c, kinds)
	return err
}

// serverKinds are the real servers the options ask for.
func (c *Cluster) serverKinds() ([]serverKind, error) {
	var kinds []serverKind
	var names []string
	if !c.opts.NoRedis {
		k, err := newRedisKind(c)
		if err != nil {
			return nil, err
		}
		kinds, names = append(kinds, k), append(names, "redis-server")
	}
	if !c.opts.NoPostgres {
		k, err := newPostgresKind(c)
		if err != nil {
			return nil, err
		}
		kinds, names = append(kinds, k), append(names, "postgres")
	}
	if !c.opts.NoRabbitMQ {
		k, err := newRabbitKind(c)
		if err != nil {
			return nil, err
		}
		c.rabbit = k
		kinds, names = append(kinds, k), append(names, "rabbitmq")
	}
	if !c.opts.NoJobs {
		k, err := newJobKind(c, c.postgresBinDir())
		if err != nil {
			return nil, err
		}
		c.jobs = k
		kinds, names = append(kinds, k), append(names, "the operator's Jobs")
	}
	if len(kinds) > 0 {
		c.logf("starting the runtime for real servers behind pods: %s", strings.Join(names, ", "))
	}
	return kinds, nil
}

func (c *Cluster) logf(format string, args ...any) {
	_, _ = fmt.Fprintf(c.log, "simcluster: "+format+"\n", args...)
}

// prepare creates the working directory and picks the address ranges.
func (c *Cluster) prepare() error {
	c.Dir = c.opts.Dir
	if c.Dir == "" {
		dir, err := os.MkdirTemp("", "simcluster-")
		if err != nil {
			return err
		}
		c.Dir, c.removeDir = dir, true
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return err
	}
	c.ServiceCIDR = c.opts.ServiceCIDR
	if c.ServiceCIDR == "" {
		c.ServiceCIDR = defaultServiceCIDR
	}
	c.PodCIDR = c.opts.PodCIDR
	if c.PodCIDR == "" {
		cidr, unlock, err := lockPodCIDR()
		if err != nil {
			return err
		}
		c.PodCIDR, c.unlock = cidr, unlock
	}
	c.Kubeconfig = filepath.Join(c.Dir, "kubeconfig")
	return nil
}

// Failed delivers an error when a component of the cluster exits while the
// cluster runs.
func (c *Cluster) Failed() <-chan error { return c.failed }

// watch reports p's unexpected exit on c.failed.
func (c *Cluster) watch(p *process) {
	go func() {
		select {
		case <-p.done:
		case <-c.stopping:
			return
		}
		select {
		case <-c.stopping:
		default:
			select {
			case c.failed <- p.failure():
			default:
			}
		}
	}()
}

// KeepDir keeps the working directory (logs, etcd data) when Stop runs, for
// a failed test to leave its evidence.
func (c *Cluster) KeepDir() { c.removeDir = false }

// Stop stops every process the cluster started, newest first, waits until
// they are gone and removes the working directory when Start made it.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		close(c.stopping)
		if c.runtime != nil {
			c.runtime.stop()
		}
		if c.rabbit != nil {
			c.rabbit.close()
		}
		if c.podRoute {
			if err := removePodRoute(c.PodCIDR); err != nil {
				c.logf("%v", err)
			}
		}
		for i := len(c.procs) - 1; i >= 0; i-- {
			c.procs[i].stop(10 * time.Second)
		}
		if c.unlock != nil {
			c.unlock()
		}
		if c.removeDir {
			_ = os.RemoveAll(c.Dir)
		}
	})
	return nil
}

func (c *Cluster) run(name, bin string, args []string, env ...string) (*process, error) {
	p, err := startProcess(name, filepath.Join(c.Dir, "logs"), bin, args, env)
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, p)
	c.watch(p)
	return p, nil
}

// startControlPlane runs etcd and kube-apiserver, writes the kubeconfig, then
// starts kube-controller-manager and kube-scheduler.
func (c *Cluster) startControlPlane(ctx context.Context, bins binaries) error {
	ports, err := freePorts(4)
	if err != nil {
		return err
	}
	etcdClient, etcdPeer, apiPort, schedPort := ports[0], ports[1], ports[2], ports[3]
	_, serviceNet, err := net.ParseCIDR(c.ServiceCIDR)
	if err != nil {
		return fmt.Errorf("service CIDR %q: %w", c.ServiceCIDR, err)
	}
	firstServiceIP := append(net.IP(nil), serviceNet.IP.To4()...)
	firstServiceIP[3]++
	certs, err := newPKI(filepath.Join(c.Dir, "pki"), firstServiceIP)
	if err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	c.caCert = certs.CACert

	c.logf("starting etcd")
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdClient)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPeer)
	etcd, err := c.run("etcd", bins["etcd"], []string{
		"--name=simcluster", "--data-dir=" + filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls=" + etcdURL, "--advertise-client-urls=" + etcdURL,
		"--listen-peer-urls=" + peerURL, "--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=simcluster=" + peerURL,
		// A test cluster's data is thrown away: skip fsync, the slowest part
		// of every write.
		"--unsafe-no-fsync=true", "--log-level=warn",
	})
	if err != nil {
		return err
	}
	if err := waitHTTP(ctx, etcd, etcdURL+"/health", nil); err != nil {
		return err
	}

	c.logf("starting kube-apiserver")
	apiURL := fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	api, err := c.run("kube-apiserver", bins["kube-apiserver"], []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		// A loopback address cannot be the kubernetes Service's endpoint;
		// nothing in the simulated cluster dials it from a pod anyway.
		"--endpoint-reconciler-type=none",
		fmt.Sprintf("--secure-port=%d", apiPort),
		"--tls-cert-file=" + certs.ServingCert, "--tls-private-key-file=" + certs.ServingKey,
		"--client-ca-file=" + certs.CACert,
		"--service-cluster-ip-range=" + c.ServiceCIDR,
		// ServiceAccount tokens (TokenRequest, projected volumes, `kubectl
		// create token`) are signed and verified like a real cluster's.
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-signing-key-file=" + certs.SAKey,
		"--service-account-key-file=" + certs.SAPub,
		"--authorization-mode=Node,RBAC",
		// The defaults already include these; listed because tests rely on
		// them: Pod Security Standards per namespace label, ServiceAccount
		// defaulting, the default StorageClass on PVCs.
		"--enable-admission-plugins=NamespaceLifecycle,ServiceAccount,PodSecurity,DefaultStorageClass," +
			"LimitRanger,ResourceQuota,StorageObjectInUseProtection,MutatingAdmissionWebhook,ValidatingAdmissionWebhook",
		"--allow-privileged=true",
		"--profiling=false",
	})
	if err != nil {
		return err
	}
	if err := c.writeKubeconfig(apiURL, certs); err != nil {
		return err
	}
	restConfig, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return err
	}
	restConfig.QPS, restConfig.Burst = 100, 200
	c.Config = restConfig
	if c.Client, err = kubernetes.NewForConfig(restConfig); err != nil {
		return err
	}
	tlsConfig, err := rest.TLSConfigFor(restConfig)
	if err != nil {
		return err
	}
	if err := waitHTTP(ctx, api, apiURL+"/readyz", tlsConfig); err != nil {
		return err
	}

	c.logf("starting kube-controller-manager and kube-scheduler")
	if _, err := c.run("kube-controller-manager", bins["kube-controller-manager"], []string{
		"--kubeconfig=" + c.Kubeconfig,
		// serviceaccount-token: legacy token Secrets, not needed with
		// TokenRequest; nodeipam: no pod CIDRs per node, kwok assigns IPs.
		"--controllers=*,-serviceaccount-token,-nodeipam",
		"--leader-elect=false", "--secure-port=0",
		"--use-service-account-credentials=false",
		"--root-ca-file=" + certs.CACert,
		"--cluster-signing-cert-file=" + certs.CACert, "--cluster-signing-key-file=" + certs.CAKey,
		"--service-cluster-ip-range=" + c.ServiceCIDR,
		"--kube-api-qps=100", "--kube-api-burst=200",
	}); err != nil {
		return err
	}
	sched, err := c.run("kube-scheduler", bins["kube-scheduler"], []string{
		"--kubeconfig=" + c.Kubeconfig,
		"--authentication-kubeconfig=" + c.Kubeconfig, "--authorization-kubeconfig=" + c.Kubeconfig,
		"--leader-elect=false",
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", schedPort),
	})
	if err != nil {
		return err
	}
	insecure := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the scheduler's self-signed health endpoint
	return waitHTTP(ctx, sched, fmt.Sprintf("https://127.0.0.1:%d/healthz", schedPort), insecure)
}

func (c *Cluster) writeKubeconfig(server string, certs *pki) error {
	ca, err := os.ReadFile(certs.CACert)
	if err != nil {
		return err
	}
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: simcluster
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: admin
  user:
    client-certificate: %s
    client-key: %s
contexts:
- name: simcluster
  context: {cluster: simcluster, user: admin, namespace: default}
current-context: simcluster
`, server, base64Std(ca), certs.AdminCert, certs.AdminKey)
	return os.WriteFile(c.Kubeconfig, []byte(cfg), 0o600)
}

//go:embed stages/node-initialize.yaml
var stageNodeInitialize string

//go:embed stages/node-heartbeat-with-lease.yaml
var stageNodeHeartbeat string

//go:embed stages/pod-ready.yaml
var stagePodReady string

//go:embed stages/pod-start-redis.yaml
var stagePodStartRedis string

//go:embed stages/pod-start-runtime.yaml
var stagePodStartRuntime string

//go:embed stages/pod-complete.yaml
var stagePodComplete string

//go:embed stages/pod-delete.yaml
var stagePodDelete string

//go:embed stages/pvc-provision.yaml
var stagePVCProvision string

//go:embed stages/pv-bind.yaml
var stagePVBind string

//go:embed stages/pvc-delete.yaml
var stagePVCDelete string

//go:embed stages/pv-delete.yaml
var stagePVDelete string

//go:embed stages/storage-class.yaml
var storageClassYAML string

// startNodes runs kwok with the stages, creates the default StorageClass and
// the fake Nodes, and waits until the Nodes are Ready and the controller
// manager has given the default namespace its ServiceAccount.
func (c *Cluster) startNodes(ctx context.Context, bins binaries) error {
	stages := c.backedStages(strings.Join([]string{
		stageNodeInitialize, stageNodeHeartbeat,
		stagePodReady, stagePodStartRedis, stagePodStartRuntime, stagePodComplete, stagePodDelete,
		stagePVCProvision, stagePVBind, stagePVCDelete, stagePVDelete,
	}, "\n---\n"))
	kwokHome := filepath.Join(c.Dir, "kwok")
	if err := os.MkdirAll(kwokHome, 0o755); err != nil {
		return err
	}
	stagesPath := filepath.Join(kwokHome, "stages.yaml")
	if err := os.WriteFile(stagesPath, []byte(stages), 0o644); err != nil {
		return err
	}
	c.logf("starting kwok (pod IPs from %s)", c.PodCIDR)
	if _, err := c.run("kwok", bins["kwok"], []string{
		"--kubeconfig=" + c.Kubeconfig, "--config=" + stagesPath,
		"--manage-all-nodes=true", "--cidr=" + c.PodCIDR,
		"--node-ip=127.0.0.1", "--node-lease-duration-seconds=40",
	},
		// kwok also reads ~/.kwok/kwok.yaml; a user's file must not change
		// this cluster.
		"HOME="+kwokHome); err != nil {
		return err
	}

	var sc storagev1.StorageClass
	if err := yaml.Unmarshal([]byte(storageClassYAML), &sc); err != nil {
		return err
	}
	if _, err := c.Client.StorageV1().StorageClasses().Create(ctx, &sc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating StorageClass %s: %w", sc.Name, err)
	}
	nodes := c.opts.Nodes
	if nodes <= 0 {
		nodes = 3
	}
	for i := range nodes {
		if _, err := c.Client.CoreV1().Nodes().Create(ctx, fakeNode(i), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating node %d: %w", i, err)
		}
	}
	c.logf("waiting for %d Ready nodes and the controller manager", nodes)
	return c.poll(ctx, "Ready nodes and the default ServiceAccount", func(ctx context.Context) (bool, error) {
		list, err := c.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil //nolint:nilerr // the API server may still be starting: poll again.
		}
		ready := 0
		for _, n := range list.Items {
			if nodeReady(&n) {
				ready++
			}
		}
		if ready < nodes {
			return false, nil
		}
		_, err = c.Client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
}

// backedStages fills in the stages' lists of pods that real servers back
// (lines marked simcluster:redis and simcluster:runtime) with the servers
// this cluster runs: the others are kwok's, Ready at once. "-" is no
// container's name or command.
func (c *Cluster) backedStages(stages string) string {
	redis, runtime := "['-']", []string{}
	if !c.opts.NoRedis {
		redis = "['redis-server']"
	}
	if !c.opts.NoPostgres {
		runtime = append(runtime, "'postgres'")
	}
	if !c.opts.NoRabbitMQ {
		runtime = append(runtime, "'rabbitmq'")
	}
	if !c.opts.NoJobs {
		for _, name := range JobContainers {
			runtime = append(runtime, "'"+name+"'")
		}
	}
	if len(runtime) == 0 {
		runtime = append(runtime, "'-'")
	}
	stages = strings.ReplaceAll(stages, "['redis-server'] # simcluster:redis", redis)
	return strings.ReplaceAll(stages, "['postgres', 'rabbitmq'] # simcluster:runtime", "["+strings.Join(runtime, ", ")+"]")
}

// fakeNode is a Node that kwok plays the kubelet of. Zones let pods spread
// as they would over a real cluster's failure domains.
func fakeNode(i int) *corev1.Node {
	name := fmt.Sprintf("kwok-node-%d", i)
	zone := "zone-" + string(rune('a'+i%3))
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: name,
			Labels: map[string]string{
				"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
				"topology.kubernetes.io/zone": zone, "type": "kwok",
			},
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
		},
	}
}

func nodeReady(n *corev1.Node) bool {
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// poll calls check every 100ms until it is true, a component dies or
// startTimeout passes.
func (c *Cluster) poll(ctx context.Context, what string, check func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := check(ctx)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case err := <-c.failed:
			return err
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (logs in %s)", what, ctx.Err(), filepath.Join(c.Dir, "logs"))
		case <-tick.C:
		}
	}
}

// waitHTTP polls url until it answers 200, p exits or startTimeout passes.
func waitHTTP(ctx context.Context, p *process, url string, tlsConfig *tls.Config) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConfig}}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return p.failure()
		case <-ctx.Done():
			return fmt.Errorf("%s not healthy at %s: %w; last lines of %s:\n%s", p.name, url, ctx.Err(), p.log, tail(p.log, 20))
		case <-tick.C:
		}
	}
}

// freePorts asks the kernel for n free TCP ports on 127.0.0.1.
func freePorts(n int) ([]int, error) {
	var ports []int
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

var errNoFreeCIDR = errors.New("no free 127.N.0.0/16 pod range: more than 250 simulated clusters?")
