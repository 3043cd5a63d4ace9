package rediscluster

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Phase names a point in the execution where the Hook is called: between
// steps, and between the commands of a slot migration, which is where an
// operator killed mid-way leaves the cluster.
type Phase string

// The phases, in the order a migration passes them.
const (
	// PhaseStep: before a step starts.
	PhaseStep Phase = "step"
	// PhaseImporting: SETSLOT IMPORTING sent to the destination for a chunk
	// of slots, MIGRATING not yet sent to the source.
	PhaseImporting Phase = "importing"
	// PhaseMigrating: SETSLOT MIGRATING sent to the source, no key moved.
	PhaseMigrating Phase = "migrating"
	// PhaseBatch: before one MIGRATE batch (Event.Batch counts them).
	PhaseBatch Phase = "batch"
	// PhaseSetSlot: every key of the chunk moved, before SETSLOT NODE.
	PhaseSetSlot Phase = "setslot"
	// PhaseSetSlotDestination: SETSLOT NODE sent to the destination only.
	PhaseSetSlotDestination Phase = "setslot-destination"
	// PhaseDone: a step finished.
	PhaseDone Phase = "done"
)

// Event tells the Hook where the executor is.
type Event struct {
	// Phase is where the executor is.
	Phase Phase
	// Index is the step's position in the plan.
	Index int
	// Step is the step being run.
	Step Step
	// Slots are the slots the phase works on (a chunk of a migration).
	Slots []SlotRange
	// Batch counts the MIGRATE batches of the step so far, from 1.
	Batch int
	// Keys is the size of this batch.
	Keys int
}

// Hook is called at every Phase. The operator uses it for events and
// metrics per step; tests use it to stop the executor at an exact point (an
// error aborts the execution there, as a killed process would).
type Hook func(ctx context.Context, ev Event) error

// Executor runs plans against the cluster over the Redis protocol. Every
// step re-reads the state it acts on, so running a step twice, or the rest
// of a plan after a crash, does no harm; the next NewPlan sees what is left.
type Executor struct {
	// Conn reaches the nodes.
	Conn *Connector
	// Hook, when set, is called at every Phase.
	Hook Hook
	// SlotsPerChunk is how many slots migrate together (opened, drained,
	// assigned with one pipeline each). Default 128.
	SlotsPerChunk int
	// KeysPerBatch is how many keys one MIGRATE moves. Default 100.
	KeysPerBatch int
	// MigrateTimeout is MIGRATE's own timeout. Default 5s.
	MigrateTimeout time.Duration
	// Wait bounds every wait for gossip (a met node to appear, a failover
	// to finish). Default 30s.
	Wait time.Duration
}

// Execute runs the plan's steps in order and stops at the first error,
// leaving the cluster in a state the next plan resumes from.
func (e *Executor) Execute(ctx context.Context, plan *Plan) error {
	met := false
	for i, s := range plan.Steps {
		if _, meet := s.(Meet); met && !meet {
			if err := e.waitViewsAgree(ctx, plan.Members); err != nil {
				return fmt.Errorf("after step %d: %w", i, err)
			}
		}
		_, met = s.(Meet)
		run := &stepRun{e: e, plan: plan, index: i, step: s}
		if err := run.hook(ctx, Event{Phase: PhaseStep}); err != nil {
			return err
		}
		if err := run.do(ctx); err != nil {
			return fmt.Errorf("step %d, %s: %w", i+1, s, err)
		}
		if err := run.hook(ctx, Event{Phase: PhaseDone}); err != nil {
			return err
		}
	}
	if met {
		return e.waitViewsAgree(ctx, plan.Members)
	}
	return nil
}

// stepRun is one step being executed, with what its hooks report.
type stepRun struct {
	e       *Executor
	plan    *Plan
	index   int
	step    Step
	batches int
}

func (r *stepRun) hook(ctx context.Context, ev Event) error {
	if r.e.Hook == nil {
		return nil
	}
	ev.Index, ev.Step = r.index, r.step
	return r.e.Hook(ctx, ev)
}

func (r *stepRun) do(ctx context.Context) error {
	switch s := r.step.(type) {
	case FixOpenSlot:
		return r.fixOpenSlot(ctx, s)
	case Failover:
		return r.failover(ctx, s)
	case Reset:
		return r.cmd(ctx, s.Node.Addr, "CLUSTER", "RESET", "SOFT")
	case Meet:
		return r.meet(ctx, s)
	case AssignSlots:
		return r.assignSlots(ctx, s)
	case Replicate:
		return r.replicate(ctx, s)
	case MigrateSlots:
		return r.migrate(ctx, s.From, s.To, Slots(s.Ranges))
	case Forget:
		return r.forget(ctx, s)
	}
	return fmt.Errorf("unknown step %T", r.step)
}

func (r *stepRun) cmd(ctx context.Context, addr string, args ...any) error {
	if err := r.e.Conn.Client(addr).Do(ctx, args...).Err(); err != nil {
		return fmt.Errorf("%s at %s: %w", strings.TrimSpace(fmt.Sprintln(args...)), addr, err)
	}
	return nil
}

// claims: n's line lists slot among its slots.
func claims(n Node, slot int) bool {
	for _, r := range n.Slots {
		if slot >= r.Start && slot <= r.End {
			return true
		}
	}
	return false
}
