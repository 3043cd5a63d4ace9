package rabbitmq

import (
	"context"
	"fmt"
)

// Management is what Sync needs of the broker's management API. Client
// implements it over HTTP; the interface keeps the controller testable.
type Management interface {
	ExchangeExists(ctx context.Context, vhost, exchange string) (bool, error)
	Queues(ctx context.Context, vhost string) ([]Queue, error)
	Bindings(ctx context.Context, vhost, exchange string) ([]Binding, error)
	Record(ctx context.Context) (Record, error)

	DeclareExchange(ctx context.Context, vhost, exchange string) error
	DeclareQueue(ctx context.Context, vhost, queue string) error
	Bind(ctx context.Context, vhost, exchange string, b Binding) error
	Unbind(ctx context.Context, vhost, exchange string, b Binding) error
	// DeleteQueueIfIdle deletes the queue only if the broker finds it empty
	// and unused at that moment; deleted is false when it refused.
	DeleteQueueIfIdle(ctx context.Context, vhost, queue string) (deleted bool, err error)
	SetRecord(ctx context.Context, r Record) error
}

// Result is what one Sync did and left.
type Result struct {
	Done []Step // the steps that ran, in order
	Kept []Kept // removed queues held back, sorted by name
}

// Hook is told of every step that succeeded (the controller turns them into
// events).
type Hook func(Step)

// Sync makes the broker hold the desired queues and bindings: observe, plan,
// run. It stops at the first failing call; every step is idempotent, so the
// next Sync resumes.
func Sync(ctx context.Context, m Management, d Desired, hook Hook) (Result, error) {
	o, err := Observe(ctx, m, d)
	if err != nil {
		return Result{}, err
	}
	plan := NewPlan(d, o)
	if !plan.Intent.Equal(o.Record) {
		if err := m.SetRecord(ctx, plan.Intent); err != nil {
			return Result{}, fmt.Errorf("recording the declared queues: %w", err)
		}
	}
	res := Result{Kept: plan.Kept}
	final := copyRecord(plan.Record)
	for _, step := range plan.Steps {
		kept, err := run(ctx, m, d, step)
		if err != nil {
			return res, fmt.Errorf("%s: %w", step, err)
		}
		if kept {
			// The broker saw a message or a consumer the statistics had not.
			res.Kept = append(res.Kept, Kept{Queue: step.Queue, StatsKnown: true})
			final.Queues[step.Queue] = plan.Intent.Queues[step.Queue]
			continue
		}
		res.Done = append(res.Done, step)
		if hook != nil {
			hook(step)
		}
	}
	if !final.Equal(plan.Intent) {
		if err := m.SetRecord(ctx, final); err != nil {
			return res, fmt.Errorf("recording the declared queues: %w", err)
		}
	}
	return res, nil
}

// Observe reads what the plan needs from the broker.
func Observe(ctx context.Context, m Management, d Desired) (Observed, error) {
	var o Observed
	var err error
	if o.ExchangeExists, err = m.ExchangeExists(ctx, d.Vhost, d.Exchange); err != nil {
		return o, fmt.Errorf("reading exchange %s: %w", d.Exchange, err)
	}
	queues, err := m.Queues(ctx, d.Vhost)
	if err != nil {
		return o, fmt.Errorf("listing queues: %w", err)
	}
	o.Queues = make(map[string]Queue, len(queues))
	for _, q := range queues {
		o.Queues[q.Name] = q
	}
	if o.ExchangeExists {
		if o.Bindings, err = m.Bindings(ctx, d.Vhost, d.Exchange); err != nil {
			return o, fmt.Errorf("listing the bindings of %s: %w", d.Exchange, err)
		}
	}
	if o.Record, err = m.Record(ctx); err != nil {
		return o, fmt.Errorf("reading the record of declared queues: %w", err)
	}
	return o, nil
}

// run makes one step's call; kept is true when the broker refused to delete
// a queue that is not idle.
func run(ctx context.Context, m Management, d Desired, s Step) (kept bool, err error) {
	switch s.Kind {
	case StepDeclareExchange:
		return false, m.DeclareExchange(ctx, d.Vhost, d.Exchange)
	case StepDeclareQueue:
		return false, m.DeclareQueue(ctx, d.Vhost, s.Queue)
	case StepBind:
		return false, m.Bind(ctx, d.Vhost, d.Exchange, s.Binding)
	case StepUnbind:
		return false, m.Unbind(ctx, d.Vhost, d.Exchange, s.Binding)
	case StepDeleteQueue:
		deleted, err := m.DeleteQueueIfIdle(ctx, d.Vhost, s.Queue)
		return err == nil && !deleted, err
	}
	return false, fmt.Errorf("unknown step kind %q", s.Kind)
}
