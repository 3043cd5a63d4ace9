package rediscluster

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Desired is the cluster the operator wants: its pods and how many masters
// and replicas they make.
type Desired struct {
	// Pods are the pods' addresses in ordinal order, as the pods announce
	// them (hostname:port, the hostname their stable DNS name).
	Pods []string
	// Masters is how many masters share the slots.
	Masters int
	// ReplicasPerMaster is how many replicas each master should have; pods
	// beyond Masters*(1+ReplicasPerMaster) become extra replicas.
	ReplicasPerMaster int
}

func (d Desired) validate() error {
	switch {
	case d.Masters < 1 || d.Masters > SlotCount:
		return fmt.Errorf("masters = %d, want 1..%d", d.Masters, SlotCount)
	case d.ReplicasPerMaster < 0:
		return fmt.Errorf("replicas per master = %d, want >= 0", d.ReplicasPerMaster)
	case len(d.Pods) < d.Masters:
		return fmt.Errorf("%d pods cannot hold %d masters", len(d.Pods), d.Masters)
	}
	seen := map[string]bool{}
	for _, p := range d.Pods {
		if seen[p] {
			return fmt.Errorf("pod address %q is listed twice", p)
		}
		seen[p] = true
	}
	return nil
}

// Plan is the ordered list of steps that takes the observed cluster to the
// desired one. An empty plan means the cluster matches.
type Plan struct {
	// Steps run in order; each depends on the ones before.
	Steps []Step
	// Masters are the nodes that hold the slots once the plan is done.
	Masters []NodeRef
	// Members are the nodes of the desired pods, in ordinal order: the
	// cluster once the plan is done.
	Members []NodeRef
	// Nodes are every reachable node; the executor tells them all about
	// each slot that changes owner, instead of waiting for gossip.
	Nodes []NodeRef
}

// Empty is true when the cluster already matches the desired state.
func (p *Plan) Empty() bool { return len(p.Steps) == 0 }

// SlotsToMove counts the slots the plan's migrations move: what a
// migration in progress still has to do.
func (p *Plan) SlotsToMove() int {
	n := 0
	for _, s := range p.Steps {
		if m, ok := s.(MigrateSlots); ok {
			n += CountSlots(m.Ranges)
		}
	}
	return n
}

// String lists the steps, one a line, for logs and test failures.
func (p *Plan) String() string {
	lines := make([]string, len(p.Steps))
	for i, s := range p.Steps {
		lines[i] = fmt.Sprintf("%d. %s", i+1, s)
	}
	return strings.Join(lines, "\n")
}

// ErrUnreachable is wrapped by the planner's error when a node it must act
// on cannot be reached: the caller reports it, backs off and observes
// again, as planning around a missing pod could lose its keys.
var ErrUnreachable = errors.New("redis cluster node unreachable")

// NewPlan computes the steps from an observed topology to the desired
// state. It is pure: the same observation gives the same plan.
//
// Stages, each planned on the state the earlier ones leave:
//  1. open slots whose owner is alive are finished or rolled back;
//  2. a dead master's replica takes over its slots; then the open slots of
//     dead masters are fixed;
//  3. dead nodes nobody replicates are forgotten (their slots, if no replica
//     was left, become unassigned);
//  4. masters are chosen (see chooseMasters) and replicas that must become
//     masters are reset;
//  5. nodes the cluster does not know (new pods, pods with a new IP) meet;
//  6. unassigned slots go to masters below their share: every slot on a
//     fresh cluster, never a slot someone holds, so a cluster is never
//     re-created over its data;
//  7. replicas that hold no slots attach to their masters;
//  8. slots move from leaving masters and from masters above their share to
//     those below it, so each master ends within one slot of even;
//  9. drained masters that stay become replicas;
//  10. leaving and dead nodes are forgotten, only now that they hold no slot.
func NewPlan(t *Topology, d Desired) (*Plan, error) {
	if err := d.validate(); err != nil {
		return nil, err
	}
	p := &planner{m: newModel(t, d.Pods), d: d}
	if err := p.blocked(t); err != nil {
		return nil, err
	}
	p.fixOpenSlots(false)
	p.failovers()
	p.fixOpenSlots(true)
	p.forgetDead()
	p.chooseMasters()
	p.meets()
	p.assignSlots()
	want := p.assignReplicas()
	holding := p.m.slotCounts()
	p.replicate(want, func(n *mnode) bool { return holding[n.id] == 0 })
	p.migrate()
	p.replicate(want, func(n *mnode) bool { return holding[n.id] > 0 })
	p.forgetLeaving()
	return &Plan{
		Steps: p.steps, Masters: p.m.refs(p.masters),
		Members: p.m.refs(p.m.ordered(func(n *mnode) bool { return n.member() })),
		Nodes:   p.m.refs(p.m.ordered(func(n *mnode) bool { return n.reachable })),
	}, nil
}

type planner struct {
	m       *model
	d       Desired
	steps   []Step
	masters []*mnode
	target  map[string]int
}

func (p *planner) add(s Step) { p.steps = append(p.steps, s) }

// blocked refuses to plan while a desired pod, or a node that still holds
// slots and is not known dead, cannot be reached.
func (p *planner) blocked(t *Topology) error {
	var missing []string
	for _, pod := range p.d.Pods {
		if reason, ok := t.Unreachable[pod]; ok {
			missing = append(missing, pod+": "+reason)
		}
	}
	counts := p.m.slotCounts()
	for _, n := range p.m.ordered(func(n *mnode) bool { return !n.reachable && !n.dead && counts[n.id] > 0 }) {
		reason := t.Unreachable[n.addr]
		if reason == "" {
			reason = "not dialed"
		}
		missing = append(missing, fmt.Sprintf("%s holds %d slots: %s", n.ref(), counts[n.id], reason))
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s", ErrUnreachable, strings.Join(missing, "; "))
	}
	return nil
}

// failovers promote a replica of every dead master that still holds slots.
// Without a replica the slots are lost with the node; forgetDead frees them.
func (p *planner) failovers() {
	counts := p.m.slotCounts()
	for _, dead := range p.m.ordered(func(n *mnode) bool { return n.dead && counts[n.id] > 0 }) {
		replicas := p.m.ordered(func(n *mnode) bool { return n.reachable && !n.master && n.masterID == dead.id })
		if len(replicas) == 0 {
			continue
		}
		r := replicas[0]
		p.add(Failover{Replica: r.ref(), Master: dead.ref()})
		r.master, r.masterID = true, ""
		for _, other := range replicas[1:] {
			other.masterID = r.id // Redis moves the other replicas to the new master
		}
		for _, s := range p.m.slotsOf(dead.id) {
			p.m.owner[s] = r.id
		}
	}
}

// forgetDead forgets dead nodes no reachable node replicates (a replica
// cannot forget its master; those are forgotten last). Slots a dead node
// still holds become unassigned: nobody has its keys any more.
func (p *planner) forgetDead() {
	replicated := map[string]bool{}
	for _, n := range p.m.nodes {
		if n.reachable && !n.master {
			replicated[n.masterID] = true
		}
	}
	on := p.m.refs(p.m.ordered(func(n *mnode) bool { return n.reachable }))
	for _, dead := range p.m.ordered(func(n *mnode) bool { return n.dead && !replicated[n.id] }) {
		p.add(Forget{Node: dead.ref(), On: on})
		p.drop(dead.id)
	}
}

func (p *planner) drop(id string) {
	for s, o := range p.m.owner {
		if o == id {
			p.m.owner[s] = ""
		}
	}
	delete(p.m.nodes, id)
}

// chooseMasters picks the M masters. A fresh cluster's masters are the
// first M ordinals. After that roles are sticky, as moving a role costs a
// full copy: masters that hold slots stay masters (the lowest ordinals when
// there are more than M), then empty masters (new pods) by ordinal; only
// when those run out is a replica reset into a master.
func (p *planner) chooseMasters() {
	members := p.m.ordered(func(n *mnode) bool { return n.member() })
	counts := p.m.slotCounts()
	chosen := map[string]bool{}
	pick := func(keep func(*mnode) bool) {
		for _, n := range members {
			if len(p.masters) < p.d.Masters && !chosen[n.id] && keep(n) {
				p.masters = append(p.masters, n)
				chosen[n.id] = true
			}
		}
	}
	pick(func(n *mnode) bool { return n.master && counts[n.id] > 0 })
	pick(func(n *mnode) bool { return n.master })
	pick(func(n *mnode) bool { return true })
	for _, n := range p.masters {
		if !n.master {
			p.add(Reset{Node: n.ref()})
			n.master, n.masterID, n.met = true, "", false
		}
	}
	p.target = targets(p.masters, counts)
}

// targets gives each master its share: 16384/M, one more for the first
// 16384%M masters by current slot count, so the fewest slots move.
func targets(masters []*mnode, counts map[string]int) map[string]int {
	order := slices.Clone(masters)
	slices.SortStableFunc(order, func(a, b *mnode) int { return counts[b.id] - counts[a.id] })
	base, rem := SlotCount/len(masters), SlotCount%len(masters)
	t := map[string]int{}
	for i, n := range order {
		t[n.id] = base
		if i < rem {
			t[n.id]++
		}
	}
	return t
}

// meets introduces every member that is not in the cluster yet, or that
// the anchor or another member of the cluster does not know. The anchor is
// the core of the cluster: a master holding slots, else the first member.
func (p *planner) meets() {
	members := p.m.ordered(func(n *mnode) bool { return n.member() })
	anchor := p.anchor(members)
	inCluster := map[*mnode]bool{}
	for _, n := range members {
		inCluster[n] = n == anchor || n.met && p.m.knows(n.id, anchor.id) && p.m.knows(anchor.id, n.id)
	}
	for _, n := range members {
		if n == anchor {
			continue
		}
		need := !inCluster[n]
		for _, m := range members {
			need = need || m != n && inCluster[m] && !p.m.knows(m.id, n.id)
		}
		if need {
			p.add(Meet{Node: n.ref(), Via: anchor.ref()})
			n.met = true
		}
	}
}

func (p *planner) anchor(members []*mnode) *mnode {
	counts := p.m.slotCounts()
	candidates := slices.Concat(p.masters, members)
	for _, holdsSlots := range []bool{true, false} {
		for _, n := range candidates {
			if n.met && (!holdsSlots || counts[n.id] > 0) {
				return n
			}
		}
	}
	return members[0]
}

// assignSlots gives unassigned slots to masters below their share, in
// contiguous ranges on a fresh cluster.
func (p *planner) assignSlots() {
	counts := p.m.slotCounts()
	var free []int
	for s, o := range p.m.owner {
		if o == "" {
			free = append(free, s)
		}
	}
	for _, n := range p.masters {
		need := min(p.target[n.id]-counts[n.id], len(free))
		if need <= 0 {
			continue
		}
		give := free[:need]
		free = free[need:]
		for _, s := range give {
			p.m.owner[s] = n.id
		}
		p.add(AssignSlots{Node: n.ref(), Ranges: Ranges(give)})
	}
}

// assignReplicas maps every member that is not a master to its master:
// a replica keeps its master while that master stays and has room, the
// others go to the master with the fewest replicas.
func (p *planner) assignReplicas() map[string]*mnode {
	isMaster := map[string]*mnode{}
	for _, n := range p.masters {
		isMaster[n.id] = n
	}
	count := map[string]int{}
	want := map[string]*mnode{}
	others := p.m.ordered(func(n *mnode) bool { return n.member() && isMaster[n.id] == nil })
	for _, n := range others {
		if m := isMaster[n.masterID]; !n.master && m != nil && count[m.id] < p.d.ReplicasPerMaster {
			want[n.id] = m
			count[m.id]++
		}
	}
	for _, n := range others {
		if want[n.id] != nil {
			continue
		}
		best := p.masters[0]
		for _, m := range p.masters[1:] {
			if count[m.id] < count[best.id] {
				best = m
			}
		}
		want[n.id] = best
		count[best.id]++
	}
	return want
}

// replicate attaches the replicas that pass now: before the migrations
// those that hold no slots (so new masters' replicas copy keys as they
// arrive), after them the drained masters (a master must be empty to
// become a replica).
func (p *planner) replicate(want map[string]*mnode, now func(*mnode) bool) {
	for _, n := range p.m.ordered(func(n *mnode) bool { return want[n.id] != nil && now(n) }) {
		m := want[n.id]
		if !n.master && n.masterID == m.id {
			continue
		}
		p.add(Replicate{Node: n.ref(), Master: m.ref()})
		n.master, n.masterID = false, m.id
	}
}

// migrate moves every slot of a node that is not a chosen master, and the
// excess of masters above their share (their highest slots), to masters
// below their share, in the masters' order.
func (p *planner) migrate() {
	counts := p.m.slotCounts()
	isMaster := map[string]bool{}
	for _, n := range p.masters {
		isMaster[n.id] = true
	}
	type give struct {
		from  *mnode
		slots []int
	}
	var gives []give
	for _, n := range p.m.ordered(func(n *mnode) bool { return !isMaster[n.id] && counts[n.id] > 0 }) {
		gives = append(gives, give{n, p.m.slotsOf(n.id)})
	}
	for _, n := range p.masters {
		if extra := counts[n.id] - p.target[n.id]; extra > 0 {
			slots := p.m.slotsOf(n.id)
			gives = append(gives, give{n, slots[len(slots)-extra:]})
		}
	}
	for _, g := range gives {
		p.moveFrom(g.from, g.slots, counts)
	}
}

// moveFrom hands slots of one node to the masters below their share, one
// MigrateSlots step per receiving master.
func (p *planner) moveFrom(from *mnode, slots []int, counts map[string]int) {
	for _, to := range p.masters {
		need := min(p.target[to.id]-counts[to.id], len(slots))
		if need <= 0 || to == from {
			continue
		}
		moved := slots[:need]
		slots = slots[need:]
		for _, s := range moved {
			p.m.owner[s] = to.id
		}
		counts[to.id] += need
		counts[from.id] -= need
		p.add(MigrateSlots{From: from.ref(), To: to.ref(), Ranges: Ranges(moved)})
	}
}

// forgetLeaving forgets every node that is not a member (pods scaled away,
// dead nodes), on every member. A node that still holds slots is never
// forgotten: its keys would go with it.
func (p *planner) forgetLeaving() {
	counts := p.m.slotCounts()
	on := p.m.refs(p.m.ordered(func(n *mnode) bool { return n.member() }))
	for _, n := range p.m.ordered(func(n *mnode) bool { return !n.member() && counts[n.id] == 0 }) {
		p.add(Forget{Node: n.ref(), On: on})
	}
}
