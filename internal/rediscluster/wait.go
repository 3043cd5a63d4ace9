package rediscluster

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// waitViewsAgree waits, after nodes met, until every member knows every
// other and sees every slot held by the node that holds it. Until then a
// node that has just joined knows some peers only from gossip, which
// carries no slots: a client that asked it for the slot map would get holes
// and be told CLUSTERDOWN for those slots. Gossip fixes that within half
// the node timeout; the executor does not wait for it: every half second
// the node a member lacks sends it a MEET, whose header carries the
// sender's slots (and introduces it, if the member did not know it).
func (e *Executor) waitViewsAgree(ctx context.Context, members []NodeRef) error {
	var last time.Time
	return e.waitFor(ctx, "every member to know every other and every slot's owner", func(ctx context.Context) (bool, error) {
		lacks, err := e.viewGaps(ctx, members)
		if err != nil || len(lacks) == 0 {
			return err == nil, err
		}
		if time.Since(last) > 500*time.Millisecond {
			last = time.Now()
			for _, g := range lacks {
				if ip, port, err := e.Conn.endpoint(ctx, g.member.Addr); err == nil {
					_ = e.Conn.Client(g.lacks.Addr).Do(ctx, "CLUSTER", "MEET", ip, port).Err()
				}
			}
		}
		return false, fmt.Errorf("%s does not know %s or its slots (and %d more)", lacks[0].member, lacks[0].lacks, len(lacks)-1)
	})
}

// gap: member does not know node lacks, or not the slots it holds.
type gap struct{ member, lacks NodeRef }

// viewGaps compares every member's view with the members' own lines.
func (e *Executor) viewGaps(ctx context.Context, members []NodeRef) ([]gap, error) {
	views := make([]*View, len(members))
	byID := map[string]NodeRef{}
	// hostnames are what each member announces; a peer that does not know a
	// member's hostname yet redirects clients to "?:port", which no client
	// can follow, so it is not done knowing that member.
	hostnames := map[string]string{}
	var truth [SlotCount]string
	for i, m := range members {
		v, err := e.view(ctx, m.Addr)
		if err != nil {
			return nil, err
		}
		views[i], byID[v.Self.ID] = v, m
		hostnames[v.Self.ID] = v.Self.Hostname
		for _, s := range Slots(v.Self.Slots) {
			truth[s] = v.Self.ID
		}
	}
	var gaps []gap
	for i, v := range views {
		var seen [SlotCount]string
		known := map[string]bool{}
		for _, n := range append([]Node{v.Self}, v.Peers...) {
			known[n.ID] = n.Flags.Myself || !n.Flags.Handshake && !n.Flags.NoAddr && n.Hostname == hostnames[n.ID]
			for _, s := range Slots(n.Slots) {
				seen[s] = n.ID
			}
		}
		lacking := map[string]bool{}
		for s, owner := range truth {
			if owner != "" && seen[s] != owner {
				lacking[owner] = true
			}
		}
		for _, m := range members {
			if m.ID != members[i].ID && (!known[m.ID] || lacking[m.ID]) {
				gaps = append(gaps, gap{member: members[i], lacks: m})
			}
		}
	}
	return gaps, nil
}

// view reads CLUSTER NODES at addr.
func (e *Executor) view(ctx context.Context, addr string) (*View, error) {
	text, err := e.Conn.Client(addr).ClusterNodes(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("CLUSTER NODES at %s: %w", addr, err)
	}
	return NewView(addr, text)
}

// waitKnown waits until a and b list each other as peers past the
// handshake: cluster commands naming a node ID need the node known.
func (e *Executor) waitKnown(ctx context.Context, a, b NodeRef) error {
	return e.waitFor(ctx, fmt.Sprintf("%s and %s to know each other", a, b), func(ctx context.Context) (bool, error) {
		ok1, err := e.knows(ctx, a.Addr, b.ID)
		if err != nil || !ok1 {
			return false, err
		}
		return e.knows(ctx, b.Addr, a.ID)
	})
}

func (e *Executor) knows(ctx context.Context, addr, id string) (bool, error) {
	v, err := e.view(ctx, addr)
	if err != nil {
		return false, err
	}
	for _, p := range v.Peers {
		if p.ID == id {
			return !p.Flags.Handshake && !p.Flags.NoAddr, nil
		}
	}
	return false, nil
}

// waitStateOK waits until n reports cluster_state:ok: a node that has just
// joined (or restarted as a master) refuses keys, MIGRATE's RESTORE
// included, for a moment.
func (e *Executor) waitStateOK(ctx context.Context, n NodeRef) error {
	return e.waitFor(ctx, n.String()+" to report cluster_state:ok", func(ctx context.Context) (bool, error) {
		info, err := e.Conn.Client(n.Addr).ClusterInfo(ctx).Result()
		return err == nil && infoField(info, "cluster_state") == "ok", err
	})
}

// waitFor polls cond every 50ms until it holds or the Wait deadline passes.
func (e *Executor) waitFor(ctx context.Context, what string, cond func(context.Context) (bool, error)) error {
	wait := e.Wait
	if wait <= 0 {
		wait = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		ok, err := cond(ctx)
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("waiting for %s: %w", what, ctx.Err()), last)
		case <-tick.C:
		}
	}
}
