package rediscluster

import (
	"maps"
	"slices"
	"strings"
)

// fixOpenSlots plans a FixOpenSlot for every open slot. The first pass
// (afterFailover false) takes the slots whose owner is reachable or who have
// none; slots of a dead owner wait for the failover that gives them a live
// owner with the keys, and are fixed in the second pass.
func (p *planner) fixOpenSlots(afterFailover bool) {
	type group struct {
		owner, final *mnode
		open         []*mnode
		slots        []int
	}
	var groups []*group
	byKey := map[string]*group{}
	for _, s := range slices.Sorted(maps.Keys(p.m.open)) {
		o := p.m.open[s]
		owner := p.m.nodes[p.m.owner[s]]
		if !afterFailover && owner != nil && !owner.reachable {
			continue
		}
		final := p.finalOwner(o, owner)
		open := p.m.ordered(func(n *mnode) bool {
			_, mig := o.migrating[n.id]
			_, imp := o.importing[n.id]
			return (mig || imp) && n != owner && n != final
		})
		key := idOf(owner) + "|" + idOf(final) + "|" + joinIDs(open)
		g := byKey[key]
		if g == nil {
			g = &group{owner: owner, final: final, open: open}
			byKey[key] = g
			groups = append(groups, g)
		}
		g.slots = append(g.slots, s)
		if final != nil {
			p.m.owner[s] = final.id
		}
		delete(p.m.open, s)
	}
	for _, g := range groups {
		step := FixOpenSlot{Ranges: Ranges(g.slots), Open: p.m.refs(g.open)}
		if g.owner != nil && g.owner.reachable {
			step.Owner = g.owner.ref()
		}
		if g.final != nil {
			step.Final = g.final.ref()
		}
		p.add(step)
	}
}

// finalOwner decides how an open slot closes. With a live owner: finish the
// migration when its destination (the node the owner migrates to, else an
// importing node) is a member the cluster keeps, else roll back to the
// owner. Without a live owner the keys that made it to an importing node
// are the only copy, so that node takes the slot; nil when there is none.
func (p *planner) finalOwner(o *openSlot, owner *mnode) *mnode {
	importers := p.m.ordered(func(n *mnode) bool {
		_, ok := o.importing[n.id]
		return ok && n.reachable
	})
	if owner == nil || !owner.reachable {
		if len(importers) > 0 {
			return importers[0]
		}
		return nil
	}
	if to := p.m.nodes[o.migrating[owner.id]]; to != nil && to != owner && to.member() {
		return to
	}
	for _, n := range importers {
		if n != owner && n.member() {
			return n
		}
	}
	return owner
}

func idOf(n *mnode) string {
	if n == nil {
		return ""
	}
	return n.id
}

func joinIDs(nodes []*mnode) string {
	ids := make([]string, len(nodes))
	for i, n := range nodes {
		ids[i] = n.id
	}
	return strings.Join(ids, ",")
}
