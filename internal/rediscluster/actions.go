package rediscluster

import (
	"context"
	"fmt"
	"strings"
)

// meet introduces the node through Via, then from every member already in
// the cluster (it knows Via): a MEET carries the sender's slots, so the new
// node learns every slot's owner at once instead of waiting up to half the
// node timeout for each master's ping, and a node forgotten less than a
// minute ago is banned from gossip but not from MEET.
func (r *stepRun) meet(ctx context.Context, s Meet) error {
	ip, port, err := r.e.Conn.endpoint(ctx, s.Node.Addr)
	if err != nil {
		return err
	}
	if err := r.cmd(ctx, s.Via.Addr, "CLUSTER", "MEET", ip, port); err != nil {
		return err
	}
	if err := r.e.waitKnown(ctx, s.Via, s.Node); err != nil {
		return err
	}
	// Via once more too: its first MEET reached a node that did not know
	// it yet, which ignores the slots of an unknown sender.
	for _, m := range r.plan.Members {
		if m.ID == s.Node.ID {
			continue
		}
		if inCluster, err := r.e.knows(ctx, m.Addr, s.Via.ID); err == nil && (inCluster || m.ID == s.Via.ID) {
			if err := r.cmd(ctx, m.Addr, "CLUSTER", "MEET", ip, port); err != nil {
				return err
			}
		}
	}
	return nil
}

// assignSlots refuses to add a slot any reachable node sees owned by
// another node: adding it would take it, with its keys, away.
func (r *stepRun) assignSlots(ctx context.Context, s AssignSlots) error {
	want := map[int]bool{}
	for _, slot := range Slots(s.Ranges) {
		want[slot] = true
	}
	for _, n := range r.plan.Nodes {
		v, err := r.e.view(ctx, n.Addr)
		if err != nil {
			return err
		}
		for _, node := range append([]Node{v.Self}, v.Peers...) {
			for _, slot := range Slots(node.Slots) {
				if want[slot] && node.ID != s.Node.ID {
					return fmt.Errorf("slot %d is held by %s in the view of %s: not assigning it", slot, node.ID, n)
				}
			}
		}
	}
	self, err := r.e.view(ctx, s.Node.Addr)
	if err != nil {
		return err
	}
	var missing []int
	for _, slot := range Slots(s.Ranges) {
		if !claims(self.Self, slot) {
			missing = append(missing, slot)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	args := []any{"CLUSTER", "ADDSLOTSRANGE"}
	for _, rg := range Ranges(missing) {
		args = append(args, rg.Start, rg.End)
	}
	return r.cmd(ctx, s.Node.Addr, args...)
}

func (r *stepRun) replicate(ctx context.Context, s Replicate) error {
	if err := r.e.waitKnown(ctx, s.Node, s.Master); err != nil {
		return err
	}
	v, err := r.e.view(ctx, s.Node.Addr)
	if err != nil {
		return err
	}
	if v.Self.Flags.Replica && v.Self.MasterID == s.Master.ID {
		return nil
	}
	return r.cmd(ctx, s.Node.Addr, "CLUSTER", "REPLICATE", s.Master.ID)
}

func (r *stepRun) failover(ctx context.Context, s Failover) error {
	v, err := r.e.view(ctx, s.Replica.Addr)
	if err != nil {
		return err
	}
	if !v.Self.Flags.Master {
		if err := r.cmd(ctx, s.Replica.Addr, "CLUSTER", "FAILOVER", "TAKEOVER"); err != nil {
			return err
		}
	}
	return r.e.waitFor(ctx, s.Replica.String()+" to be a master", func(ctx context.Context) (bool, error) {
		v, err := r.e.view(ctx, s.Replica.Addr)
		return err == nil && v.Self.Flags.Master && v.Self.SlotCount() > 0, err
	})
}

// forget runs CLUSTER FORGET on every node of the step, quickly one after
// the other: a node that still knows the forgotten one would gossip it back
// once the others' 60-second ban ends. It refuses while any of them sees
// the node holding slots.
func (r *stepRun) forget(ctx context.Context, s Forget) error {
	// Slot ownership reaches every node by gossip too: give a node that
	// still sees the leaving node holding slots the usual wait to catch up
	// before refusing.
	err := r.e.waitFor(ctx, "every node to see "+s.Node.String()+" without slots", func(ctx context.Context) (bool, error) {
		for _, on := range s.On {
			v, err := r.e.view(ctx, on.Addr)
			if err != nil {
				return false, err
			}
			for _, p := range v.Peers {
				if p.ID == s.Node.ID && len(p.Slots) > 0 {
					return false, fmt.Errorf("%s still sees %s holding slots %s: not forgetting it", on, s.Node, formatRanges(p.Slots))
				}
			}
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, on := range s.On {
		err := r.cmd(ctx, on.Addr, "CLUSTER", "FORGET", s.Node.ID)
		if err != nil && !strings.Contains(err.Error(), "Unknown node") {
			return err
		}
	}
	return nil
}
