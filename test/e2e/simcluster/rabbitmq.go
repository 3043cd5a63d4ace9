package simcluster

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// The rabbitmq kind backs the pods whose container is named "rabbitmq":
// Debian's rabbitmq-server 3.10 (Erlang 25) in the pod's sandbox, as the
// Debian rabbitmq user, on the pod's own env and files (RABBITMQ_NODENAME,
// RABBITMQ_CONFIG_FILE, the cookie, the PVC), so that the replicas of a
// StatefulSet form one cluster through their rabbitmq.conf as in a real
// cluster: node names rabbit@<pod>.<headless>.<ns>.svc resolve through the
// sandbox's /etc/hosts.
//
// Because the pods share the machine, the harness adds, as a network
// namespace would give them:
//   - conf.d/90-simcluster.conf: the AMQP, management and Prometheus
//     listeners bind the pod IP (ports as rabbitmq.conf says);
//   - the Erlang distribution binds the pod IP, on a port of its own per
//     pod (25672 for the first, then the next free ones: RabbitMQ checks
//     that its port is free on every address), found through the
//     runtime's epmd (epmd.go; ERL_EPMD_PORT, no real epmd:
//     -start_epmd false), which answers per pod IP as each pod's own epmd
//     would;
//   - the CLI tools (the probes, Cluster.Exec) bind the pod IP too.
//
// Besides that the container's file system is the image's: /etc/rabbitmq
// holds conf.d/10-defaults.conf as the official image writes it,
// /var/lib/rabbitmq (HOME) and /var/log/rabbitmq are the container's own
// unless volumes are mounted there.
type rabbitKind struct {
	logDir string
	user   owner
	epmd   *epmd

	mu   sync.Mutex
	dist map[int]string // distribution ports in use -> pod key
}

const (
	rabbitDistPortBase = 25672
	rabbitDistPorts    = 1000
	rabbitHome         = "/var/lib/rabbitmq"
)

func newRabbitKind(c *Cluster) (*rabbitKind, error) {
	if !isExecutable("/usr/lib/rabbitmq/bin/rabbitmq-server") {
		return nil, fmt.Errorf("/usr/lib/rabbitmq/bin/rabbitmq-server not found (Debian's rabbitmq-server, hack/install-test-deps.sh; Options.NoRabbitMQ goes without)")
	}
	if err := requireSandboxTools(); err != nil {
		return nil, err
	}
	u, err := systemUser("rabbitmq")
	if err != nil {
		return nil, err
	}
	e, err := startEPMD()
	if err != nil {
		return nil, err
	}
	return &rabbitKind{logDir: filepath.Join(c.Dir, "logs"), user: u, epmd: e, dist: map[int]string{}}, nil
}

func (*rabbitKind) name() string { return "rabbitmq" }

func (*rabbitKind) container(pod *corev1.Pod) *corev1.Container {
	if pod == nil {
		return nil
	}
	for i, c := range pod.Spec.Containers {
		if c.Name == "rabbitmq" {
			return &pod.Spec.Containers[i]
		}
	}
	return nil
}

func (k *rabbitKind) prepare(_ context.Context, r *podRun) error {
	r.user = k.user
	r.imgEnv = []string{
		"PATH=/usr/lib/rabbitmq/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + rabbitHome, "LANG=C.UTF-8", "LC_ALL=C.UTF-8",
	}
	r.sandbox = newSandbox(r.rt, r, "/etc/rabbitmq", rabbitHome, "/var/log/rabbitmq")
	dist, err := k.distPort(r.key)
	if err != nil {
		return err
	}
	ip := strings.ReplaceAll(r.ip, ".", ",")
	iface := "-kernel inet_dist_use_interface {" + ip + "}"
	env := processEnv(r.imgEnv, r.container.Env, r.envMap)
	if _, ok := envValue(env, "RABBITMQ_CONFIG_FILES"); !ok {
		env = withEnv(env, "RABBITMQ_CONFIG_FILES=/etc/rabbitmq/conf.d")
	}
	aflags, _ := envValue(env, "ERL_AFLAGS")
	server, _ := envValue(env, "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS")
	ctl, _ := envValue(env, "RABBITMQ_CTL_ERL_ARGS")
	r.env = withEnv(env,
		"ERL_EPMD_PORT="+strconv.Itoa(k.epmd.port),
		"ERL_AFLAGS="+strings.TrimSpace(aflags+" -start_epmd false"),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(dist),
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="+strings.TrimSpace(server+" "+iface),
		"RABBITMQ_CTL_ERL_ARGS="+strings.TrimSpace(ctl+" "+iface),
	)
	r.extra = dist
	r.argv = containerArgv(r.container, r.envMap, nil, []string{"rabbitmq-server"})
	return k.epmd.add(r.ip, dist)
}

// distPort is a distribution port free on every address of the machine.
func (k *rabbitKind) distPort(key string) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for p := rabbitDistPortBase; p < rabbitDistPortBase+rabbitDistPorts; p++ {
		if _, taken := k.dist[p]; taken || !portFree(":"+strconv.Itoa(p)) {
			continue
		}
		k.dist[p] = key
		return p, nil
	}
	return 0, fmt.Errorf("no free Erlang distribution port in %d-%d", rabbitDistPortBase, rabbitDistPortBase+rabbitDistPorts)
}

func (k *rabbitKind) release(port int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.dist, port)
}

// writeConfD writes the image's conf.d default and the harness's
// listeners into the container's /etc/rabbitmq.
func (k *rabbitKind) writeConfD(r *podRun) error {
	dir := filepath.Join(r.sandbox.dir, "layer", "/etc/rabbitmq", "conf.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ports := rabbitPorts(r)
	files := map[string]string{
		// As the official image writes it.
		"10-defaults.conf": "## DEFAULT SETTINGS ARE NOT MEANT TO BE TAKEN STRAIGHT INTO PRODUCTION\n" +
			"loopback_users.guest = false\nlog.console = true\n",
		"90-simcluster.conf": fmt.Sprintf("# simcluster: the pod's listeners on its pod IP (the machine's loopback is shared).\n"+
			"listeners.tcp.default = %s\nmanagement.tcp.ip = %s\nprometheus.tcp.ip = %s\n",
			net.JoinHostPort(r.ip, ports["listeners.tcp.default"]), r.ip, r.ip),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			return err
		}
	}
	for _, p := range []string{filepath.Dir(dir), dir} {
		if err := os.Chown(p, k.user.uid, k.user.gid); err != nil {
			return err
		}
	}
	return nil
}

// rabbitPorts reads the AMQP port from the pod's rabbitmq.conf
// (RABBITMQ_CONFIG_FILE, through its volumes), default 5672.
func rabbitPorts(r *podRun) map[string]string {
	ports := map[string]string{"listeners.tcp.default": "5672"}
	conf, ok := r.envMap["RABBITMQ_CONFIG_FILE"]
	if !ok {
		conf = "/etc/rabbitmq/rabbitmq"
	}
	if !strings.HasSuffix(conf, ".conf") {
		conf += ".conf"
	}
	f, err := os.Open(podFSOf(r.mounts).hostPath(conf))
	if err != nil {
		return ports
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), "=")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if !ok || key != "listeners.tcp.default" {
			continue
		}
		if _, port, err := net.SplitHostPort(value); err == nil {
			value = port
		}
		ports[key] = value
	}
	return ports
}

func (k *rabbitKind) start(ctx context.Context, r *podRun) (*process, error) {
	if err := k.writeConfD(r); err != nil {
		return nil, err
	}
	return startSandboxed(ctx, k, k.logDir, r)
}

// ready runs the pod's probe (rabbitmq-diagnostics, an Erlang VM of its
// own: a second or more of CPU each time) only once the node's AMQP
// listener accepts connections. Until then the probe could only fail (it
// checks that listener), and running it every second would slow the boot
// it waits for on a small machine.
func (*rabbitKind) ready(ctx context.Context, r *podRun, proc *process) bool {
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(r.ip, rabbitPorts(r)["listeners.tcp.default"]), 500*time.Millisecond)
	if err != nil {
		return false
	}
	_ = conn.Close()
	return execReady(ctx, r, proc)
}

func (k *rabbitKind) stopped(r *podRun) {
	k.epmd.remove(r.ip)
	if port, ok := r.extra.(int); ok {
		k.release(port)
	}
}

func (k *rabbitKind) close() { k.epmd.close() }
