package controller

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/vkparser/parser-operator/internal/metrics"
)

// What the operator learns by talking to a platform's servers (the Redis
// Cluster's topology, the broker's queues) is remembered per platform with
// the inputs it was learned from. Most events that wake a reconcile change
// none of them (an HPA's current metrics, a Deployment's progress, a
// worker pod's status): the remembered answer is used and no server is
// dialed. A server is talked to again when an input moves (its part of the
// spec, its credentials, a pod of it: IP, UID, readiness, restarts), when
// the last answer was not a settled one (only settled answers are
// remembered), and at least every serverRecheckInterval, since a server
// can change without the API seeing it (a Redis failover, a queue deleted
// by hand).
const serverRecheckInterval = 2 * time.Minute

// Servers a platform has, as the memory and the metric name them.
const (
	serverCache  = "cache"
	serverBroker = "broker"
)

// serverChecks is the reconciler's memory of its servers' last settled
// answers, and of the cache migrations in progress. The zero value is
// ready to use.
type serverChecks struct {
	mu         sync.Mutex
	answers    map[serverKey]serverAnswer
	migrations map[types.NamespacedName]*migrationProgress
}

type serverKey struct {
	platform types.NamespacedName
	server   string
}

type serverAnswer struct {
	inputs  string
	at      time.Time
	outcome any
}

// recallAnswer is the remembered outcome of the server for these inputs
// and how long it stays good, or false when the server must be asked.
func recallAnswer[T any](c *serverChecks, key serverKey, inputs string, now time.Time) (T, time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var zero T
	a, found := c.answers[key]
	out, typed := a.outcome.(T)
	left := serverRecheckInterval - now.Sub(a.at)
	if !found || !typed || a.inputs != inputs || left <= 0 {
		metrics.ServerChecks.WithLabelValues(key.server, "dialed").Inc()
		return zero, 0, false
	}
	metrics.ServerChecks.WithLabelValues(key.server, "recalled").Inc()
	return out, left, true
}

// remember keeps a settled answer; forgetAnswer drops an unsettled one, so
// the next reconcile asks again.
func (c *serverChecks) remember(key serverKey, inputs string, now time.Time, outcome any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.answers == nil {
		c.answers = map[serverKey]serverAnswer{}
	}
	c.answers[key] = serverAnswer{inputs: inputs, at: now, outcome: outcome}
}

func (c *serverChecks) forgetAnswer(key serverKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.answers, key)
}

// forgetPlatform drops everything about a platform that is gone.
func (c *serverChecks) forgetPlatform(platform types.NamespacedName) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range []string{serverCache, serverBroker} {
		delete(c.answers, serverKey{platform: platform, server: s})
	}
	delete(c.migrations, platform)
}

// migrationProgress counts a cache migration over the slices it runs in:
// total is what the first slice found to move, moved what the slices
// moved since. An operator restarted mid-way counts from where the
// cluster stands.
type migrationProgress struct{ total, moved int }

// migrationSlice records one slice of a migration: toMove is what its
// plan had left when it began, moved what it moved. It returns the
// progress so far; a slice that found nothing to move ends the count.
func (c *serverChecks) migrationSlice(platform types.NamespacedName, toMove, moved int) migrationProgress {
	c.mu.Lock()
	defer c.mu.Unlock()
	if toMove == 0 {
		delete(c.migrations, platform)
		return migrationProgress{}
	}
	if c.migrations == nil {
		c.migrations = map[types.NamespacedName]*migrationProgress{}
	}
	m := c.migrations[platform]
	if m == nil || m.total-m.moved < toMove {
		// A new migration, or a bigger one than counted (the spec grew).
		m = &migrationProgress{total: toMove}
		c.migrations[platform] = m
	}
	m.moved = min(m.total-toMove+moved, m.total)
	return *m
}

// podsInputs is what of a server's pods its answers depend on.
func podsInputs(pods []corev1.Pod) string {
	lines := make([]string, 0, len(pods))
	for _, pod := range pods {
		ready, restarts := false, int32(0)
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodReady {
				ready = c.Status == corev1.ConditionTrue
			}
		}
		for _, cs := range pod.Status.ContainerStatuses {
			restarts += cs.RestartCount
		}
		lines = append(lines, fmt.Sprintf("%s/%s/%s/%t/%d", pod.Name, pod.UID, pod.Status.PodIP, ready, restarts))
	}
	slices.Sort(lines)
	return strings.Join(lines, ",")
}
