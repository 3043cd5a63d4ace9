package rediscluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// converge runs Converge as the operator would (a fresh Connector, the
// Resolver) and returns its result and how long it took.
func converge(ctx context.Context, t *testing.T, s *servers, d Desired, hook Hook) (Result, time.Duration) {
	t.Helper()
	conn := NewConnector(s.resolver(), testPassword)
	defer func() { _ = conn.Close() }()
	start := time.Now()
	res, err := Converge(ctx, &Executor{Conn: conn, Hook: hook}, d, 5)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("Converge to %d masters x %d on %d pods: %v", d.Masters, d.ReplicasPerMaster, len(d.Pods), err)
	}
	return res, took
}

// assertFormed waits until every pod reports the cluster formed (CLUSTER
// INFO: state ok, 16384 slots assigned and ok, every pod known) and checks
// its shape: M masters within one slot of an even share, R replicas each,
// no open slot. It returns the final observation.
func assertFormed(ctx context.Context, t *testing.T, s *servers, d Desired) *Topology {
	t.Helper()
	conn := NewConnector(s.resolver(), testPassword)
	defer func() { _ = conn.Close() }()
	var top *Topology
	poll(ctx, t, "the cluster formed on every pod", func() (bool, string) {
		for _, addr := range d.Pods {
			info, err := conn.Client(addr).ClusterInfo(ctx).Result()
			if err != nil {
				return false, err.Error()
			}
			for field, want := range map[string]string{
				"cluster_state": "ok", "cluster_slots_assigned": "16384", "cluster_slots_ok": "16384",
				"cluster_known_nodes": strconv.Itoa(len(d.Pods)),
			} {
				if got := infoField(info, field); got != want {
					return false, fmt.Sprintf("%s: %s = %s, want %s", addr, field, got, want)
				}
			}
		}
		top = Observe(ctx, conn, d.Pods)
		if problem := shapeProblem(top, d); problem != "" {
			return false, problem
		}
		return true, ""
	})
	return top
}

// shapeProblem describes how top differs from d's shape, "" when it does not.
func shapeProblem(top *Topology, d Desired) string {
	sum := top.Summary()
	if !sum.Healthy() || sum.Nodes != len(d.Pods) {
		return fmt.Sprintf("summary %+v", sum)
	}
	counts, replicas := map[string]int{}, map[string]int{}
	for _, v := range top.Views {
		if v.Self.Flags.Master && v.Self.SlotCount() > 0 {
			counts[v.Self.ID] = v.Self.SlotCount()
		} else if v.Self.Flags.Replica {
			replicas[v.Self.MasterID]++
		}
	}
	if len(counts) != d.Masters {
		return fmt.Sprintf("%d masters hold slots, want %d", len(counts), d.Masters)
	}
	lo, hi := SlotCount/d.Masters, (SlotCount+d.Masters-1)/d.Masters
	for id, c := range counts {
		if c < lo || c > hi {
			return fmt.Sprintf("master %s holds %d slots, want %d..%d", id, c, lo, hi)
		}
		if replicas[id] != d.ReplicasPerMaster {
			return fmt.Sprintf("master %s has %d replicas, want %d", id, replicas[id], d.ReplicasPerMaster)
		}
	}
	return ""
}

// shares lists each master's address and slot count, for the log.
func shares(top *Topology) string {
	var out []string
	for _, addr := range sortedKeys(top.Views) {
		if v := top.Views[addr]; v.Self.Flags.Master && v.Self.SlotCount() > 0 {
			out = append(out, fmt.Sprintf("%s=%d", strings.SplitN(addr, ".", 2)[0], v.Self.SlotCount()))
		}
	}
	return strings.Join(out, " ")
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

func poll(ctx context.Context, t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		ok, last := cond()
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s; last: %s", what, last)
		case <-time.After(25 * time.Millisecond):
		}
	}
}

func keyOf(prefix string, i int) string   { return prefix + strconv.Itoa(i) }
func valueOf(prefix string, i int) string { return "v" + strconv.Itoa(i) + "-" + prefix }

// writeKeys writes prefix0..prefix<n-1> through the cluster client.
func writeKeys(ctx context.Context, t *testing.T, cc *redis.ClusterClient, prefix string, n int) {
	t.Helper()
	for start := 0; start < n; start += 1000 {
		_, err := cc.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := start; i < min(start+1000, n); i++ {
				p.Set(ctx, keyOf(prefix, i), valueOf(prefix, i), 0)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("writing %s keys: %v", prefix, err)
		}
	}
}

// verifyKeys reads prefix0..prefix<n-1> back through the cluster client
// and fails on any key missing or changed.
func verifyKeys(ctx context.Context, t *testing.T, cc *redis.ClusterClient, prefix string, n int) {
	t.Helper()
	var bad []string
	missing := 0
	for start := 0; start < n; start += 1000 {
		cmds, err := cc.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := start; i < min(start+1000, n); i++ {
				p.Get(ctx, keyOf(prefix, i))
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			t.Fatalf("reading %s keys: %v", prefix, err)
		}
		for j, c := range cmds {
			i := start + j
			got, err := c.(*redis.StringCmd).Result()
			if err != nil || got != valueOf(prefix, i) {
				missing++
				if len(bad) < 5 {
					bad = append(bad, fmt.Sprintf("%s = %q (%v)", keyOf(prefix, i), got, err))
				}
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d %s keys missing or wrong, e.g. %s", missing, n, prefix, strings.Join(bad, "; "))
	}
}

// writer writes keys one SET at a time, as an app does, while the topology
// changes: bounded by maxKeys keys and by ctx.
type writer struct {
	stopCh chan struct{}
	done   chan struct{}
	n      int
	errs   []error
}

func startWriter(ctx context.Context, cc *redis.ClusterClient, prefix string, maxKeys int) *writer {
	w := &writer{stopCh: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		// At most one write per 100µs, so that the writer does not take a
		// whole core of the two from the servers and the executor.
		pace := time.NewTicker(100 * time.Microsecond)
		defer pace.Stop()
		for i := 0; i < maxKeys; i++ {
			select {
			case <-w.stopCh:
				return
			case <-ctx.Done():
				return
			case <-pace.C:
			}
			if err := cc.Set(ctx, keyOf(prefix, i), valueOf(prefix, i), 0).Err(); err != nil {
				w.errs = append(w.errs, fmt.Errorf("SET %s: %w", keyOf(prefix, i), err))
			}
			w.n = i + 1
		}
	}()
	return w
}

// stop ends the writer and returns how many keys it wrote and its errors.
func (w *writer) stop() (int, []error) {
	close(w.stopCh)
	<-w.done
	return w.n, w.errs
}

// kindRecorder is a Hook that records the steps run and the time spent
// per kind of step.
type kindRecorder struct {
	mu    sync.Mutex
	kinds map[StepKind]int
	spent map[StepKind]time.Duration
	steps []string
	start time.Time
	last  time.Time
	gaps  time.Duration
}

func (k *kindRecorder) hook(_ context.Context, ev Event) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.kinds == nil {
		k.kinds, k.spent = map[StepKind]int{}, map[StepKind]time.Duration{}
	}
	switch ev.Phase {
	case PhaseStep:
		k.kinds[ev.Step.Kind()]++
		k.steps = append(k.steps, ev.Step.String())
		k.start = time.Now()
		if !k.last.IsZero() {
			k.gaps += k.start.Sub(k.last)
		}
	case PhaseDone:
		k.spent[ev.Step.Kind()] += time.Since(k.start)
		k.last = time.Now()
	}
	return nil
}

// String sums up the time spent per kind of step.
func (k *kindRecorder) String() string {
	var parts []string
	for _, kind := range []StepKind{KindFixOpenSlot, KindFailover, KindReset, KindMeet, KindAssignSlots, KindReplicate, KindMigrateSlots, KindForget} {
		if n := k.kinds[kind]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s %v", n, kind, k.spent[kind].Round(time.Millisecond)))
		}
	}
	if len(parts) == 0 {
		return "no steps"
	}
	return strings.Join(parts, ", ") + fmt.Sprintf(", between steps %v", k.gaps.Round(time.Millisecond))
}
