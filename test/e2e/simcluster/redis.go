package simcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
)

// The redis kind of the runtime backs the pods that run
// redis-server (the platform's cache nodes and a Redis broker): when kwok has
// made such a pod Running with its loopback IP (stages/pod-start-redis.yaml),
// the backer starts a real redis-server bound to that IP, on the files the
// pod would see: the ConfigMap and Secret volumes written out, the data
// volume a directory that belongs to the PVC (so a pod that comes back keeps
// nodes.conf, its node ID and its slots, as on a real volume), paths in the
// config file and arguments moved to them. The pod's own arguments are
// passed as they are, $(VAR) expanded from its env as a kubelet would. Two
// arguments are added: --bind <pod IP>, since every pod of the cluster shares
// the machine's loopback, and --cluster-announce-ip <pod IP>, the address a
// cluster node reports to its peers.
//
// It sets the pod Ready once the server answers PING (with the password of
// the pod's REDISCLI_AUTH, as the pod's probe does), and not Ready again if
// the server dies, which it restarts like a kubelet. When the pod goes (or
// is being deleted), the server is stopped.
//
// DNS names of the cluster (<pod>.<headless service>.<ns>.svc) do not
// resolve on the machine: a node announces the hostname its arguments give,
// which Redis never resolves itself, but a client outside the cluster that
// follows MOVED redirects by hostname cannot dial it. Options.RedisAnnounceIP
// makes the nodes announce their pod IPs instead.
type redisKind struct {
	bin, logDir string
	announceIP  bool
}

const (
	redisReadyPoll = 100 * time.Millisecond
	redisStopGrace = 5 * time.Second
)

func newRedisKind(c *Cluster) (*redisKind, error) {
	bin, err := findRedisServer(c.opts.RedisServer)
	if err != nil {
		return nil, err
	}
	return &redisKind{bin: bin, logDir: filepath.Join(c.Dir, "logs"), announceIP: c.opts.RedisAnnounceIP}, nil
}

func (*redisKind) name() string { return "redis" }

// prepare: redis-server runs on the machine's file system as the harness's
// user, its volumes' paths moved (podFS), polled every 100 ms.
func (*redisKind) prepare(_ context.Context, r *podRun) error {
	r.probeWait, r.stopGrace = redisReadyPoll, redisStopGrace
	return nil
}

// ready is the pod's probe: PING with the pod's REDISCLI_AUTH.
func (*redisKind) ready(ctx context.Context, r *podRun, _ *process) bool {
	return ping(ctx, net.JoinHostPort(r.ip, strconv.Itoa(redisPort(r.container))), r.envMap["REDISCLI_AUTH"])
}

func (*redisKind) stopped(*podRun) {}

// findRedisServer is the configured binary, or redis-server on PATH or in
// the sbin directories a non-root PATH lacks.
func findRedisServer(configured string) (string, error) {
	if configured != "" {
		return configured, nil
	}
	if path, err := exec.LookPath("redis-server"); err == nil {
		return path, nil
	}
	for _, dir := range []string{"/usr/bin", "/usr/sbin", "/usr/local/bin"} {
		if path := filepath.Join(dir, "redis-server"); isExecutable(path) {
			return path, nil
		}
	}
	return "", errors.New("redis-server not found (hack/install-test-deps.sh installs it; Options.NoRedis goes without)")
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// redisContainer is the pod's container whose command is redis-server.
func (*redisKind) container(pod *corev1.Pod) *corev1.Container { return redisContainer(pod) }

func redisContainer(pod *corev1.Pod) *corev1.Container {
	if pod == nil {
		return nil
	}
	for i, c := range pod.Spec.Containers {
		if len(c.Command) > 0 && c.Command[0] == "redis-server" {
			return &pod.Spec.Containers[i]
		}
	}
	return nil
}

func (k *redisKind) start(_ context.Context, r *podRun) (*process, error) {
	c := r.container
	fs := podFSOf(r.mounts)
	args := make([]string, 0, len(c.Command)+len(c.Args))
	for _, a := range append(slices.Clone(c.Command[1:]), c.Args...) {
		args = append(args, fs.hostPath(expand(a, r.envMap)))
	}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") { // redis-server <config file> [flags]
		if err := fs.rewriteConfig(args[0]); err != nil {
			return nil, err
		}
	}
	ip := r.ip
	if k.announceIP {
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "--cluster-announce-hostname" {
				args[i+1] = ip
			}
		}
	}
	args = append(args, "--bind", ip, "--cluster-announce-ip", ip, "--daemonize", "no", "--logfile", "")
	logName := fmt.Sprintf("redis-%s-%s", r.pod.Namespace, r.pod.Name)
	return startProcess(logName, k.logDir, k.bin, args, nil)
}

// redisPort is the container's port named redis, else 6379.
func redisPort(c *corev1.Container) int {
	for _, p := range c.Ports {
		if p.Name == "redis" {
			return int(p.ContainerPort)
		}
	}
	return 6379
}

// ping is the pod's readiness probe: PING answers PONG with the pod's
// password (its REDISCLI_AUTH, as the probe of the operator's pods uses).
// A pod that gives no password is ready when the server answers at all,
// even if only to say it wants one.
func ping(ctx context.Context, addr, password string) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	rdb := redis.NewClient(&redis.Options{Addr: addr, Password: password, DialTimeout: 500 * time.Millisecond,
		MaxRetries: -1, DisableIdentity: true})
	defer func() { _ = rdb.Close() }()
	pong, err := rdb.Ping(ctx).Result()
	if password == "" && err != nil && strings.HasPrefix(err.Error(), "NOAUTH") {
		return true
	}
	return err == nil && pong == "PONG"
}
