package rediscluster

import (
	"fmt"
	"strings"
)

// NodeRef names a node in a step: its ID, which cluster commands take, and
// its address, which the executor dials through the Resolver.
type NodeRef struct {
	// ID is the node's cluster ID, what CLUSTER commands name.
	ID string
	// Addr is the pod address the node answers at (hostname:port), what
	// the Resolver maps to something dialable.
	Addr string
}

// String prints the address and a short ID, enough to follow a plan in logs
// and events.
func (r NodeRef) String() string {
	id := r.ID
	if len(id) > 8 {
		id = id[:8]
	}
	if r.Addr == "" {
		return id
	}
	return r.Addr + "(" + id + ")"
}

// StepKind names a kind of step for events and metrics labels.
type StepKind string

// The step kinds, in the order a plan puts them.
const (
	KindFixOpenSlot  StepKind = "FixOpenSlot"
	KindFailover     StepKind = "Failover"
	KindReset        StepKind = "Reset"
	KindMeet         StepKind = "Meet"
	KindAssignSlots  StepKind = "AssignSlots"
	KindReplicate    StepKind = "Replicate"
	KindMigrateSlots StepKind = "MigrateSlots"
	KindForget       StepKind = "Forget"
)

// Step is one topology action of a Plan. The concrete types below are the
// only implementations; the executor switches on them.
type Step interface {
	Kind() StepKind
	String() string
}

// FixOpenSlot closes slots left migrating/importing by an interrupted
// migration, before anything else is planned. With Final != Owner the
// migration is finished (remaining keys move to Final, which then owns the
// slots); with Final == Owner it is rolled back (keys that reached the
// importing nodes move back). Open lists the other nodes with the slots
// open, whose keys move to Final before their open state is cleared.
type FixOpenSlot struct {
	// Ranges are the open slots this step closes, all in the same state.
	Ranges []SlotRange
	// Owner holds the slots now; zero when no reachable node does.
	Owner NodeRef
	// Final holds them when the step is done; zero when nobody can take
	// them, and the open state is only cleared.
	Final NodeRef
	// Open are the other nodes with the slots open (importing ones that
	// may hold keys that arrived by ASK).
	Open []NodeRef
}

// Failover promotes the replica of a dead master (CLUSTER FAILOVER
// TAKEOVER), so its slots are served again with the replica's copy.
type Failover struct {
	// Replica takes over; Master is the dead master it replicates.
	Replica, Master NodeRef
}

// Reset turns a replica into an empty master (CLUSTER RESET SOFT, which
// drops its copy) when there are not enough masters otherwise; a Meet
// follows, as the reset node forgets its peers.
type Reset struct {
	// Node is the replica that becomes an empty master.
	Node NodeRef
}

// Meet introduces Node to the cluster through Via (CLUSTER MEET with the
// resolved IP): new pods, reset nodes, and pods whose IP changed.
type Meet struct {
	// Node joins; Via is the member of the cluster that meets it first.
	Node, Via NodeRef
}

// AssignSlots gives slots nobody owns to a master (CLUSTER ADDSLOTSRANGE):
// every slot on a fresh cluster, or those of a dead master without replica.
type AssignSlots struct {
	// Node is the master that takes the slots.
	Node NodeRef
	// Ranges are slots no node holds.
	Ranges []SlotRange
}

// Replicate makes Node a replica of Master (CLUSTER REPLICATE).
type Replicate struct {
	// Node becomes (or stays) a replica of Master.
	Node, Master NodeRef
}

// MigrateSlots moves slots and their keys from one master to another:
// SETSLOT IMPORTING/MIGRATING, MIGRATE in batches, SETSLOT NODE.
type MigrateSlots struct {
	// From gives the slots and their keys to To.
	From, To NodeRef
	// Ranges are the slots that move.
	Ranges []SlotRange
}

// Forget removes a node from the cluster (CLUSTER FORGET on every node in
// On). The forgotten node itself is left as it is until its pod goes: it
// keeps a current view of the slots and redirects clients that still reach
// it (a reset node would answer CLUSTERDOWN), and nobody gossips with it.
type Forget struct {
	// Node is the node that leaves.
	Node NodeRef
	// On are the nodes that forget it: every member of the cluster.
	On []NodeRef
}

// Kind implements Step.
func (FixOpenSlot) Kind() StepKind { return KindFixOpenSlot }

// Kind implements Step.
func (Failover) Kind() StepKind { return KindFailover }

// Kind implements Step.
func (Reset) Kind() StepKind { return KindReset }

// Kind implements Step.
func (Meet) Kind() StepKind { return KindMeet }

// Kind implements Step.
func (AssignSlots) Kind() StepKind { return KindAssignSlots }

// Kind implements Step.
func (Replicate) Kind() StepKind { return KindReplicate }

// Kind implements Step.
func (MigrateSlots) Kind() StepKind { return KindMigrateSlots }

// Kind implements Step.
func (Forget) Kind() StepKind { return KindForget }

// String implements Step.
func (s FixOpenSlot) String() string {
	what := "finish"
	switch s.Final.ID {
	case "":
		what = "clear"
	case s.Owner.ID:
		what = "roll back"
	}
	return fmt.Sprintf("FixOpenSlot %s: %s (owner %s, final %s, open on %s)",
		formatRanges(s.Ranges), what, s.Owner, s.Final, refList(s.Open))
}

// String implements Step.
func (s Failover) String() string {
	return fmt.Sprintf("Failover %s takes over from dead master %s", s.Replica, s.Master)
}

// String implements Step.
func (s Reset) String() string { return fmt.Sprintf("Reset %s to an empty master", s.Node) }

// String implements Step.
func (s Meet) String() string { return fmt.Sprintf("Meet %s via %s", s.Node, s.Via) }

// String implements Step.
func (s AssignSlots) String() string {
	return fmt.Sprintf("AssignSlots %s (%d) to %s", formatRanges(s.Ranges), CountSlots(s.Ranges), s.Node)
}

// String implements Step.
func (s Replicate) String() string { return fmt.Sprintf("Replicate %s from %s", s.Node, s.Master) }

// String implements Step.
func (s MigrateSlots) String() string {
	return fmt.Sprintf("MigrateSlots %s (%d) from %s to %s", formatRanges(s.Ranges), CountSlots(s.Ranges), s.From, s.To)
}

// String implements Step.
func (s Forget) String() string {
	return fmt.Sprintf("Forget %s on %d nodes", s.Node, len(s.On))
}

func refList(refs []NodeRef) string {
	if len(refs) == 0 {
		return "-"
	}
	parts := make([]string, len(refs))
	for i, r := range refs {
		parts[i] = r.String()
	}
	return strings.Join(parts, ",")
}
