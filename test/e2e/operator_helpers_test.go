//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// The helpers of the operator specs (operator_test.go): the real helm, the
// operator as a process beside the cluster, a scraper of its metrics
// endpoint, and clients of the backing redis-servers.

// repoRoot is the clone's top directory: the suite runs in test/e2e.
func repoRoot() string {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		panic(err)
	}
	return root
}

// helmCLI runs the real helm against the simulated cluster, as its admin,
// with a private Helm home so the machine's repositories and plugins play no
// part.
type helmCLI struct {
	bin, home string
}

// findHelm is $HELM when set, else the binary hack/tool.sh builds from the Go
// module proxy and caches (the first build on a machine takes 3-4 minutes;
// its progress goes to the spec's log).
func findHelm(ctx context.Context, home string) (*helmCLI, error) {
	if p := os.Getenv("HELM"); p != "" {
		return &helmCLI{bin: p, home: home}, nil
	}
	cmd := exec.CommandContext(ctx, filepath.Join(repoRoot(), "hack", "tool.sh"), "helm")
	cmd.Stderr = GinkgoWriter
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("hack/tool.sh helm: %w", err)
	}
	return &helmCLI{bin: strings.TrimSpace(string(out)), home: home}, nil
}

func (h *helmCLI) run(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.bin, args...)
	cmd.Dir = repoRoot()
	cmd.Env = append(os.Environ(), "KUBECONFIG="+cluster.Kubeconfig,
		"HELM_CACHE_HOME="+h.home+"/cache", "HELM_CONFIG_HOME="+h.home+"/config", "HELM_DATA_HOME="+h.home+"/data")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), err
}

// buildOperator builds ./cmd into dir, as `make build` does.
func buildOperator(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "parser-operator")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd")
	cmd.Dir = repoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd: %w\n%s", err, out)
	}
	return bin, nil
}

// operatorArgs are the args of the chart's Deployment, with what running
// outside a pod needs: the Lease's namespace and the operator's own (the
// one its platforms' NetworkPolicies admit it from; a pod reads both from its
// service account), the metrics endpoint over plain HTTP on a loopback port
// the test scrapes, and no health probe server (nothing probes a process).
func operatorArgs(deploymentArgs []string, namespace string, metricsPort int) []string {
	var args []string
	leaderElect, leaseNamespace, operatorNamespace := false, false, false
	for _, a := range deploymentArgs {
		name, _, _ := strings.Cut(a, "=")
		switch name {
		case "--metrics-bind-address", "--metrics-secure", "--health-probe-bind-address":
			continue
		case "--leader-elect":
			leaderElect = a == "--leader-elect" || a == "--leader-elect=true"
		case "--leader-election-namespace":
			leaseNamespace = true
		case "--operator-namespace":
			operatorNamespace = true
		}
		args = append(args, a)
	}
	if leaderElect && !leaseNamespace {
		args = append(args, "--leader-election-namespace="+namespace)
	}
	if !operatorNamespace {
		args = append(args, "--operator-namespace="+namespace)
	}
	return append(args,
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", metricsPort),
		"--metrics-secure=false",
		"--health-probe-bind-address=0")
}

// operatorProcess is the operator binary running beside the cluster. Like
// the harness' components it gets a parent-death signal and its own process
// group, so it never outlives the suite.
type operatorProcess struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func startOperator(bin string, args []string, kubeconfig, logPath string) (*operatorProcess, error) {
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, err
	}
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer func() { _ = logFile.Close() }()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// The last KUBECONFIG wins over the admin's in the suite's environment.
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the operator: %w", err)
	}
	p := &operatorProcess{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited is an error when the process is gone, with the end of its log.
func (p *operatorProcess) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("the operator exited (%w); last lines of %s:\n%s", p.err, p.log, p.tail(30))
	default:
		return nil
	}
}

// stop sends SIGTERM (the operator releases its Lease), waits up to 15 s,
// then kills the process group.
func (p *operatorProcess) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
}

func (p *operatorProcess) tail(n int) string {
	data, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// freePort is a TCP port on 127.0.0.1 that nothing listens on now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// sample is one series of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// scrape is the operator's own series (parser_operator_*) at one moment.
type scrape struct {
	at      time.Time
	samples []sample
}

// parseMetrics reads the series named with prefix from the Prometheus text
// exposition format (comments skipped, label values unescaped).
func parseMetrics(text, prefix string) ([]sample, error) {
	var out []sample
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		s := sample{labels: map[string]string{}}
		i := strings.IndexAny(line, "{ ")
		if i < 0 {
			return nil, fmt.Errorf("metrics line %q: no value", line)
		}
		s.name, line = line[:i], line[i:]
		if line[0] == '{' {
			line = line[1:]
			for !strings.HasPrefix(line, "}") {
				key, rest, ok := strings.Cut(line, `="`)
				if !ok {
					return nil, fmt.Errorf("metrics line of %s: bad labels at %q", s.name, line)
				}
				var value strings.Builder
				j := 0
				for ; j < len(rest) && rest[j] != '"'; j++ {
					if rest[j] == '\\' && j+1 < len(rest) {
						j++
						if rest[j] == 'n' {
							value.WriteByte('\n')
							continue
						}
					}
					value.WriteByte(rest[j])
				}
				if j == len(rest) {
					return nil, fmt.Errorf("metrics line of %s: unterminated label %s", s.name, key)
				}
				s.labels[strings.TrimPrefix(key, ",")] = value.String()
				line = strings.TrimPrefix(rest[j+1:], ",")
			}
			line = line[1:]
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			return nil, fmt.Errorf("metrics line of %s: no value", s.name)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line of %s: %w", s.name, err)
		}
		s.value = v
		out = append(out, s)
	}
	return out, nil
}

// matching are the samples of name whose labels include match.
func (s scrape) matching(name string, match map[string]string) []sample {
	var out []sample
	for _, x := range s.samples {
		if x.name != name {
			continue
		}
		ok := true
		for k, v := range match {
			ok = ok && x.labels[k] == v
		}
		if ok {
			out = append(out, x)
		}
	}
	return out
}

// value is the single sample of name matching match; ok is false when there
// is none (or more than one).
func (s scrape) value(name string, match map[string]string) (float64, bool) {
	m := s.matching(name, match)
	if len(m) != 1 {
		return 0, false
	}
	return m[0].value, true
}

// sum adds the samples of name matching match; n is how many there were.
func (s scrape) sum(name string, match map[string]string) (total float64, n int) {
	for _, x := range s.matching(name, match) {
		total += x.value
		n++
	}
	return total, n
}

// metricsRecorder scrapes the operator's metrics endpoint in the background
// and keeps every scrape that differs from the one before, so a spec can look
// at how the series moved over the run.
type metricsRecorder struct {
	url    string
	client *http.Client

	mu      sync.Mutex
	history []scrape
	scrapes int
	lastErr error
}

func newMetricsRecorder(url string) *metricsRecorder {
	return &metricsRecorder{url: url, client: &http.Client{Timeout: 5 * time.Second}}
}

func (m *metricsRecorder) scrape(ctx context.Context) (scrape, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.url, nil)
	if err != nil {
		return scrape{}, err
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return scrape{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return scrape{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return scrape{}, fmt.Errorf("GET %s: %s", m.url, resp.Status)
	}
	samples, err := parseMetrics(string(body), "parser_operator_")
	return scrape{at: time.Now(), samples: samples}, err
}

// run scrapes every interval until ctx ends.
func (m *metricsRecorder) run(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		s, err := m.scrape(ctx)
		m.mu.Lock()
		m.lastErr = err
		if err == nil {
			m.scrapes++
			if n := len(m.history); n == 0 || !reflect.DeepEqual(m.history[n-1].samples, s.samples) {
				m.history = append(m.history, s)
			}
		}
		m.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// recorded are the distinct scrapes so far, how many scrapes were made in
// all, and the error of the last one.
func (m *metricsRecorder) recorded() ([]scrape, int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]scrape(nil), m.history...), m.scrapes, m.lastErr
}

// noDNS: go-redis otherwise looks a hostname up to guess an endpoint type,
// and pod DNS names do not resolve on this machine (the operator turns it
// off for the same reason).
var noDNS = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}

// redisNode is a client of the redis-server behind the pod at ip.
func redisNode(ip, password string) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr: net.JoinHostPort(ip, "6379"), Password: password, DisableIdentity: true, Protocol: 2,
		MaxRetries: -1, DialTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second,
		MaintNotificationsConfig: noDNS,
	})
}

// clusterInfo is CLUSTER INFO of the node at ip, as key -> value.
func clusterInfo(ctx context.Context, ip, password string) (map[string]string, error) {
	rdb := redisNode(ip, password)
	defer func() { _ = rdb.Close() }()
	text, err := rdb.ClusterInfo(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("CLUSTER INFO on %s: %w", ip, err)
	}
	info := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			info[k] = v
		}
	}
	return info, nil
}

// clusterView is what CLUSTER NODES on one node says: the nodes it knows and
// the masters that hold slots (none of them failed).
type clusterView struct {
	nodes, mastersWithSlots, failed int
}

func clusterNodes(ctx context.Context, ip, password string) (clusterView, error) {
	rdb := redisNode(ip, password)
	defer func() { _ = rdb.Close() }()
	text, err := rdb.ClusterNodes(ctx).Result()
	if err != nil {
		return clusterView{}, fmt.Errorf("CLUSTER NODES on %s: %w", ip, err)
	}
	var v clusterView
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		v.nodes++
		flags := "," + f[2] + ","
		if strings.Contains(flags, ",fail,") || strings.Contains(flags, ",fail?,") {
			v.failed++
		}
		if strings.Contains(flags, ",master,") && len(f) > 8 {
			v.mastersWithSlots++
		}
	}
	return v, nil
}

// podIPs maps the names of the Running pods matching selector to their IPs.
func podIPs(ctx context.Context, ns, selector string) (map[string]string, error) {
	pods, err := clients.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, err
	}
	ips := map[string]string{}
	for _, p := range pods.Items {
		if p.Status.PodIP != "" && p.DeletionTimestamp == nil {
			ips[p.Name] = p.Status.PodIP
		}
	}
	return ips, nil
}

// cacheClusterClient is a Redis Cluster client of a platform's cache, as an
// application would use it. The nodes announce their pod DNS names, which do
// not resolve here, so it dials each name's pod IP, looked up in the API
// (the operator reaches the nodes the same way).
func cacheClusterClient(ns, selector, seed, password string) *redis.ClusterClient {
	dialer := &net.Dialer{Timeout: 2 * time.Second}
	return redis.NewClusterClient(&redis.ClusterOptions{
		Addrs: []string{seed}, Password: password, DisableIdentity: true, Protocol: 2,
		MaintNotificationsConfig: noDNS, ReadTimeout: 5 * time.Second,
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			if net.ParseIP(host) == nil {
				ips, err := podIPs(ctx, ns, selector)
				if err != nil {
					return nil, err
				}
				pod, _, _ := strings.Cut(host, ".")
				if host = ips[pod]; host == "" {
					return nil, fmt.Errorf("%s: pod %s has no IP", addr, pod)
				}
			}
			return dialer.DialContext(ctx, network, net.JoinHostPort(host, port))
		},
	})
}

// ownedChildren lists, as "Kind/name", the objects in ns that have an owner
// reference to uid, over every kind the operator creates.
func ownedChildren(ctx context.Context, ns string, uid types.UID) ([]string, error) {
	var out []string
	add := func(kind string, metas []metav1.Object) {
		for _, m := range metas {
			for _, ref := range m.GetOwnerReferences() {
				if ref.UID == uid {
					out = append(out, kind+"/"+m.GetName())
				}
			}
		}
	}
	core, apps := clients.CoreV1(), clients.AppsV1()
	opts := metav1.ListOptions{}
	lists := []struct {
		kind string
		list func() ([]metav1.Object, error)
	}{
		{"Deployment", func() ([]metav1.Object, error) { l, err := apps.Deployments(ns).List(ctx, opts); return metas(l, err) }},
		{"StatefulSet", func() ([]metav1.Object, error) { l, err := apps.StatefulSets(ns).List(ctx, opts); return metas(l, err) }},
		{"Service", func() ([]metav1.Object, error) { l, err := core.Services(ns).List(ctx, opts); return metas(l, err) }},
		{"ConfigMap", func() ([]metav1.Object, error) { l, err := core.ConfigMaps(ns).List(ctx, opts); return metas(l, err) }},
		{"Secret", func() ([]metav1.Object, error) { l, err := core.Secrets(ns).List(ctx, opts); return metas(l, err) }},
		{"ServiceAccount", func() ([]metav1.Object, error) {
			l, err := core.ServiceAccounts(ns).List(ctx, opts)
			return metas(l, err)
		}},
		{"HorizontalPodAutoscaler", func() ([]metav1.Object, error) {
			l, err := clients.AutoscalingV2().HorizontalPodAutoscalers(ns).List(ctx, opts)
			return metas(l, err)
		}},
		{"PodDisruptionBudget", func() ([]metav1.Object, error) {
			l, err := clients.PolicyV1().PodDisruptionBudgets(ns).List(ctx, opts)
			return metas(l, err)
		}},
		{"NetworkPolicy", func() ([]metav1.Object, error) {
			l, err := clients.NetworkingV1().NetworkPolicies(ns).List(ctx, opts)
			return metas(l, err)
		}},
	}
	for _, l := range lists {
		items, err := l.list()
		if err != nil {
			return nil, fmt.Errorf("listing %ss: %w", l.kind, err)
		}
		add(l.kind, items)
	}
	sort.Strings(out)
	return out, nil
}

// metas turns any typed list into its items' metadata.
func metas(list any, err error) ([]metav1.Object, error) {
	if err != nil {
		return nil, err
	}
	items := reflect.ValueOf(list).Elem().FieldByName("Items")
	if !items.IsValid() {
		return nil, errors.New("not a list")
	}
	out := make([]metav1.Object, 0, items.Len())
	for i := range items.Len() {
		obj, ok := items.Index(i).Addr().Interface().(metav1.Object)
		if !ok {
			return nil, errors.New("list items without metadata")
		}
		out = append(out, obj)
	}
	return out, nil
}

// kindsOf are the distinct kinds of "Kind/name" entries.
func kindsOf(objs []string) []string {
	seen := map[string]bool{}
	var kinds []string
	for _, o := range objs {
		k, _, _ := strings.Cut(o, "/")
		if !seen[k] {
			seen[k] = true
			kinds = append(kinds, k)
		}
	}
	sort.Strings(kinds)
	return kinds
}

// progress prints a line to the spec's log when what it is told changes, so
// a long wait shows where it is without repeating itself every poll.
type progress struct {
	start time.Time
	last  string
}

func (p *progress) report(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if msg == p.last {
		return
	}
	p.last = msg
	_, _ = fmt.Fprintf(GinkgoWriter, "  %5.1fs %s\n", time.Since(p.start).Seconds(), msg)
}
