package rediscluster

import (
	"maps"
	"slices"
)

// Summary is what the platform's status reports about the cache cluster,
// and what CacheReady is computed from.
type Summary struct {
	// Nodes is how many nodes answered.
	Nodes int
	// Masters is how many masters hold slots.
	Masters int
	// SlotsAssigned counts the slots some node holds (16384 when formed).
	SlotsAssigned int
	// OpenSlots counts slots left migrating or importing.
	OpenSlots int
	// Unreachable are the addresses that did not answer.
	Unreachable []string
	// StateOK is true when every node that answered reports cluster_state:ok.
	StateOK bool
}

// Healthy is true when the cluster is formed, every slot is served, no slot
// is open and every node answers: the meaning of CacheReady=True together
// with an empty plan.
func (s Summary) Healthy() bool {
	return s.SlotsAssigned == SlotCount && s.OpenSlots == 0 && s.StateOK && len(s.Unreachable) == 0 && s.Nodes > 0
}

// Summary condenses the observation for status.
func (t *Topology) Summary() Summary {
	m := newModel(t, nil)
	counts := m.slotCounts()
	s := Summary{
		Nodes: len(t.Views), OpenSlots: len(m.open), StateOK: len(t.Views) > 0,
		Unreachable: slices.Sorted(maps.Keys(t.Unreachable)),
	}
	for _, c := range counts {
		s.SlotsAssigned += c
		s.Masters++
	}
	for _, v := range t.Views {
		if v.State != "ok" {
			s.StateOK = false
		}
	}
	return s
}
