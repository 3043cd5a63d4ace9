package simcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

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

// The runtime plays the kubelet and container runtime for the pods whose
// servers the harness runs for real (redis-server, PostgreSQL, RabbitMQ):
// when kwok has made such a pod Running with its loopback IP (the stages
// pod-start-redis.yaml and pod-start-runtime.yaml leave it not Ready), it
// sets up the pod's volumes (fsGroup applied), runs its init containers in
// order, then the main container, probes it and sets the pod Ready from
// the probe, restarts it with back-off when it exits (CrashLoopBackOff in
// the container status) and stops it when the pod goes. Other containers of
// the pod (exporter sidecars) run nothing here and show running and ready,
// as kwok shows every container of the pods it plays. What differs per
// server is a serverKind: which container it backs and how it starts.
type runtime struct {
	c        *Cluster
	root     string // <cluster dir>/runtime: pods/, pvcs/
	logDir   string
	kinds    []serverKind
	lister   corelisters.PodLister
	services corelisters.ServiceLister
	queue    workqueue.TypedRateLimitingInterface[string]
	cancel   context.CancelFunc
	done     chan struct{}

	mu   sync.Mutex
	pods map[string]*podRun // by pod namespace/name
	// stopping are the containers of gone pods still stopping (a server
	// given its grace period): a pod of the same name (its PVC) or IP
	// waits for them, nothing else does.
	stopping map[*podRun]struct{}
	stopWG   sync.WaitGroup
}

// serverKind is one kind of real server behind pods.
type serverKind interface {
	// name is the kind's name in logs and log files ("postgres").
	name() string
	// container is the pod's container this kind runs, nil if none.
	container(pod *corev1.Pod) *corev1.Container
	// prepare fills in what the main container needs before it starts
	// (its argv, extra env, image directories); init containers run after
	// it, on the same sandbox layout.
	prepare(ctx context.Context, r *podRun) error
	// start starts the main container.
	start(ctx context.Context, r *podRun) (*process, error)
	// ready is one readiness probe of a running container.
	ready(ctx context.Context, r *podRun, proc *process) bool
	// stopped releases what the kind holds for the pod (an epmd entry).
	stopped(r *podRun)
}

// podRun is one pod the runtime runs: its volumes live as long as the pod
// (its UID), the container's process as long as the server runs.
type podRun struct {
	rt        *runtime
	key       string
	uid       types.UID
	ip        string
	pod       *corev1.Pod
	container *corev1.Container
	kind      serverKind
	dir       string
	env       []string          // the main container's process environment
	envMap    map[string]string // the pod's env of the main container, expanded
	argv      []string          // set by prepare
	user      owner             // the server's user on the machine
	volumes   *volumeSet
	mounts    []bindMount // the main container's volumes: mount path -> machine
	sandbox   *sandbox    // nil for a server that runs unsandboxed (redis)
	stopSig   syscall.Signal
	stopGrace time.Duration
	probeWait time.Duration // between probes until the first success
	extra     any           // per kind

	initDone bool
	finished bool // the pod ended (restartPolicy Never): nothing runs again
	held     bool // stopped by Cluster.StopServer until StartServer
	proc     *process
	ready    bool        // what the pod's status says
	probeOK  atomic.Bool // what the last probe said
	stopProb context.CancelFunc

	restarts     int32
	initRestarts int32
	imgEnv       []string  // the image's ENV, as "K=V"
	until        time.Time // back-off
}

const (
	runtimeStopGrace = 20 * time.Second
	initTimeout      = 2 * time.Minute
	hostsKey         = "\x00hosts" // a queue key: refresh every pod's /etc/hosts
)

func startRuntime(ctx context.Context, c *Cluster, kinds []serverKind) (*runtime, error) {
	rt := &runtime{
		c: c, root: filepath.Join(c.Dir, "runtime"), logDir: filepath.Join(c.Dir, "logs"), kinds: kinds,
		queue: workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
		done:  make(chan struct{}),
		pods:  map[string]*podRun{}, stopping: map[*podRun]struct{}{},
	}
	runCtx, cancel := context.WithCancel(context.Background())
	rt.cancel = cancel
	factory := informers.NewSharedInformerFactory(c.Client, 0)
	pods, services := factory.Core().V1().Pods(), factory.Core().V1().Services()
	rt.lister, rt.services = pods.Lister(), services.Lister()
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			rt.queue.Add(key)
		}
		rt.queue.Add(hostsKey)
	}
	hosts := func(any) { rt.queue.Add(hostsKey) }
	for _, reg := range []struct {
		inf cache.SharedIndexInformer
		h   cache.ResourceEventHandlerFuncs
	}{
		{pods.Informer(), cache.ResourceEventHandlerFuncs{AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) }, DeleteFunc: enqueue}},
		{services.Informer(), cache.ResourceEventHandlerFuncs{AddFunc: hosts, UpdateFunc: func(_, o any) { hosts(o) }, DeleteFunc: hosts}},
	} {
		if _, err := reg.inf.AddEventHandler(reg.h); err != nil {
			cancel()
			return nil, err
		}
	}
	factory.Start(runCtx.Done())
	syncCtx, syncCancel := context.WithTimeout(ctx, startTimeout)
	defer syncCancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), pods.Informer().HasSynced, services.Informer().HasSynced) {
		cancel()
		factory.Shutdown()
		return nil, errors.New("the runtime's informers did not sync")
	}
	go func() {
		defer close(rt.done)
		defer factory.Shutdown()
		for rt.next(runCtx) {
		}
	}()
	return rt, nil
}

func (rt *runtime) stop() {
	rt.cancel()
	rt.queue.ShutDown()
	<-rt.done
	rt.mu.Lock()
	for key, r := range rt.pods {
		rt.teardown(key, r)
	}
	rt.mu.Unlock()
	rt.stopWG.Wait()
}

func (rt *runtime) next(ctx context.Context) bool {
	key, quit := rt.queue.Get()
	if quit {
		return false
	}
	defer rt.queue.Done(key)
	if key == hostsKey {
		rt.refreshHosts()
		rt.queue.Forget(key)
		return true
	}
	requeue, err := rt.sync(ctx, key)
	switch {
	case err != nil:
		rt.c.logf("runtime %s: %v (retrying)", key, err)
		rt.queue.AddRateLimited(key)
	case requeue > 0:
		rt.queue.Forget(key)
		rt.queue.AddAfter(key, requeue)
	default:
		rt.queue.Forget(key)
	}
	return true
}

// match is the kind that runs the pod (the one with a container for it).
func (rt *runtime) match(pod *corev1.Pod) serverKind {
	if pod == nil {
		return nil
	}
	for _, k := range rt.kinds {
		if k.container(pod) != nil {
			return k
		}
	}
	return nil
}

// sync makes the server of one pod match the pod: started when it runs,
// stopped when it is gone, the pod's status set from the server's.
func (rt *runtime) sync(ctx context.Context, key string) (time.Duration, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, nil
	}
	pod, err := rt.lister.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		pod, err = nil, nil
	}
	if err != nil {
		return 0, err
	}
	kind := rt.match(pod)
	want := kind != nil && pod.DeletionTimestamp == nil && pod.Status.Phase == corev1.PodRunning && pod.Status.PodIP != ""

	rt.mu.Lock()
	defer rt.mu.Unlock()
	r := rt.pods[key]
	if r != nil && (!want || r.uid != pod.UID || r.ip != pod.Status.PodIP) {
		rt.teardown(key, r)
		r = nil
	}
	if !want {
		return 0, nil
	}
	if r == nil {
		// A pod IP belongs to one pod at a time: kwok hands a deleted pod's
		// IP to the next one, maybe before its deletion reached us.
		for other, o := range rt.pods {
			if o.ip == pod.Status.PodIP {
				rt.teardown(other, o)
			}
		}
		// The server of the pod before (its PVC) or of the IP's last pod
		// must be gone first; teardown queues the key again then.
		for o := range rt.stopping {
			if o.key == key || o.ip == pod.Status.PodIP {
				return 200 * time.Millisecond, nil
			}
		}
		if r, err = rt.newPodRun(ctx, key, pod, kind); err != nil {
			return 0, err
		}
		rt.pods[key] = r
	}
	if r.finished || r.held {
		return 0, nil
	}
	if r.proc != nil {
		return rt.syncRunning(ctx, r)
	}
	if time.Now().Before(r.until) {
		return time.Until(r.until), nil
	}
	if !r.initDone {
		if wait, err := rt.runInitContainers(ctx, r); wait > 0 || err != nil {
			return wait, err
		}
	}
	return rt.startContainer(ctx, r)
}

// newPodRun sets up a pod: its directory, its volumes (fsGroup applied: a
// pod start), the main container's environment, and what its kind adds.
func (rt *runtime) newPodRun(ctx context.Context, key string, pod *corev1.Pod, kind serverKind) (*podRun, error) {
	r := &podRun{
		rt: rt, key: key, uid: pod.UID, ip: pod.Status.PodIP, pod: pod.DeepCopy(), kind: kind,
		dir:     filepath.Join(rt.root, "pods", pod.Namespace, pod.Name+"-"+string(pod.UID)),
		user:    owner{uid: os.Getuid(), gid: os.Getgid()},
		stopSig: syscall.SIGTERM, stopGrace: podGrace(pod), probeWait: time.Second,
	}
	r.container = kind.container(r.pod)
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return nil, err
	}
	env, err := rt.resolveEnv(ctx, r.pod, r.container)
	if err != nil {
		return nil, err
	}
	r.envMap = env
	if err := kind.prepare(ctx, r); err != nil {
		return nil, err
	}
	if err := rt.setupVolumes(ctx, r); err != nil {
		kind.stopped(r)
		return nil, err
	}
	return r, nil
}

// setupVolumes makes the pod's volumes and the main container's mounts.
func (rt *runtime) setupVolumes(ctx context.Context, r *podRun) error {
	var err error
	if r.volumes, err = rt.podVolumes(ctx, r.pod, r.dir, &r.user); err != nil {
		return err
	}
	if r.mounts, err = mountsOf(r.container, r.volumes); err != nil {
		return err
	}
	if r.sandbox == nil {
		return nil
	}
	r.sandbox.mounts = r.mounts
	return rt.writeSandboxFiles(r)
}

// podGrace is the pod's termination grace period, bounded: a test cluster
// does not wait two minutes for a broker.
func podGrace(pod *corev1.Pod) time.Duration {
	if s := pod.Spec.TerminationGracePeriodSeconds; s != nil && time.Duration(*s)*time.Second < runtimeStopGrace {
		return time.Duration(*s) * time.Second
	}
	return runtimeStopGrace
}

// teardown forgets the pod and stops its container in the background
// (rt.mu held): a server given its grace period holds up no other pod,
// only the next pod of its name or IP (sync waits for it).
func (rt *runtime) teardown(key string, r *podRun) {
	delete(rt.pods, key)
	if rt.stopping == nil {
		rt.stopping = map[*podRun]struct{}{}
	}
	rt.stopping[r] = struct{}{}
	rt.stopWG.Add(1)
	go func() {
		defer rt.stopWG.Done()
		rt.stopContainer(r)
		rt.mu.Lock()
		r.kind.stopped(r)
		delete(rt.stopping, r)
		rt.mu.Unlock()
		rt.queue.Add(key)
	}()
}

func (rt *runtime) stopContainer(r *podRun) {
	if r.stopProb != nil {
		r.stopProb()
	}
	if r.proc != nil {
		r.proc.stopWith(r.stopSig, r.stopGrace)
		rt.c.logf("runtime %s: stopped %s", r.key, r.kind.name())
		r.proc = nil
	}
}

// runInitContainers runs the pod's init containers in order, each to its
// end, as the kubelet does before the main container; a failure is shown
// in the init container's status (the pod reads Init:Error, then
// Init:CrashLoopBackOff) and retried after a back-off.
func (rt *runtime) runInitContainers(ctx context.Context, r *podRun) (time.Duration, error) {
	for i := range r.pod.Spec.InitContainers {
		ic := &r.pod.Spec.InitContainers[i]
		if r.sandbox == nil {
			return 0, fmt.Errorf("init container %s: the %s kind runs no init containers", ic.Name, r.kind.name())
		}
		out, code, err := rt.runInit(ctx, r, ic)
		if err != nil {
			return 0, err
		}
		if code == 0 {
			continue
		}
		if r.pod.Spec.RestartPolicy == corev1.RestartPolicyNever {
			rt.c.logf("runtime %s: init container %s exited %d; the pod failed: %s", r.key, ic.Name, code, out)
			r.finished = true
			return 0, rt.failInit(ctx, r, ic.Name, code, out)
		}
		r.initRestarts++
		wait := backoff(r.initRestarts)
		r.until = time.Now().Add(wait)
		rt.c.logf("runtime %s: init container %s exited %d; retrying in %s: %s", r.key, ic.Name, code, wait, out)
		return wait, rt.updateInitStatus(ctx, r, ic.Name, code, out)
	}
	r.initDone = true
	return 0, nil
}

// runInit runs one init container in the sandbox layout of the pod, with
// its own command, env and mounts; its output goes to its log.
func (rt *runtime) runInit(ctx context.Context, r *podRun, ic *corev1.Container) (string, int, error) {
	env, err := rt.resolveEnv(ctx, r.pod, ic)
	if err != nil {
		return "", 0, err
	}
	argv := make([]string, 0, len(ic.Command)+len(ic.Args))
	for _, a := range append(append([]string{}, ic.Command...), ic.Args...) {
		argv = append(argv, expand(a, env))
	}
	if len(argv) == 0 {
		return "", 0, fmt.Errorf("init container %s has no command (the image's entrypoint is not known here)", ic.Name)
	}
	mounts, err := mountsOf(ic, r.volumes)
	if err != nil {
		return "", 0, err
	}
	sb := *r.sandbox
	sb.mounts = mounts
	sb.workDir = ic.WorkingDir
	cmd, err := sb.command(argv, processEnv(r.imageEnv(), ic.Env, env))
	if err != nil {
		return "", 0, err
	}
	proc, err := startCmd(fmt.Sprintf("%s-%s-%s-%s", r.kind.name(), r.pod.Namespace, r.pod.Name, ic.Name), rt.logDir, cmd)
	if err != nil {
		return "", 0, err
	}
	select {
	case <-proc.done:
	case <-time.After(initTimeout):
		proc.stop(time.Second)
	}
	code := proc.cmd.ProcessState.ExitCode()
	return tail(proc.log, 5), code, nil
}

// startContainer starts the main container and its prober.
func (rt *runtime) startContainer(ctx context.Context, r *podRun) (time.Duration, error) {
	proc, err := r.kind.start(ctx, r)
	if err != nil {
		return 0, err
	}
	r.proc = proc
	r.probeOK.Store(false)
	rt.c.logf("runtime %s: started %s on %s (log %s)", r.key, r.kind.name(), r.ip, proc.log)
	probeCtx, cancel := context.WithCancel(ctx)
	r.stopProb = cancel
	go rt.probe(probeCtx, r, proc)
	go func() { // a server that dies is noticed at once
		select {
		case <-proc.done:
			rt.queue.Add(r.key)
		case <-probeCtx.Done():
		}
	}()
	return 0, nil
}

// probe runs the kind's readiness probe while the container runs: every
// probeWait until it first succeeds, then every periodSeconds of the
// pod's probe (default 10 s), and tells sync when the answer changes.
func (rt *runtime) probe(ctx context.Context, r *podRun, proc *process) {
	period := 10 * time.Second
	if p := r.container.ReadinessProbe; p != nil && p.PeriodSeconds > 0 {
		period = time.Duration(p.PeriodSeconds) * time.Second
	}
	for {
		if done, _ := proc.exited(); done {
			return
		}
		ok := r.kind.ready(ctx, r, proc)
		if ctx.Err() != nil {
			return
		}
		if r.probeOK.Swap(ok) != ok {
			rt.queue.Add(r.key)
		}
		wait := r.probeWait
		if ok {
			wait = period
		}
		select {
		case <-ctx.Done():
			return
		case <-proc.done:
			return
		case <-time.After(wait):
		}
	}
}

// syncRunning handles a running container: an exit, or a probe result
// that changed.
func (rt *runtime) syncRunning(ctx context.Context, r *podRun) (time.Duration, error) {
	if done, exitErr := r.proc.exited(); done {
		return rt.crashed(ctx, r, exitErr)
	}
	ok := r.probeOK.Load()
	if ok == r.ready {
		return 0, nil
	}
	if err := rt.updateStatus(ctx, r, func(st *corev1.ContainerStatus) { st.Ready = ok }); err != nil {
		return 0, err
	}
	r.ready = ok
	if ok {
		rt.c.logf("runtime %s: %s ready on %s; pod Ready", r.key, r.kind.name(), r.ip)
	} else {
		rt.c.logf("runtime %s: %s readiness probe fails; pod not Ready", r.key, r.kind.name())
	}
	return 0, nil
}

// backoff is the kubelet's restart back-off: 1 s doubling to 30 s here
// (the kubelet's goes from 10 s to 5 min).
func backoff(restarts int32) time.Duration {
	return min(time.Second<<min(restarts-1, 5), 30*time.Second)
}

// crashed handles a server that exited while its pod runs: as a kubelet
// does, the pod goes not Ready and shows CrashLoopBackOff with the exit and
// the server's log, and the server is started again after a back-off.
func (rt *runtime) crashed(ctx context.Context, r *podRun, exitErr error) (time.Duration, error) {
	proc := r.proc
	rt.stopContainer(r) // the prober, and anything left of the sandbox
	if code := proc.cmd.ProcessState.ExitCode(); endsPod(r.pod, code) {
		r.finished, r.ready = true, false
		rt.c.logf("runtime %s: %s exited %d; the pod ends (restartPolicy %s); log: %s", r.key, r.kind.name(), code, r.pod.Spec.RestartPolicy, proc.log)
		return 0, rt.ended(ctx, r, proc, code)
	}
	r.restarts++
	wait := backoff(r.restarts)
	r.until = time.Now().Add(wait)
	r.ready = false
	rt.c.logf("runtime %s: %s exited (%v); restarting in %s; log: %s", r.key, r.kind.name(), exitErr, wait, proc.log)
	exitCode := int32(1)
	if proc.cmd.ProcessState != nil {
		exitCode = int32(proc.cmd.ProcessState.ExitCode())
	}
	restarts := r.restarts
	err := rt.updateStatus(ctx, r, func(st *corev1.ContainerStatus) {
		st.Ready, st.Started, st.RestartCount = false, ptr(false), restarts
		st.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: exitCode, Reason: "Error", Message: "log: " + proc.log, FinishedAt: metav1.Now(),
		}}
		st.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
			Reason: "CrashLoopBackOff", Message: fmt.Sprintf("%s exited (%v); log: %s", r.kind.name(), exitErr, proc.log),
		}}
	})
	return wait, err
}

// endsPod: a container that exits with code ends its pod instead of being
// restarted (restartPolicy Never, or OnFailure and a success).
func endsPod(pod *corev1.Pod, code int) bool {
	switch pod.Spec.RestartPolicy {
	case corev1.RestartPolicyNever:
		return true
	case corev1.RestartPolicyOnFailure:
		return code == 0
	}
	return false
}

// ended shows a pod whose container ran to its end as a kubelet does: the
// container terminated with its exit code (and, when it failed and asks
// for FallbackToLogsOnError, the end of its log as the message), the pod
// Succeeded or Failed, not Ready.
func (rt *runtime) ended(ctx context.Context, r *podRun, proc *process, code int) error {
	reason, phase, msg := "Completed", corev1.PodSucceeded, ""
	if code != 0 {
		reason, phase = "Error", corev1.PodFailed
		if r.container.TerminationMessagePolicy == corev1.TerminationMessageFallbackToLogsOnError {
			msg = tailBytes(tail(proc.log, 80), 2048) // the kubelet's limits
		}
	}
	return rt.updatePod(ctx, r, func(cur *corev1.Pod) {
		for i := range cur.Status.ContainerStatuses {
			st := &cur.Status.ContainerStatuses[i]
			if st.Name != r.container.Name {
				continue
			}
			var started metav1.Time
			if st.State.Running != nil {
				started = st.State.Running.StartedAt
			}
			st.Ready, st.Started = false, ptr(false)
			st.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: int32(code), Reason: reason, Message: msg, StartedAt: started, FinishedAt: metav1.Now(),
			}}
		}
		cur.Status.Phase = phase
		setReadyConditions(&cur.Status, false)
	})
}

// failInit shows a pod of restartPolicy Never whose init container failed:
// the init container terminated, the pod Failed.
func (rt *runtime) failInit(ctx context.Context, r *podRun, name string, code int, out string) error {
	return rt.updatePod(ctx, r, func(cur *corev1.Pod) {
		for i := range cur.Status.InitContainerStatuses {
			if st := &cur.Status.InitContainerStatuses[i]; st.Name == name {
				st.Ready = false
				st.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
					ExitCode: int32(code), Reason: "Error", Message: tailBytes(out, 2048), FinishedAt: metav1.Now(),
				}}
			}
		}
		cur.Status.Phase = corev1.PodFailed
		setPodCondition(&cur.Status, corev1.PodCondition{Type: corev1.PodInitialized, Status: corev1.ConditionFalse,
			Reason: "ContainersNotInitialized", Message: "init container " + name + " failed", LastTransitionTime: metav1.Now()})
		setReadyConditions(&cur.Status, false)
	})
}

// tailBytes is the last n bytes of s.
func tailBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// updateStatus changes the status of the pod's backed container and sets
// the pod's Ready and ContainersReady conditions from the containers'
// ready flags, as a kubelet does after a probe or a restart.
func (rt *runtime) updateStatus(ctx context.Context, r *podRun, change func(*corev1.ContainerStatus)) error {
	return rt.updatePod(ctx, r, func(cur *corev1.Pod) {
		ready := true
		for i := range cur.Status.ContainerStatuses {
			st := &cur.Status.ContainerStatuses[i]
			if st.Name == r.container.Name {
				change(st)
				if st.Ready && st.State.Running == nil {
					st.State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}
					st.Started = ptr(true)
				}
			} else {
				// A sidecar the harness runs nothing for (an exporter): as
				// kwok shows every container, running and ready.
				st.Ready, st.Started = true, ptr(true)
				if st.State.Running == nil {
					st.State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}
				}
			}
			ready = ready && st.Ready
		}
		setReadyConditions(&cur.Status, ready)
	})
}

// updateInitStatus shows a failed init container as a kubelet does:
// terminated with its exit code (Init:Error), then waiting in
// CrashLoopBackOff, the pod not Initialized and not Ready.
func (rt *runtime) updateInitStatus(ctx context.Context, r *podRun, name string, code int, out string) error {
	restarts := r.initRestarts
	return rt.updatePod(ctx, r, func(cur *corev1.Pod) {
		for i := range cur.Status.InitContainerStatuses {
			st := &cur.Status.InitContainerStatuses[i]
			if st.Name != name {
				continue
			}
			st.Ready, st.RestartCount = false, restarts
			term := &corev1.ContainerStateTerminated{ExitCode: int32(code), Reason: "Error", Message: out, FinishedAt: metav1.Now()}
			st.LastTerminationState = corev1.ContainerState{Terminated: term}
			st.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: out}}
			if restarts == 1 {
				st.State = corev1.ContainerState{Terminated: term}
			}
		}
		now := metav1.Now()
		setPodCondition(&cur.Status, corev1.PodCondition{Type: corev1.PodInitialized, Status: corev1.ConditionFalse,
			Reason: "ContainersNotInitialized", Message: "init container " + name + " failed", LastTransitionTime: now})
		setReadyConditions(&cur.Status, false)
	})
}

func (rt *runtime) updatePod(ctx context.Context, r *podRun, change func(*corev1.Pod)) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := rt.c.Client.CoreV1().Pods(r.pod.Namespace).Get(ctx, r.pod.Name, metav1.GetOptions{})
		if err != nil {
			return client404(err)
		}
		if cur.UID != r.uid {
			return nil
		}
		change(cur)
		_, err = rt.c.Client.CoreV1().Pods(r.pod.Namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return client404(err)
	})
}

func setReadyConditions(s *corev1.PodStatus, ready bool) {
	status, reason := corev1.ConditionTrue, ""
	if !ready {
		status, reason = corev1.ConditionFalse, "ContainersNotReady"
	}
	now := metav1.Now()
	for _, t := range []corev1.PodConditionType{corev1.PodReady, corev1.ContainersReady} {
		setPodCondition(s, corev1.PodCondition{Type: t, Status: status, Reason: reason, LastTransitionTime: now})
	}
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

// Exec runs a command in the container of a pod the runtime runs, as
// `kubectl exec` would: in its sandbox, as its user, with its environment
// (the harness's additions included, so the CLI tools of a server reach
// it: rabbitmqctl, psql). It returns the combined output.
func (c *Cluster) Exec(ctx context.Context, namespace, pod string, timeout time.Duration, argv ...string) (string, error) {
	if c.runtime == nil {
		return "", errors.New("no runtime: the cluster runs no real servers")
	}
	c.runtime.mu.Lock()
	r := c.runtime.pods[namespace+"/"+pod]
	var pid int
	var err error
	if r != nil && r.proc != nil && r.sandbox != nil {
		pid, err = sandboxInit(r.proc.cmd.Process.Pid)
	}
	c.runtime.mu.Unlock()
	if r == nil || r.proc == nil || r.sandbox == nil {
		return "", fmt.Errorf("pod %s/%s: no sandboxed container running", namespace, pod)
	}
	if err != nil {
		return "", err
	}
	out, err := execIn(ctx, pid, r.user, r.env, timeout, argv...)
	return string(out), err
}

// StopServer stops the server behind a pod and keeps it stopped, the pod
// not Ready, until StartServer: a server that is down while its pod stays
// (a fault a test injects). Its volumes stay; it is stopped as the pod's
// own grace period would stop it.
func (c *Cluster) StopServer(ctx context.Context, namespace, pod string) error {
	r, err := c.runningPod(namespace, pod)
	if err != nil {
		return err
	}
	c.runtime.mu.Lock()
	r.held = true
	c.runtime.stopContainer(r)
	r.ready = false
	c.runtime.mu.Unlock()
	c.logf("runtime %s: %s stopped by the test", r.key, r.kind.name())
	return c.runtime.updateStatus(ctx, r, func(st *corev1.ContainerStatus) {
		st.Ready, st.Started = false, ptr(false)
		st.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ServerStopped", Message: "simcluster: stopped by Cluster.StopServer"}}
	})
}

// StartServer starts again a server StopServer stopped.
func (c *Cluster) StartServer(namespace, pod string) error {
	r, err := c.runningPod(namespace, pod)
	if err != nil {
		return err
	}
	c.runtime.mu.Lock()
	r.held = false
	c.runtime.mu.Unlock()
	c.runtime.queue.Add(r.key)
	return nil
}

func (c *Cluster) runningPod(namespace, pod string) (*podRun, error) {
	if c.runtime == nil {
		return nil, errors.New("no runtime: the cluster runs no real servers")
	}
	c.runtime.mu.Lock()
	defer c.runtime.mu.Unlock()
	r := c.runtime.pods[namespace+"/"+pod]
	if r == nil {
		return nil, fmt.Errorf("pod %s/%s: the runtime runs no server for it", namespace, pod)
	}
	return r, nil
}
