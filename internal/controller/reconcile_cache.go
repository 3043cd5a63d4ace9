package controller

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/metrics"
	"github.com/vkparser/parser-operator/internal/rediscluster"
	"github.com/vkparser/parser-operator/internal/resource"
)

const (
	// cacheConvergeRounds bounds one reconcile's observe-plan-execute passes.
	cacheConvergeRounds = 6
	// cacheSliceTimeout bounds the time one reconcile spends on the
	// cluster. A migration runs in slices of it that resume where the last
	// one stopped (every step of internal/rediscluster may be cut short:
	// the next observation finishes or rolls back a half-moved slot), so a
	// platform moving slots never holds a reconcile worker, and the
	// platforms queued behind it, for longer.
	cacheSliceTimeout = 20 * time.Second
	// cacheSliceInterval is how soon the next slice runs: at once, behind
	// the platforms already waiting for a worker.
	cacheSliceInterval = 100 * time.Millisecond
	// cacheRetryInterval is how soon an unformed cluster is looked at again.
	cacheRetryInterval = 5 * time.Second
)

// cacheOutcome is what the cluster reconcile tells the status.
type cacheOutcome struct {
	formed  bool
	detail  string // why not formed
	summary *platformv1.CacheClusterStatus
	// retryAfter asks for another reconcile (pods not up, nodes
	// unreachable, a migration's next slice, the periodic recheck); 0: none.
	retryAfter time.Duration
}

// reconcileCacheCluster forms the Redis Cluster and keeps it at the spec's
// masters and replicas, over the Redis protocol: the operator finds the
// cache pods through the API and reaches each at its pod IP, so it needs no
// cluster DNS. Scale-in shrinks the StatefulSet only after the leaving
// masters gave away their slots and were forgotten. A settled cluster is
// not dialed again until something it depends on moves (server_checks.go).
func (r *ParserPlatformReconciler) reconcileCacheCluster(ctx context.Context, p *platformv1.ParserPlatform, creds resource.Credentials) cacheOutcome {
	desiredPods := int(resource.CacheReplicas(p))
	pods, err := r.runningCachePods(ctx, p)
	if err != nil {
		return cacheOutcome{detail: err.Error(), retryAfter: cacheRetryInterval}
	}
	ips := map[string]string{}
	for _, pod := range pods {
		ips[pod.Name] = pod.Status.PodIP
	}
	var addrs []string
	for i := range desiredPods {
		pod := fmt.Sprintf("%s-%d", resource.CacheName(p), i)
		if ips[pod] == "" {
			// The pod watch brings the platform back when it runs.
			return cacheOutcome{detail: "waiting for pod " + pod + " to run"}
		}
		addrs = append(addrs, cachePodAddress(p, pod))
	}
	password := creds.Get(resource.CacheName(p), resource.KeyPassword)
	key := serverKey{platform: client.ObjectKeyFromObject(p), server: serverCache}
	inputs, err := r.cacheInputs(ctx, p, pods, password)
	if err != nil {
		return cacheOutcome{detail: err.Error(), retryAfter: cacheRetryInterval}
	}
	now := time.Now()
	if out, left, ok := recallAnswer[cacheOutcome](&r.checks, key, inputs, now); ok {
		out.retryAfter = left
		return out
	}
	out := r.convergeCache(ctx, p, ips, addrs, password)
	if out.formed && out.retryAfter == 0 {
		r.checks.remember(key, inputs, now, out)
		out.retryAfter = serverRecheckInterval
	} else {
		r.checks.forgetAnswer(key)
	}
	return out
}

// cacheInputs is what the cluster's state depends on besides the cluster
// itself: the spec's shape, the password, the pods, and the StatefulSet's
// size (a scale-in shrinks it once the pods beyond the spec are drained).
func (r *ParserPlatformReconciler) cacheInputs(ctx context.Context, p *platformv1.ParserPlatform, pods []corev1.Pod, password string) (string, error) {
	live, err := r.liveStatefulSet(ctx, p.Namespace, resource.CacheName(p))
	if err != nil {
		return "", err
	}
	size := int32(-1)
	if live != nil {
		size = ptr.Deref(live.Spec.Replicas, 0)
	}
	return fmt.Sprintf("masters=%d replicas=%d size=%d password=%x pods=%s", resource.CacheMasters(p), resource.CacheReplicasPerMaster(p),
		size, sha256.Sum256([]byte(password)), podsInputs(pods)), nil
}

// convergeCache runs one slice of the cluster's convergence and says where
// it stands.
func (r *ParserPlatformReconciler) convergeCache(ctx context.Context, p *platformv1.ParserPlatform, ips map[string]string, addrs []string, password string) cacheOutcome {
	conn := rediscluster.NewConnector(r.cacheResolver(ips), password)
	defer func() { _ = conn.Close() }()
	moved := 0
	exec := &rediscluster.Executor{Conn: conn, Hook: r.topologyHook(p, &moved)}
	desired := rediscluster.Desired{
		Pods: addrs, Masters: int(resource.CacheMasters(p)), ReplicasPerMaster: int(resource.CacheReplicasPerMaster(p)),
	}
	slice, cancel := context.WithTimeout(ctx, cacheSliceTimeout)
	defer cancel()
	res, err := rediscluster.Converge(slice, exec, desired, cacheConvergeRounds)
	progress := r.checks.migrationSlice(client.ObjectKeyFromObject(p), res.SlotsToMove, moved)
	out := cacheOutcome{}
	if res.Topology != nil {
		s := res.Topology.Summary()
		out.summary = &platformv1.CacheClusterStatus{
			Nodes: int32(s.Nodes), Masters: int32(s.Masters), SlotsAssigned: int32(s.SlotsAssigned), OpenSlots: int32(s.OpenSlots), //nolint:gosec // G115: node and slot counts, at most 16384.
		}
		out.formed = err == nil && s.Healthy()
		out.detail = describeSummary(s)
	}
	switch {
	case err != nil && slice.Err() != nil && ctx.Err() == nil:
		// The slice is over, not the migration: the next one resumes it.
		out.formed = false
		out.detail = fmt.Sprintf("moving slots: %d of %d moved; continuing", progress.moved, progress.total)
		out.retryAfter = cacheSliceInterval
		return out
	case err != nil:
		out.detail = "forming the Redis Cluster: " + err.Error()
		out.retryAfter = cacheRetryInterval
		return out
	case !out.formed:
		// Slots are placed but Redis has not yet agreed the cluster is ok
		// (it takes a node timeout or two): look again soon.
		out.retryAfter = cacheRetryInterval
		return out
	}
	if err := r.shrinkCache(ctx, p, int32(len(addrs))); err != nil { //nolint:gosec // G115: a count of cache pods, bounded by an int32 replica count.
		out.detail, out.retryAfter = err.Error(), cacheRetryInterval
	}
	return out
}

func describeSummary(s rediscluster.Summary) string {
	msg := fmt.Sprintf("%d nodes, %d masters, %d/%d slots assigned, %d open", s.Nodes, s.Masters, s.SlotsAssigned, rediscluster.SlotCount, s.OpenSlots)
	if len(s.Unreachable) > 0 {
		msg += ", unreachable: " + strings.Join(s.Unreachable, ", ")
	}
	return msg
}

// runningCachePods are the platform's running cache pods.
func (r *ParserPlatformReconciler) runningCachePods(ctx context.Context, p *platformv1.ParserPlatform) ([]corev1.Pod, error) {
	list := &corev1.PodList{}
	if err := r.List(ctx, list, client.InNamespace(p.Namespace), client.MatchingLabels(resource.SelectorLabels(p, "cache"))); err != nil {
		return nil, fmt.Errorf("listing cache pods: %w", err)
	}
	var pods []corev1.Pod
	for _, pod := range list.Items {
		if pod.Status.Phase == corev1.PodRunning && pod.DeletionTimestamp.IsZero() {
			pods = append(pods, pod)
		}
	}
	return pods, nil
}

// cachePodAddress is the address a cache pod announces: its stable DNS name
// (the container's --cluster-announce-hostname) and the Redis port.
func cachePodAddress(p *platformv1.ParserPlatform, pod string) string {
	return net.JoinHostPort(fmt.Sprintf("%s.%s.%s.svc", pod, resource.CacheHeadlessName(p), p.Namespace), fmt.Sprint(resource.RedisPort))
}

// cacheResolver reaches a node by its pod's IP: the pod name is the first
// label of the announced host name. An address that is already an IP is
// dialed as it is.
func (r *ParserPlatformReconciler) cacheResolver(ips map[string]string) rediscluster.Resolver {
	if r.CacheResolver != nil {
		return r.CacheResolver(ips)
	}
	return PodIPResolver(ips)
}

// PodIPResolver resolves "<pod>.<service>...:port" to "<pod IP>:port".
func PodIPResolver(ips map[string]string) rediscluster.Resolver {
	return rediscluster.ResolverFunc(func(_ context.Context, addr string) (string, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return "", err
		}
		if net.ParseIP(host) != nil {
			return addr, nil
		}
		pod, _, _ := strings.Cut(host, ".")
		ip := ips[pod]
		if ip == "" {
			return "", fmt.Errorf("cache pod %s has no IP (not running)", pod)
		}
		return net.JoinHostPort(ip, port), nil
	})
}

// topologyHook turns every finished topology step into an event and a
// metric, and counts the slots whose keys all moved into moved.
func (r *ParserPlatformReconciler) topologyHook(p *platformv1.ParserPlatform, moved *int) rediscluster.Hook {
	return func(_ context.Context, ev rediscluster.Event) error {
		if ev.Phase == rediscluster.PhaseSetSlot {
			*moved += rediscluster.CountSlots(ev.Slots)
		}
		if ev.Phase != rediscluster.PhaseDone {
			return nil
		}
		kind := string(ev.Step.Kind())
		metrics.CacheSteps.WithLabelValues(p.Namespace, p.Name, kind).Inc()
		r.event(p, "Normal", "CacheTopology", kind, fmt.Sprint(ev.Step))
		return nil
	}
}

// shrinkCache lets the StatefulSet go down to the spec's size once the
// cluster no longer counts on the pods beyond it (applyChildren keeps a
// larger live size until then).
func (r *ParserPlatformReconciler) shrinkCache(ctx context.Context, p *platformv1.ParserPlatform, replicas int32) error {
	sts := &appsv1.StatefulSet{}
	err := r.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: resource.CacheName(p)}, sts)
	if apierrors.IsNotFound(err) || (err == nil && ptr.Deref(sts.Spec.Replicas, 0) <= replicas) {
		return nil
	}
	if err != nil {
		return err
	}
	sts = sts.DeepCopy() // cached objects are shared, not copies
	base := sts.DeepCopy()
	sts.Spec.Replicas = ptr.To(replicas)
	if err := r.Patch(ctx, sts, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("shrinking the cache StatefulSet to %d pods: %w", replicas, err)
	}
	r.event(p, "Normal", "CacheScaledIn", "Scale", fmt.Sprintf("StatefulSet %s to %d pods, after their slots moved", sts.Name, replicas))
	return nil
}

// keepCacheUntilDrained stops applyChildren from shrinking the cache
// StatefulSet: pods beyond the spec's size may still hold slots, and only
// reconcileCacheCluster, once they are drained and forgotten, shrinks it.
func keepCacheUntilDrained(desired []client.Object, live *appsv1.StatefulSet) {
	if live == nil {
		return
	}
	for _, obj := range desired {
		if sts, ok := obj.(*appsv1.StatefulSet); ok && sts.Name == live.Name {
			if ptr.Deref(live.Spec.Replicas, 0) > ptr.Deref(sts.Spec.Replicas, 0) {
				sts.Spec.Replicas = live.Spec.Replicas
			}
		}
	}
}
