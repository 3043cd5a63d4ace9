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
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/client-go/util/workqueue"
)

// The redis backer plays the container runtime for pods that run
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
type redisBacker struct {
	c      *Cluster
	bin    string
	root   string
	lister corelisters.PodLister
	queue  workqueue.TypedRateLimitingInterface[string]
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	servers map[string]*redisServer // by pod namespace/name
	backoff map[string]crashLoop    // by pod namespace/name
}

// crashLoop is a kubelet's restart back-off for a server that exited.
type crashLoop struct {
	uid      types.UID
	restarts int32
	until    time.Time
}

// redisServer is the real server behind one pod.
type redisServer struct {
	uid      types.UID
	ip, addr string
	password string // from the pod's REDISCLI_AUTH, "" when it has none
	proc     *process
	ready    bool
}

const (
	redisReadyPoll = 100 * time.Millisecond
	redisStopGrace = 5 * time.Second
)

func startRedisBacker(ctx context.Context, c *Cluster) (*redisBacker, error) {
	bin, err := findRedisServer(c.opts.RedisServer)
	if err != nil {
		return nil, err
	}
	b := &redisBacker{
		c: c, bin: bin, root: filepath.Join(c.Dir, "redis"),
		queue:   workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
		done:    make(chan struct{}),
		servers: map[string]*redisServer{},
		backoff: map[string]crashLoop{},
	}
	runCtx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	factory := informers.NewSharedInformerFactory(c.Client, 0)
	pods := factory.Core().V1().Pods()
	b.lister = pods.Lister()
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			b.queue.Add(key)
		}
	}
	if _, err := pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, obj any) { enqueue(obj) }, DeleteFunc: enqueue,
	}); err != nil {
		cancel()
		return nil, err
	}
	factory.Start(runCtx.Done())
	syncCtx, syncCancel := context.WithTimeout(ctx, startTimeout)
	defer syncCancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), pods.Informer().HasSynced) {
		cancel()
		factory.Shutdown()
		return nil, errors.New("the redis backer's pod informer did not sync")
	}
	go func() {
		defer close(b.done)
		defer factory.Shutdown()
		for b.next(runCtx) {
		}
	}()
	return b, nil
}

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

func (b *redisBacker) stop() {
	b.cancel()
	b.queue.ShutDown()
	<-b.done
	b.mu.Lock()
	defer b.mu.Unlock()
	for key, s := range b.servers {
		s.proc.stop(redisStopGrace)
		delete(b.servers, key)
	}
}

func (b *redisBacker) next(ctx context.Context) bool {
	key, quit := b.queue.Get()
	if quit {
		return false
	}
	defer b.queue.Done(key)
	requeue, err := b.sync(ctx, key)
	switch {
	case err != nil:
		b.c.logf("redis %s: %v (retrying)", key, err)
		b.queue.AddRateLimited(key)
	case requeue > 0:
		b.queue.Forget(key)
		b.queue.AddAfter(key, requeue)
	default:
		b.queue.Forget(key)
	}
	return true
}

// sync makes the server of one pod match the pod: started when it runs,
// stopped when it is gone, the pod's readiness set from the server's.
func (b *redisBacker) sync(ctx context.Context, key string) (time.Duration, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, nil
	}
	pod, err := b.lister.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		pod, err = nil, nil
	}
	if err != nil {
		return 0, err
	}
	container := redisContainer(pod)
	want := pod != nil && container != nil && pod.DeletionTimestamp == nil &&
		pod.Status.Phase == corev1.PodRunning && pod.Status.PodIP != ""

	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.servers[key]
	if s != nil && (!want || s.uid != pod.UID || s.ip != pod.Status.PodIP) {
		b.stopServer(key, s)
		s = nil
	}
	if !want {
		if pod == nil {
			delete(b.backoff, key)
		}
		return 0, nil
	}
	if s != nil {
		if done, exitErr := s.proc.exited(); done {
			return b.crashed(ctx, key, pod, s, exitErr)
		}
		if s.ready {
			return 0, nil
		}
		if !ping(ctx, s.addr, s.password) {
			return redisReadyPoll, nil
		}
		if err := b.updateStatus(ctx, pod, func(st *corev1.ContainerStatus) { st.Ready = true }); err != nil {
			return 0, err
		}
		s.ready = true
		b.c.logf("redis %s: redis-server answers on %s; pod Ready", key, s.addr)
		return 0, nil
	}
	if bo := b.backoff[key]; bo.uid == pod.UID && time.Now().Before(bo.until) {
		return time.Until(bo.until), nil
	}
	// A pod IP belongs to one pod at a time: kwok hands a deleted pod's IP
	// to the next one, maybe before its deletion reached us.
	for other, o := range b.servers {
		if o.ip == pod.Status.PodIP {
			b.stopServer(other, o)
		}
	}
	s, err = b.startServer(ctx, key, pod, container)
	if err != nil {
		return 0, err
	}
	b.servers[key] = s
	go func() { // a server that dies is noticed at once
		select {
		case <-s.proc.done:
			b.queue.Add(key)
		case <-ctx.Done():
		}
	}()
	return redisReadyPoll, nil
}

func (b *redisBacker) stopServer(key string, s *redisServer) {
	s.proc.stop(redisStopGrace)
	delete(b.servers, key)
	b.c.logf("redis %s: stopped redis-server on %s", key, s.addr)
}

// redisContainer is the pod's container whose command is redis-server.
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

func (b *redisBacker) startServer(ctx context.Context, key string, pod *corev1.Pod, c *corev1.Container) (*redisServer, error) {
	env, err := b.resolveEnv(ctx, pod, c)
	if err != nil {
		return nil, err
	}
	fs, err := b.materialize(ctx, pod, c)
	if err != nil {
		return nil, err
	}
	args := make([]string, 0, len(c.Command)+len(c.Args))
	for _, a := range append(slices.Clone(c.Command[1:]), c.Args...) {
		args = append(args, fs.hostPath(expand(a, env)))
	}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") { // redis-server <config file> [flags]
		if err := fs.rewriteConfig(args[0]); err != nil {
			return nil, err
		}
	}
	ip := pod.Status.PodIP
	if b.c.opts.RedisAnnounceIP {
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "--cluster-announce-hostname" {
				args[i+1] = ip
			}
		}
	}
	port := redisPort(c)
	args = append(args, "--bind", ip, "--cluster-announce-ip", ip, "--daemonize", "no", "--logfile", "")
	logName := fmt.Sprintf("redis-%s-%s", pod.Namespace, pod.Name)
	proc, err := startProcess(logName, filepath.Join(b.c.Dir, "logs"), b.bin, args, nil)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort(ip, strconv.Itoa(port))
	b.c.logf("redis %s: started redis-server on %s (log %s)", key, addr, proc.log)
	return &redisServer{uid: pod.UID, ip: ip, addr: addr, password: env["REDISCLI_AUTH"], proc: proc}, nil
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

// crashed handles a server that exited while its pod runs: as a kubelet
// does, the pod goes not Ready and shows CrashLoopBackOff with the exit and
// the server's log, and the server is started again after a back-off that
// doubles from 1s to 30s.
func (b *redisBacker) crashed(ctx context.Context, key string, pod *corev1.Pod, s *redisServer, exitErr error) (time.Duration, error) {
	delete(b.servers, key)
	bo := b.backoff[key]
	if bo.uid != pod.UID {
		bo = crashLoop{uid: pod.UID}
	}
	bo.restarts++
	wait := min(time.Second<<min(bo.restarts-1, 5), 30*time.Second)
	bo.until = time.Now().Add(wait)
	b.backoff[key] = bo
	b.c.logf("redis %s: redis-server exited (%v); restarting in %s; log: %s", key, exitErr, wait, s.proc.log)
	exitCode := int32(1)
	if s.proc.cmd.ProcessState != nil {
		exitCode = int32(s.proc.cmd.ProcessState.ExitCode())
	}
	err := b.updateStatus(ctx, pod, func(st *corev1.ContainerStatus) {
		st.Ready, st.Started, st.RestartCount = false, ptr(false), bo.restarts
		st.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: exitCode, Reason: "Error", Message: "log: " + s.proc.log, FinishedAt: metav1.Now(),
		}}
		st.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
			Reason: "CrashLoopBackOff", Message: fmt.Sprintf("redis-server exited (%v); log: %s", exitErr, s.proc.log),
		}}
	})
	return wait, err
}

// updateStatus changes the status of the pod's redis-server container and
// sets the pod's Ready and ContainersReady conditions from its ready flag,
// as a kubelet does after a probe or a restart.
func (b *redisBacker) updateStatus(ctx context.Context, pod *corev1.Pod, change func(*corev1.ContainerStatus)) error {
	name := redisContainer(pod).Name
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := b.c.Client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return client404(err)
		}
		if cur.UID != pod.UID {
			return nil
		}
		ready := true
		for i := range cur.Status.ContainerStatuses {
			st := &cur.Status.ContainerStatuses[i]
			if st.Name == name {
				change(st)
				if st.Ready && st.State.Running == nil {
					st.State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}
					st.Started = ptr(true)
				}
			}
			ready = ready && st.Ready
		}
		status, reason := corev1.ConditionTrue, ""
		if !ready {
			status, reason = corev1.ConditionFalse, "ContainersNotReady"
		}
		now := metav1.Now()
		for _, t := range []corev1.PodConditionType{corev1.PodReady, corev1.ContainersReady} {
			setPodCondition(&cur.Status, corev1.PodCondition{Type: t, Status: status, Reason: reason, LastTransitionTime: now})
		}
		_, err = b.c.Client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return client404(err)
	})
}

func ptr[T any](v T) *T { return &v }

// client404 ignores a pod that is gone: there is nothing left to mark.
func client404(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func setPodCondition(s *corev1.PodStatus, c corev1.PodCondition) {
	for i := range s.Conditions {
		if s.Conditions[i].Type == c.Type {
			if s.Conditions[i].Status != c.Status {
				s.Conditions[i] = c
			}
			return
		}
	}
	s.Conditions = append(s.Conditions, c)
}
