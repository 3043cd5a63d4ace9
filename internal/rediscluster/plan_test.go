package rediscluster

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// tn describes one node of a literal topology for the planner tests. Every
// node that answers sees itself (with its open slots) and every other node
// that is not alone.
type tn struct {
	id     string
	pod    int    // address c-<pod>:6379
	master string // the master's ID for a replica
	slots  string // "0-5461 7"
	open   string // myself-only tokens: "[5->-n6] [7-<-n0]"
	epoch  int
	down   bool     // does not answer; recorded as unreachable
	gone   bool     // does not answer: its pod answers with another node
	fail   bool     // the others flag it fail
	alone  bool     // a fresh node: knows nobody, nobody knows it
	stale  []string // peers this node flags fail and disconnected
}

func podAddr(i int) string { return fmt.Sprintf("c-%d:6379", i) }

func pods(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = podAddr(i)
	}
	return out
}

func (n tn) line(myself, fail bool) string {
	flags := "master"
	master := "-"
	if n.master != "" {
		flags, master = "slave", n.master
	}
	if fail {
		flags += ",fail"
	}
	if myself {
		flags = "myself," + flags
	}
	link := "connected"
	if fail {
		link = "disconnected"
	}
	l := fmt.Sprintf("%s 10.0.0.%d:6379@16379,c-%d %s %s 0 0 %d %s %s", n.id, n.pod+1, n.pod, flags, master, n.epoch, link, n.slots)
	if myself {
		l += " " + n.open
	}
	return l
}

func topology(t *testing.T, nodes ...tn) *Topology {
	t.Helper()
	top := &Topology{Views: map[string]*View{}, Unreachable: map[string]string{}}
	for _, n := range nodes {
		switch {
		case n.gone:
			continue
		case n.down:
			top.Unreachable[podAddr(n.pod)] = "connection refused"
			continue
		}
		lines := []string{n.line(true, false)}
		for _, p := range nodes {
			if p.id != n.id && !p.alone && !n.alone {
				lines = append(lines, p.line(false, p.fail || contains(n.stale, p.id)))
			}
		}
		v, err := NewView(podAddr(n.pod), strings.Join(lines, "\n"))
		if err != nil {
			t.Fatal(err)
		}
		v.State = "ok"
		top.Views[podAddr(n.pod)] = v
	}
	return top
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// short prints a step compactly for the tables.
func short(s Step) string {
	ids := func(refs []NodeRef) string {
		out := make([]string, len(refs))
		for i, r := range refs {
			out[i] = r.ID
		}
		return strings.Join(out, ",")
	}
	switch s := s.(type) {
	case FixOpenSlot:
		switch s.Final.ID {
		case "":
			return fmt.Sprintf("fix %s clear open[%s]", formatRanges(s.Ranges), ids(s.Open))
		case s.Owner.ID:
			return fmt.Sprintf("fix %s keep %s open[%s]", formatRanges(s.Ranges), s.Owner.ID, ids(s.Open))
		}
		return fmt.Sprintf("fix %s %s->%s open[%s]", formatRanges(s.Ranges), s.Owner.ID, s.Final.ID, ids(s.Open))
	case Failover:
		return fmt.Sprintf("failover %s over %s", s.Replica.ID, s.Master.ID)
	case Reset:
		return "reset " + s.Node.ID
	case Meet:
		return fmt.Sprintf("meet %s via %s", s.Node.ID, s.Via.ID)
	case AssignSlots:
		return fmt.Sprintf("assign %s %s", s.Node.ID, formatRanges(s.Ranges))
	case Replicate:
		return fmt.Sprintf("replicate %s -> %s", s.Node.ID, s.Master.ID)
	case MigrateSlots:
		return fmt.Sprintf("migrate %s->%s %s", s.From.ID, s.To.ID, formatRanges(s.Ranges))
	case Forget:
		return fmt.Sprintf("forget %s on %s", s.Node.ID, ids(s.On))
	}
	return s.String()
}

// Layouts the tables reuse.
var (
	formed3x1 = []tn{
		{id: "n0", pod: 0, slots: "0-5461", epoch: 1},
		{id: "n1", pod: 1, slots: "5462-10922", epoch: 2},
		{id: "n2", pod: 2, slots: "10923-16383", epoch: 3},
		{id: "n3", pod: 3, master: "n0"},
		{id: "n4", pod: 4, master: "n1"},
		{id: "n5", pod: 5, master: "n2"},
	}
	fresh = func(ids ...int) []tn {
		var out []tn
		for _, i := range ids {
			out = append(out, tn{id: fmt.Sprintf("n%d", i), pod: i, alone: true})
		}
		return out
	}
	// joined6to9: pods 6..9 met, 6 and 7 empty masters with replicas 8, 9:
	// the scale-out to 5 masters after its Meet and Replicate steps.
	joined6to9 = []tn{
		{id: "n6", pod: 6}, {id: "n7", pod: 7},
		{id: "n8", pod: 8, master: "n6"}, {id: "n9", pod: 9, master: "n7"},
	}
	scaleOutMoves = []string{
		"migrate n0->n6 3278-5461",
		"migrate n1->n6 8739-9830",
		"migrate n1->n7 9831-10922",
		"migrate n2->n7 14200-16383",
	}
)

func with(base []tn, change func(n *tn)) []tn {
	out := make([]tn, len(base))
	for i, n := range base {
		change(&n)
		out[i] = n
	}
	return out
}

func TestPlan(t *testing.T) {
	all6 := "n0,n1,n2,n3,n4,n5"
	forgetLeaving := []string{
		"forget n6 on " + all6, "forget n7 on " + all6,
		"forget n8 on " + all6, "forget n9 on " + all6,
	}
	for _, tc := range []struct {
		name  string
		nodes []tn
		want  Desired
		steps []string
	}{{
		name:  "fresh 3x1: meet, every slot evenly, replicas on other pods",
		nodes: fresh(0, 1, 2, 3, 4, 5),
		want:  Desired{Pods: pods(6), Masters: 3, ReplicasPerMaster: 1},
		steps: []string{
			"meet n1 via n0", "meet n2 via n0", "meet n3 via n0", "meet n4 via n0", "meet n5 via n0",
			"assign n0 0-5461", "assign n1 5462-10922", "assign n2 10923-16383",
			"replicate n3 -> n0", "replicate n4 -> n1", "replicate n5 -> n2",
		},
	}, {
		name:  "fresh 3x0",
		nodes: fresh(0, 1, 2),
		want:  Desired{Pods: pods(3), Masters: 3},
		steps: []string{"meet n1 via n0", "meet n2 via n0", "assign n0 0-5461", "assign n1 5462-10922", "assign n2 10923-16383"},
	}, {
		name:  "formed: nothing to do",
		nodes: formed3x1,
		want:  Desired{Pods: pods(6), Masters: 3, ReplicasPerMaster: 1},
	}, {
		name: "formation cut after the first AssignSlots: the rest, the held slots untouched",
		nodes: []tn{
			{id: "n0", pod: 0, slots: "0-5461"}, {id: "n1", pod: 1}, {id: "n2", pod: 2},
			{id: "n3", pod: 3}, {id: "n4", pod: 4}, {id: "n5", pod: 5},
		},
		want:  Desired{Pods: pods(6), Masters: 3, ReplicasPerMaster: 1},
		steps: []string{"assign n1 5462-10922", "assign n2 10923-16383", "replicate n3 -> n0", "replicate n4 -> n1", "replicate n5 -> n2"},
	}, {
		name: "every pod restarted with a new IP: meet again, never re-create",
		nodes: with(formed3x1, func(n *tn) {
			n.stale = []string{"n0", "n1", "n2", "n3", "n4", "n5"}
		}),
		want:  Desired{Pods: pods(6), Masters: 3, ReplicasPerMaster: 1},
		steps: []string{"meet n1 via n0", "meet n2 via n0", "meet n3 via n0", "meet n4 via n0", "meet n5 via n0"},
	}, {
		name:  "scale out 3 -> 5 masters: new masters take an even share from the others",
		nodes: append(formed3x1, fresh(6, 7, 8, 9)...),
		want:  Desired{Pods: pods(10), Masters: 5, ReplicasPerMaster: 1},
		steps: []string{
			"meet n6 via n0", "meet n7 via n0", "meet n8 via n0", "meet n9 via n0",
			"replicate n8 -> n6", "replicate n9 -> n7",
			"migrate n0->n6 3277-5461", "migrate n1->n6 8739-9830", "migrate n1->n7 9831-10922", "migrate n2->n7 14200-16383",
		},
	}, {
		name: "scale in 5 -> 3 masters (sticky layout): leaving masters drain, then are forgotten",
		nodes: []tn{
			{id: "n0", pod: 0, slots: "0-3276"}, {id: "n1", pod: 1, slots: "5462-8738"}, {id: "n2", pod: 2, slots: "10923-14199"},
			{id: "n3", pod: 3, master: "n0"}, {id: "n4", pod: 4, master: "n1"}, {id: "n5", pod: 5, master: "n2"},
			{id: "n6", pod: 6, slots: "3277-5461 8739-9830"}, {id: "n7", pod: 7, slots: "9831-10922 14200-16383"},
			{id: "n8", pod: 8, master: "n6"}, {id: "n9", pod: 9, master: "n7"},
		},
		want: Desired{Pods: pods(6), Masters: 3, ReplicasPerMaster: 1},
		steps: append([]string{
			"migrate n6->n0 3277-5461", "migrate n6->n1 8739-9830", "migrate n7->n1 9831-10922", "migrate n7->n2 14200-16383",
		}, forgetLeaving...),
	}, {
		name: "scale in 5 -> 3 masters (first-ordinals layout): staying masters drain, then replicate",
		nodes: []tn{
			{id: "n0", pod: 0, slots: "0-3276"}, {id: "n1", pod: 1, slots: "3277-6553"}, {id: "n2", pod: 2, slots: "6554-9830"},
			{id: "n3", pod: 3, slots: "9831-13107"}, {id: "n4", pod: 4, slots: "13108-16383"},
			{id: "n5", pod: 5, master: "n0"}, {id: "n6", pod: 6, master: "n1"}, {id: "n7", pod: 7, master: "n2"},
			{id: "n8", pod: 8, master: "n3"}, {id: "n9", pod: 9, master: "n4"},
		},
		want: Desired{Pods: pods(6), Masters: 3, ReplicasPerMaster: 1},
		steps: append([]string{
			"migrate n3->n0 9831-12015", "migrate n3->n1 12016-13107", "migrate n4->n1 13108-14199", "migrate n4->n2 14200-16383",
			"replicate n3 -> n1", "replicate n4 -> n2",
		}, forgetLeaving...),
	}, {
		name: "3x2 -> 5x1: one new pod is not enough, a replica is reset into a master",
		nodes: append([]tn{
			{id: "n0", pod: 0, slots: "0-5461"}, {id: "n1", pod: 1, slots: "5462-10922"}, {id: "n2", pod: 2, slots: "10923-16383"},
			{id: "n3", pod: 3, master: "n0"}, {id: "n4", pod: 4, master: "n1"}, {id: "n5", pod: 5, master: "n2"},
			{id: "n6", pod: 6, master: "n0"}, {id: "n7", pod: 7, master: "n1"}, {id: "n8", pod: 8, master: "n2"},
		}, fresh(9)...),
		want: Desired{Pods: pods(10), Masters: 5, ReplicasPerMaster: 1},
		steps: []string{
			"reset n3", "meet n3 via n0", "meet n9 via n0",
			"replicate n7 -> n9", "replicate n8 -> n3",
			"migrate n0->n9 3277-5461", "migrate n1->n9 8739-9830", "migrate n1->n3 9831-10922", "migrate n2->n3 14200-16383",
		},
	}, {
		name: "killed after SETSLOT IMPORTING: finish into the destination first, then the rest",
		nodes: append(with(formed3x1, func(n *tn) {}), with(joined6to9, func(n *tn) {
			if n.id == "n6" {
				n.open = "[3277-<-n0]"
			}
		})...),
		want:  Desired{Pods: pods(10), Masters: 5, ReplicasPerMaster: 1},
		steps: append([]string{"fix 3277 n0->n6 open[]"}, scaleOutMoves...),
	}, {
		name: "killed mid-batch (both sides open): finish",
		nodes: append(with(formed3x1, func(n *tn) {
			if n.id == "n0" {
				n.open = "[3277->-n6]"
			}
		}), with(joined6to9, func(n *tn) {
			if n.id == "n6" {
				n.open = "[3277-<-n0]"
			}
		})...),
		want:  Desired{Pods: pods(10), Masters: 5, ReplicasPerMaster: 1},
		steps: append([]string{"fix 3277 n0->n6 open[]"}, scaleOutMoves...),
	}, {
		name: "killed between SETSLOT NODE on the destination and on the source: the source's state is cleared",
		nodes: append(with(formed3x1, func(n *tn) {
			if n.id == "n0" {
				n.open = "[3277->-n6]"
			}
		}), with(joined6to9, func(n *tn) {
			if n.id == "n6" {
				n.slots, n.epoch = "3277", 9
			}
		})...),
		want:  Desired{Pods: pods(10), Masters: 5, ReplicasPerMaster: 1},
		steps: append([]string{"fix 3277 keep n6 open[n0]"}, scaleOutMoves...),
	}, {
		name: "open slot toward a node that is leaving now: roll back, then forget",
		nodes: append(with(formed3x1, func(n *tn) {
			if n.id == "n0" {
				n.open = "[3277->-n6]"
			}
		}), with(joined6to9, func(n *tn) {
			if n.id == "n6" {
				n.open = "[3277-<-n0]"
			}
		})...),
		want:  Desired{Pods: pods(6), Masters: 3, ReplicasPerMaster: 1},
		steps: append([]string{"fix 3277 keep n0 open[n6]"}, forgetLeaving...),
	}, {
		name: "a replica whose master died (pod came back empty): it takes over, the empty pod replicates it",
		nodes: append(with(formed3x1, func(n *tn) {
			if n.id == "n0" {
				n.gone, n.fail = true, true
			}
		}), tn{id: "n0x", pod: 0, alone: true}),
		want: Desired{Pods: pods(6), Masters: 3, ReplicasPerMaster: 1},
		steps: []string{
			"failover n3 over n0", "forget n0 on n0x,n1,n2,n3,n4,n5",
			"meet n0x via n1", "replicate n0x -> n3",
		},
	}, {
		name: "a replica whose master died, after Redis failed over by itself",
		nodes: append(with(formed3x1, func(n *tn) {
			switch n.id {
			case "n0":
				n.gone, n.fail, n.slots = true, true, ""
			case "n3":
				n.master, n.slots, n.epoch = "", "0-5461", 7
			}
		}), tn{id: "n0x", pod: 0, alone: true}),
		want:  Desired{Pods: pods(6), Masters: 3, ReplicasPerMaster: 1},
		steps: []string{"forget n0 on n0x,n1,n2,n3,n4,n5", "meet n0x via n1", "replicate n0x -> n3"},
	}, {
		name: "a replica of a dead master that held no slots moves to the master short of a replica",
		nodes: []tn{
			{id: "n0", pod: 0, slots: "0-5461"}, {id: "n1", pod: 1, slots: "5462-10922"}, {id: "n2", pod: 2, slots: "10923-16383"},
			{id: "n3", pod: 3, master: "n9", epoch: 0}, {id: "n4", pod: 4, master: "n1"}, {id: "n5", pod: 5, master: "n2"},
			{id: "n9", pod: 9, gone: true, fail: true},
		},
		want:  Desired{Pods: pods(6), Masters: 3, ReplicasPerMaster: 1},
		steps: []string{"replicate n3 -> n0", "forget n9 on " + all6},
	}, {
		name: "a dead master without replica: its slots are lost with it and go to the new pod",
		nodes: append(with(formed3x1[:3], func(n *tn) {
			if n.id == "n0" {
				n.gone, n.fail = true, true
			}
		}), tn{id: "n0x", pod: 0, alone: true}),
		want: Desired{Pods: pods(3), Masters: 3},
		steps: []string{
			"forget n0 on n0x,n1,n2", "meet n0x via n1", "assign n1 0", "assign n0x 1-5461",
		},
	}, {
		name: "an open slot whose owner died: the replica takes over first, then the slot is finished",
		nodes: append(with(formed3x1, func(n *tn) {
			switch n.id {
			case "n0":
				n.gone, n.fail = true, true
			case "n1":
				n.open = "[7-<-n0]"
			}
		}), tn{id: "n0x", pod: 0, alone: true}),
		want: Desired{Pods: pods(6), Masters: 3, ReplicasPerMaster: 1},
		steps: []string{
			"failover n3 over n0", "fix 7 n3->n1 open[]", "forget n0 on n0x,n1,n2,n3,n4,n5",
			"meet n0x via n1", "replicate n0x -> n3",
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := NewPlan(topology(t, tc.nodes...), tc.want)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]string, len(plan.Steps))
			for i, s := range plan.Steps {
				got[i] = short(s)
			}
			if diff := cmp.Diff(tc.steps, got, cmpEmpty); diff != "" {
				t.Errorf("steps (-want +got):\n%s\nplan:\n%s", diff, plan)
			}
		})
	}
}

var cmpEmpty = cmp.Transformer("emptyNil", func(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
})

func TestPlanRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		nodes []tn
		want  Desired
		err   string
	}{{
		name:  "a desired pod does not answer",
		nodes: with(formed3x1, func(n *tn) { n.down = n.id == "n4" }),
		want:  Desired{Pods: pods(6), Masters: 3, ReplicasPerMaster: 1},
		err:   "c-4:6379: connection refused",
	}, {
		name: "a leaving master with slots does not answer, and the cluster does not think it failed",
		nodes: append(with(formed3x1, func(n *tn) {
			if n.id == "n2" {
				n.slots = "10923-16382"
			}
		}), tn{id: "n6", pod: 6, slots: "16383", down: true}),
		want: Desired{Pods: pods(6), Masters: 3, ReplicasPerMaster: 1},
		err:  "holds 1 slots",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewPlan(topology(t, tc.nodes...), tc.want)
			if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("NewPlan error = %v, want ErrUnreachable mentioning %q", err, tc.err)
			}
		})
	}
	for _, d := range []Desired{
		{Pods: pods(2), Masters: 3},
		{Pods: pods(3), Masters: 0},
		{Pods: pods(3), Masters: 3, ReplicasPerMaster: -1},
		{Pods: []string{"a:1", "b:1", "a:1"}, Masters: 3},
	} {
		if _, err := NewPlan(&Topology{}, d); err == nil {
			t.Errorf("NewPlan accepted %+v", d)
		}
	}
}

// TestSummary: what CacheReady is computed from.
func TestSummary(t *testing.T) {
	sum := topology(t, formed3x1...).Summary()
	if want := (Summary{Nodes: 6, Masters: 3, SlotsAssigned: SlotCount, StateOK: true}); !cmp.Equal(sum, want) || !sum.Healthy() {
		t.Errorf("formed: %+v (healthy %v), want %+v", sum, sum.Healthy(), want)
	}
	open := topology(t, with(formed3x1, func(n *tn) {
		if n.id == "n0" {
			n.open = "[5->-n1] [6->-n1]"
		}
	})...).Summary()
	if open.OpenSlots != 2 || open.Healthy() {
		t.Errorf("two open slots: %+v, healthy %v", open, open.Healthy())
	}
	partial := topology(t, with(formed3x1, func(n *tn) {
		if n.id == "n2" {
			n.slots = "10923-16382"
		}
		n.down = n.id == "n5"
	})...).Summary()
	if partial.SlotsAssigned != SlotCount-1 || len(partial.Unreachable) != 1 || partial.Healthy() {
		t.Errorf("a slot unassigned, a pod down: %+v, healthy %v", partial, partial.Healthy())
	}
}
