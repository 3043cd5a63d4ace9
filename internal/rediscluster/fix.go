package rediscluster

import "context"

// fixOpenSlot closes open slots as the planner decided: finish the
// migration into Final, roll it back to the owner, or (nobody can take the
// slots) only clear the open state. Keys on the other open nodes go to the
// final owner before their state is cleared, so none is stranded on a node
// that does not serve its slot.
func (r *stepRun) fixOpenSlot(ctx context.Context, s FixOpenSlot) error {
	slots := Slots(s.Ranges)
	switch s.Final.ID {
	case "":
		for _, n := range append(s.Open, s.Owner) {
			if n.ID != "" {
				if err := r.setSlots(ctx, n.Addr, slots, "STABLE", ""); err != nil {
					return err
				}
			}
		}
		return nil
	case s.Owner.ID:
		// Roll back: the owner stops redirecting to the importing nodes
		// first, then takes back the keys that reached them.
		if err := r.setSlots(ctx, s.Owner.Addr, slots, "STABLE", ""); err != nil {
			return err
		}
	default:
		if err := r.migrate(ctx, s.Owner, s.Final, slots); err != nil {
			return err
		}
	}
	return r.drainInto(ctx, s.Open, s.Final, slots)
}

// drainInto moves the keys of the slots open on each node to final (the
// final owner's copy wins when both have a key), then tells the node the
// final owner and clears its open state.
func (r *stepRun) drainInto(ctx context.Context, open []NodeRef, final NodeRef, slots []int) error {
	for _, n := range open {
		v, err := r.e.view(ctx, n.Addr)
		if err != nil {
			return err
		}
		var opened []int
		for _, s := range slots {
			if v.Self.Importing[s] != "" || v.Self.Migrating[s] != "" {
				opened = append(opened, s)
			}
		}
		if len(opened) == 0 {
			continue
		}
		if err := r.e.waitStateOK(ctx, final); err != nil {
			return err
		}
		if err := r.moveKeys(ctx, n.Addr, final.Addr, opened, false); err != nil {
			return err
		}
		// NODE before STABLE: a node that still believes it owns the slot
		// (the new owner's epoch has not reached it) would otherwise serve
		// it, take writes, and drop them when the news arrives.
		if err := r.setSlots(ctx, n.Addr, opened, "NODE", final.ID); err != nil {
			return err
		}
		if err := r.setSlots(ctx, n.Addr, opened, "STABLE", ""); err != nil {
			return err
		}
	}
	return nil
}
