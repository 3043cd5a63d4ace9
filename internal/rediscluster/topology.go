package rediscluster

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// View is what one reachable node reported about the cluster. Its own
// ("myself") line is the authority on its role, slots and open slots; its
// peer lines are the only source for nodes nobody can reach.
type View struct {
	// Addr is the address the node was dialed at: a pod address, or the
	// announced address of a node found through a peer's view.
	Addr string
	// Self is the node's own ("myself") line.
	Self Node
	// Peers are its lines about the other nodes it knows.
	Peers []Node
	// State is cluster_state from CLUSTER INFO ("ok" or "fail").
	State string
}

// Topology is one observation of the cluster: a View for every node that
// answered, the error of every address that did not. It is the planner's
// whole input besides the desired state, so a plan can be tested from a
// literal Topology.
type Topology struct {
	// Views are the answers, by the address dialed.
	Views map[string]*View
	// Unreachable are the addresses that did not answer, with the error.
	Unreachable map[string]string
}

// Observe asks every pod address, and every node their views mention that
// is not among them (a node leaving the cluster), for CLUSTER NODES and
// CLUSTER INFO. Unreachable nodes are recorded, not fatal: the planner
// decides what it can still do safely.
func Observe(ctx context.Context, conn *Connector, pods []string) *Topology {
	t := &Topology{Views: map[string]*View{}, Unreachable: map[string]string{}}
	next := slices.Clone(pods)
	for len(next) > 0 {
		t.observeAll(ctx, conn, next)
		next = t.undialedPeers()
	}
	return t
}

func (t *Topology) observeAll(ctx context.Context, conn *Connector, addrs []string) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, addr := range addrs {
		wg.Go(func() {
			v, err := observeNode(ctx, conn, addr)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Unreachable[addr] = err.Error()
				return
			}
			t.Views[addr] = v
		})
	}
	wg.Wait()
}

// undialedPeers are the addresses of nodes seen in some view whose node ID
// no dialed address answered with, and that were not dialed yet.
func (t *Topology) undialedPeers() []string {
	ids := map[string]bool{}
	for _, v := range t.Views {
		ids[v.Self.ID] = true
	}
	seen := map[string]bool{}
	for _, v := range t.Views {
		for _, p := range v.Peers {
			addr := p.Addr()
			if ids[p.ID] || p.Flags.Handshake || p.Flags.NoAddr || strings.HasPrefix(addr, ":") || t.tried(addr) {
				continue
			}
			seen[addr] = true
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

func (t *Topology) tried(addr string) bool {
	_, ok := t.Views[addr]
	_, bad := t.Unreachable[addr]
	return ok || bad
}

// loadingWait bounds how long a node that is loading its keys from the
// append-only file (just restarted) is waited for before it counts as
// unreachable for this pass.
const loadingWait = 10 * time.Second

func observeNode(ctx context.Context, conn *Connector, addr string) (*View, error) {
	cl := conn.Client(addr)
	if err := waitLoaded(ctx, cl); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, conn.timeout)
	defer cancel()
	text, err := cl.ClusterNodes(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("CLUSTER NODES: %w", err)
	}
	info, err := cl.ClusterInfo(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("CLUSTER INFO: %w", err)
	}
	v, err := NewView(addr, text)
	if err != nil {
		return nil, err
	}
	v.State = infoField(info, "cluster_state")
	return v, nil
}

// NewView parses CLUSTER NODES as answered at addr, for Observe and for
// tests that build a Topology from literal text.
func NewView(addr, clusterNodes string) (*View, error) {
	nodes, err := ParseClusterNodes(clusterNodes)
	if err != nil {
		return nil, err
	}
	v := &View{Addr: addr}
	found := false
	for _, n := range nodes {
		if n.Flags.Myself {
			v.Self, found = n, true
			continue
		}
		v.Peers = append(v.Peers, n)
	}
	if !found {
		return nil, fmt.Errorf("CLUSTER NODES at %s has no myself line", addr)
	}
	return v, nil
}

// infoField is one "name:value" line of CLUSTER INFO.
func infoField(info, name string) string {
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

// waitLoaded waits while the node answers LOADING: a restarted node reads
// its keys back from the append-only file before it serves, and meanwhile
// refuses CLUSTER NODES too.
func waitLoaded(ctx context.Context, cl *redis.Client) error {
	ctx, cancel := context.WithTimeout(ctx, loadingWait)
	defer cancel()
	for {
		err := cl.Ping(ctx).Err()
		if err == nil || !strings.HasPrefix(err.Error(), "LOADING") {
			return nil // any other answer is observeNode's to report
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("still loading its data after %v: %w", loadingWait, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
