package rediscluster

import (
	"context"
	"fmt"
)

// Result is what Converge did, for logs, status and tests.
type Result struct {
	// Topology is the last observation: the cluster as it is now.
	Topology *Topology
	// Rounds counts the observe-plan-execute passes, Steps the steps run.
	Rounds, Steps int
	// SlotsToMove are the slots the first plan had to move: where a
	// migration stood when this call began.
	SlotsToMove int
}

// Converge observes, plans and executes until a plan comes out empty, at
// most maxRounds times. More than one round is normal: Redis reacts to
// some steps on its own (a drained master turns into a replica of the node
// that took its last slot), and the next plan puts that right.
func Converge(ctx context.Context, e *Executor, d Desired, maxRounds int) (Result, error) {
	var res Result
	for res.Rounds < maxRounds {
		res.Topology = Observe(ctx, e.Conn, d.Pods)
		plan, err := NewPlan(res.Topology, d)
		if err != nil {
			return res, err
		}
		if res.Rounds == 0 {
			res.SlotsToMove = plan.SlotsToMove()
		}
		if plan.Empty() {
			return res, nil
		}
		res.Rounds++
		res.Steps += len(plan.Steps)
		if err := e.Execute(ctx, plan); err != nil {
			return res, err
		}
	}
	res.Topology = Observe(ctx, e.Conn, d.Pods)
	plan, err := NewPlan(res.Topology, d)
	if err != nil {
		return res, err
	}
	if !plan.Empty() {
		return res, fmt.Errorf("not converged after %d rounds; still planned:\n%s", maxRounds, plan)
	}
	return res, nil
}
