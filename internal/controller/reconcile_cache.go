package controller

import (
	"context"
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
	// cacheConvergeTimeout bounds the time one reconcile spends on the
	// cluster; a longer migration resumes in the next reconcile.
	cacheConvergeTimeout = 5 * time.Minute
	// cacheRetryInterval is how soon an unformed cluster is looked at again.
	cacheRetryInterval = 5 * time.Second
)

// cacheOutcome is what the cluster reconcile tells the status.
type cacheOutcome struct {
	formed  bool
	detail  string // why not formed
	summary *platformv1.CacheClusterStatus
	// retry asks for another reconcile soon (pods not up, nodes unreachable).
	retry bool
}

// reconcileCacheCluster forms the Redis Cluster and keeps it at the spec's
// masters and replicas, over the Redis protocol: the operator finds the
// cache pods through the API and reaches each at its pod IP, so it needs no
// cluster DNS. Scale-in shrinks the StatefulSet only after the leaving
// masters gave away their slots and were forgotten.
func (r *ParserPlatformReconciler) reconcileCacheCluster(ctx context.Context, p *platformv1.ParserPlatform, creds resource.Credentials) cacheOutcome {
	desiredPods := int(resource.CacheReplicas(p))
	ips, err := r.cachePodIPs(ctx, p)
	if err != nil {
		return cacheOutcome{detail: err.Error(), retry: true}
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
	conn := rediscluster.NewConnector(r.cacheResolver(ips), creds.Get(resource.CacheName(p), resource.KeyPassword))
	defer func() { _ = conn.Close() }()
	exec := &rediscluster.Executor{Conn: conn, Hook: r.topologyHook(p)}
	desired := rediscluster.Desired{
		Pods: addrs, Masters: int(resource.CacheMasters(p)), ReplicasPerMaster: int(resource.CacheReplicasPerMaster(p)),
	}
	ctx, cancel := context.WithTimeout(ctx, cacheConvergeTimeout)
	defer cancel()
	res, err := rediscluster.Converge(ctx, exec, desired, cacheConvergeRounds)
	out := cacheOutcome{}
	if res.Topology != nil {
		s := res.Topology.Summary()
		out.summary = &platformv1.CacheClusterStatus{
			Nodes: int32(s.Nodes), Masters: int32(s.Masters), SlotsAssigned: int32(s.SlotsAssigned), OpenSlots: int32(s.OpenSlots),
		}
		out.formed = err == nil && s.Healthy()
		out.detail = describeSummary(s)
	}
	if err != nil {
		out.detail = "forming the Redis Cluster: " + err.Error()
		out.retry = true
		return out
	}
	if !out.formed {
		// Slots are placed but Redis has not yet agreed the cluster is ok
		// (it takes a node timeout or two): look again soon.
		out.retry = true
		return out
	}
	if err := r.shrinkCache(ctx, p, int32(desiredPods)); err != nil {
		out.detail, out.retry = err.Error(), true
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

// cachePodIPs maps the names of the platform's running cache pods to their IPs.
func (r *ParserPlatformReconciler) cachePodIPs(ctx context.Context, p *platformv1.ParserPlatform) (map[string]string, error) {
	pods := &corev1.PodList{}
	if err := r.List(ctx, pods, client.InNamespace(p.Namespace), client.MatchingLabels(resource.SelectorLabels(p, "cache"))); err != nil {
		return nil, fmt.Errorf("listing cache pods: %w", err)
	}
	ips := map[string]string{}
	for _, pod := range pods.Items {
		if pod.Status.Phase == corev1.PodRunning && pod.DeletionTimestamp.IsZero() {
			ips[pod.Name] = pod.Status.PodIP
		}
	}
	return ips, nil
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

// topologyHook turns every finished topology step into an event and a metric.
func (r *ParserPlatformReconciler) topologyHook(p *platformv1.ParserPlatform) rediscluster.Hook {
	return func(_ context.Context, ev rediscluster.Event) error {
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
