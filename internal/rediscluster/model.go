package rediscluster

import (
	"maps"
	"slices"
)

// model is the planner's picture of the cluster, built from a Topology and
// changed step by step as the plan is written, so that each stage plans on
// the state the earlier stages leave.
type model struct {
	nodes map[string]*mnode
	views map[string]*View // by node ID, reachable nodes only
	owner [SlotCount]string
	open  map[int]*openSlot
}

type mnode struct {
	id, addr  string
	pod       int // ordinal in Desired.Pods; -1 for a node no desired pod answered with
	reachable bool
	master    bool
	masterID  string
	epoch     uint64
	// dead: unreachable and flagged fail by the cluster, or its pod now
	// answers with another node ID (the pod lost its nodes.conf).
	dead bool
	// met is false for a node that must be introduced to the cluster.
	met bool
}

// openSlot is the open state of one slot on the reachable nodes.
type openSlot struct {
	migrating map[string]string // node ID -> destination ID
	importing map[string]string // node ID -> source ID
}

func (n *mnode) ref() NodeRef { return NodeRef{ID: n.id, Addr: n.addr} }

// member: a reachable node at a desired pod, which the cluster keeps.
func (n *mnode) member() bool { return n.reachable && n.pod >= 0 }

func newModel(t *Topology, pods []string) *model {
	m := &model{nodes: map[string]*mnode{}, views: map[string]*View{}, open: map[int]*openSlot{}}
	ordinal := map[string]int{}
	for i, p := range pods {
		ordinal[p] = i
	}
	podOf := func(addr string) int {
		if i, ok := ordinal[addr]; ok {
			return i
		}
		return -1
	}
	addrs := slices.Sorted(maps.Keys(t.Views))
	for _, addr := range addrs {
		v := t.Views[addr]
		if _, dup := m.nodes[v.Self.ID]; dup {
			continue
		}
		m.views[v.Self.ID] = v
		m.nodes[v.Self.ID] = &mnode{
			id: v.Self.ID, addr: addr, pod: podOf(addr), reachable: true, met: true,
			master: v.Self.Flags.Master, masterID: v.Self.MasterID, epoch: v.Self.ConfigEpoch,
		}
	}
	answered := map[string]string{} // address -> node ID answering there
	for _, addr := range addrs {
		answered[addr] = t.Views[addr].Self.ID
	}
	for _, addr := range addrs {
		for _, p := range t.Views[addr].Peers {
			m.addPeer(p, podOf, answered)
		}
	}
	m.readSlots(addrs, t)
	return m
}

// addPeer records a node only known from a peer line: one nobody could
// reach. It is dead when the cluster agrees it failed, or when its address
// answers with another node ID.
func (m *model) addPeer(p Node, podOf func(string) int, answered map[string]string) {
	if p.Flags.Handshake || p.Flags.NoAddr {
		return
	}
	if n, ok := m.nodes[p.ID]; ok {
		if !n.reachable && p.Flags.Fail {
			n.dead = true
		}
		return
	}
	addr := p.Addr()
	other, replaced := answered[addr]
	m.nodes[p.ID] = &mnode{
		id: p.ID, addr: addr, pod: podOf(addr), master: p.Flags.Master, masterID: p.MasterID,
		epoch: p.ConfigEpoch, met: true, dead: p.Flags.Fail || (replaced && other != p.ID),
	}
	if replaced && other != p.ID {
		m.nodes[p.ID].pod = -1 // the pod is someone else now
	}
}

// readSlots takes each reachable node's own claims as the truth; a slot two
// nodes claim goes to the higher config epoch, as Redis resolves it. Slots
// no reachable node claims keep the owner peers report (an unreachable
// node). Open slots come from the reachable nodes' own lines.
func (m *model) readSlots(addrs []string, t *Topology) {
	for _, addr := range addrs {
		self := t.Views[addr].Self
		for _, s := range Slots(self.Slots) {
			if cur := m.owner[s]; cur == "" || m.nodes[cur].epoch < self.ConfigEpoch {
				m.owner[s] = self.ID
			}
		}
		for s, to := range self.Migrating {
			m.openSlot(s).migrating[self.ID] = to
		}
		for s, from := range self.Importing {
			m.openSlot(s).importing[self.ID] = from
		}
	}
	for _, addr := range addrs {
		for _, p := range t.Views[addr].Peers {
			if n := m.nodes[p.ID]; n == nil || n.reachable {
				continue
			}
			for _, s := range Slots(p.Slots) {
				if m.owner[s] == "" {
					m.owner[s] = p.ID
				}
			}
		}
	}
}

func (m *model) openSlot(s int) *openSlot {
	o := m.open[s]
	if o == nil {
		o = &openSlot{migrating: map[string]string{}, importing: map[string]string{}}
		m.open[s] = o
	}
	return o
}

// ordered lists nodes as plans name them: desired pods by ordinal, then
// the others by address, so a plan is deterministic.
func (m *model) ordered(keep func(*mnode) bool) []*mnode {
	var out []*mnode
	for _, n := range m.nodes {
		if keep(n) {
			out = append(out, n)
		}
	}
	slices.SortFunc(out, func(a, b *mnode) int {
		switch {
		case a.pod >= 0 && b.pod >= 0:
			return a.pod - b.pod
		case a.pod >= 0:
			return -1
		case b.pod >= 0:
			return 1
		case a.addr != b.addr:
			if a.addr < b.addr {
				return -1
			}
			return 1
		}
		if a.id < b.id {
			return -1
		}
		return 1
	})
	return out
}

// slotsOf lists the slots the model gives to id, ascending.
func (m *model) slotsOf(id string) []int {
	var out []int
	for s, o := range m.owner {
		if o == id {
			out = append(out, s)
		}
	}
	return out
}

func (m *model) slotCounts() map[string]int {
	c := map[string]int{}
	for _, o := range m.owner {
		if o != "" {
			c[o]++
		}
	}
	return c
}

// knows: a's own view lists b as a healthy peer (not failed, not in
// handshake), so the two gossip.
func (m *model) knows(a, b string) bool {
	v := m.views[a]
	if v == nil {
		return false
	}
	for _, p := range v.Peers {
		if p.ID == b {
			return !p.Flags.Fail && !p.Flags.Handshake && !p.Flags.NoAddr
		}
	}
	return false
}

func (m *model) refs(nodes []*mnode) []NodeRef {
	out := make([]NodeRef, len(nodes))
	for i, n := range nodes {
		out[i] = n.ref()
	}
	return out
}
