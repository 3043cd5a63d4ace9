package rediscluster

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestFormScaleOutScaleIn drives one cluster through the life the issue
// describes, on real redis-server processes: formed from empty (3 masters x
// 1 replica), 20,000 keys written, scaled out to 5 masters and back in to 3
// while a writer keeps writing, then every pod restarted. After each step
// every key written so far is read back, and the shape is checked.
func TestFormScaleOutScaleIn(t *testing.T) {
	s := newServers(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	s.start(6)
	d3 := Desired{Pods: s.addrs(6), Masters: 3, ReplicasPerMaster: 1}

	// (a) Formed from empty.
	rec := &kindRecorder{}
	res, took := converge(ctx, t, s, d3, rec.hook)
	top := assertFormed(ctx, t, s, d3)
	t.Logf("formed 3x1 from 6 empty nodes in %v (%d steps, %d rounds: %s): %s", took.Round(time.Millisecond), res.Steps, res.Rounds, rec, shares(top))
	logRounds(t, res, rec)
	for i, addr := range d3.Pods {
		if v := top.Views[addr]; v.Self.Flags.Master != (i < 3) {
			t.Errorf("pod %d is master=%v; a fresh cluster's masters are the first 3 ordinals", i, v.Self.Flags.Master)
		}
	}
	cc, red := clusterClient(t, s.pods[0].addr)
	const initial = 20000
	writeKeys(ctx, t, cc, "user_", initial)
	verifyKeys(ctx, t, cc, "user_", initial)

	// (b) 3 -> 5 masters while a writer writes.
	s.start(10)
	d5 := Desired{Pods: s.addrs(10), Masters: 5, ReplicasPerMaster: 1}
	w := startWriter(ctx, cc, "out:", 1_000_000)

	rec = &kindRecorder{}
	res, took = converge(ctx, t, s, d5, rec.hook)
	written, errs := w.stop()
	top = assertFormed(ctx, t, s, d5)
	moved, ask := red.get()
	t.Logf("scaled out 3 -> 5 masters in %v (%d steps, %d rounds: %s) while writing %d keys (%d MOVED, %d ASK redirections, %d errors): %s",
		took.Round(time.Millisecond), res.Steps, res.Rounds, rec, written, moved, ask, len(errs), shares(top))
	logRounds(t, res, rec)
	assertNoErrors(t, errs)
	verifyKeys(ctx, t, cc, "user_", initial)
	verifyKeys(ctx, t, cc, "out:", written)
	if ask == 0 || written == 0 {
		t.Errorf("the writer saw %d ASK redirections in %d keys: it did not write during a migration", ask, written)
	}

	// (c) 5 -> 3 masters while a writer writes; then the pods go.
	leaving := Observe(ctx, NewConnector(s.resolver(), testPassword), s.addrs(10))
	w = startWriter(ctx, cc, "in:", 1_000_000)
	rec = &kindRecorder{}
	res, took = converge(ctx, t, s, d3, rec.hook)
	writtenIn, errs := w.stop()
	top = assertFormed(ctx, t, s, d3)
	moved2, ask2 := red.get()
	t.Logf("scaled in 5 -> 3 masters in %v (%d steps, %d rounds: %s) while writing %d keys (%d MOVED, %d ASK redirections, %d errors): %s",
		took.Round(time.Millisecond), res.Steps, res.Rounds, rec, writtenIn, moved2-moved, ask2-ask, len(errs), shares(top))
	logRounds(t, res, rec)
	assertNoErrors(t, errs)
	assertLeft(ctx, t, s, leaving, top)
	verifyKeys(ctx, t, cc, "user_", initial)
	verifyKeys(ctx, t, cc, "out:", written)
	verifyKeys(ctx, t, cc, "in:", writtenIn)
	// The StatefulSet shrinks: the pods go. A client started now (one that
	// never knew pods 6-9) finds every key.
	s.stop(6)
	cc, _ = clusterClient(t, s.pods[0].addr)
	verifyKeys(ctx, t, cc, "user_", initial)
	verifyKeys(ctx, t, cc, "out:", written)
	verifyKeys(ctx, t, cc, "in:", writtenIn)
	t.Logf("verified %d keys after scale-in and removal of pods 6-9 (%d initial, %d written during scale-out, %d during scale-in)",
		initial+written+writtenIn, initial, written, writtenIn)

	// A restart of every pod (or a scale to zero and back) keeps the
	// cluster: the same nodes hold the same slots, nothing is re-assigned.
	before := slotOwners(top)
	s.restart()
	rec = &kindRecorder{}
	_, took = converge(ctx, t, s, d3, rec.hook)
	top = assertFormed(ctx, t, s, d3)
	t.Logf("after every pod restarted: converged in %v: %s", took.Round(time.Millisecond), rec)
	for _, k := range []StepKind{KindAssignSlots, KindMigrateSlots, KindReset, KindForget} {
		if rec.kinds[k] > 0 {
			t.Errorf("after a restart the plan ran %d %s steps; it must only re-join nodes", rec.kinds[k], k)
		}
	}
	if after := slotOwners(top); after != before {
		t.Errorf("slot owners changed across the restart:\nbefore %s\nafter  %s", before, after)
	}
}

// assertLeft: the nodes of pods 6-9 hold no slots and no remaining node
// knows them.
func assertLeft(ctx context.Context, t *testing.T, s *servers, before, after *Topology) {
	t.Helper()
	conn := NewConnector(s.resolver(), testPassword)
	defer func() { _ = conn.Close() }()
	for i := 6; i < 10; i++ {
		addr := s.pods[i].addr
		old := before.Views[addr]
		v, err := observeNode(ctx, conn, addr)
		if err != nil {
			t.Fatalf("pod %d: %v", i, err)
		}
		if v.Self.ID != old.Self.ID || v.Self.SlotCount() > 0 || len(v.Self.Migrating)+len(v.Self.Importing) > 0 {
			t.Errorf("removed pod %d: node %s (was %s) holds %d slots, %d open", i, v.Self.ID, old.Self.ID, v.Self.SlotCount(), len(v.Self.Migrating)+len(v.Self.Importing))
		}
		for _, remaining := range after.Views {
			for _, p := range remaining.Peers {
				if p.ID == old.Self.ID {
					t.Errorf("%s still knows removed node %s (pod %d)", remaining.Addr, p.ID, i)
				}
			}
		}
	}
}

// slotOwners prints which node ID holds which slots.
func slotOwners(top *Topology) string {
	var out string
	for _, addr := range sortedKeys(top.Views) {
		if v := top.Views[addr]; len(v.Self.Slots) > 0 {
			out += v.Self.ID[:8] + ":" + formatRanges(v.Self.Slots) + " "
		}
	}
	return out
}

// logRounds lists the steps when Converge needed more than one round, to
// show what Redis changed on its own.
func logRounds(t *testing.T, res Result, rec *kindRecorder) {
	t.Helper()
	if res.Rounds > 1 {
		t.Logf("%d rounds; steps run:\n  %s", res.Rounds, strings.Join(rec.steps, "\n  "))
	}
}

func assertNoErrors(t *testing.T, errs []error) {
	t.Helper()
	for i, err := range errs {
		if i == 5 {
			t.Errorf("... %d errors in all", len(errs))
			break
		}
		t.Errorf("the writer got an error: %v", err)
	}
}
