package rabbitmq

import (
	"fmt"
	"maps"
	"slices"
)

// Desired is what the spec asks of the broker: a direct exchange on a
// virtual host and durable queues bound to it, one routing key each.
type Desired struct {
	Vhost    string
	Exchange string
	Queues   []QueueBinding
}

// QueueBinding is one queue of the spec and the routing key that binds it.
type QueueBinding struct {
	Queue      string
	RoutingKey string
}

// Queue is a queue as the broker reports it.
type Queue struct {
	Name      string
	Messages  int
	Consumers int
	// StatsKnown is false until the broker has reported the queue's
	// counts: then Messages and Consumers mean nothing.
	StatsKnown bool
}

// Binding binds the exchange to a queue. PropertiesKey is how the
// management API names it for deletion.
type Binding struct {
	Queue         string
	RoutingKey    string
	PropertiesKey string
}

// Record is what the operator has declared on the broker: queue -> routing
// keys it bound. It is the only licence to unbind or delete anything.
type Record struct {
	Queues map[string][]string `json:"queues"`
}

// Observed is what the broker has, as far as the plan cares.
type Observed struct {
	ExchangeExists bool
	Queues         map[string]Queue
	Bindings       []Binding // from the Desired exchange to queues
	Record         Record
}

// StepKind names what a step does.
type StepKind string

// Step kinds, in the order a plan runs them for one queue.
const (
	StepDeclareExchange StepKind = "DeclareExchange"
	StepDeclareQueue    StepKind = "DeclareQueue"
	StepBind            StepKind = "Bind"
	StepUnbind          StepKind = "Unbind"
	StepDeleteQueue     StepKind = "DeleteQueue"
)

// Step is one call to the broker.
type Step struct {
	Kind    StepKind
	Queue   string
	Binding Binding // Bind, Unbind
}

func (s Step) String() string {
	switch s.Kind {
	case StepDeclareExchange:
		return "declare exchange"
	case StepDeclareQueue:
		return fmt.Sprintf("declare queue %s", s.Queue)
	case StepBind:
		return fmt.Sprintf("bind queue %s with routing key %q", s.Queue, s.Binding.RoutingKey)
	case StepUnbind:
		return fmt.Sprintf("unbind queue %s from routing key %q", s.Queue, s.Binding.RoutingKey)
	case StepDeleteQueue:
		return fmt.Sprintf("delete queue %s (removed from spec.queues, empty, no consumer)", s.Queue)
	}
	return string(s.Kind)
}

// Kept is a queue removed from the spec that the plan keeps because it may
// still hold messages or serve consumers.
type Kept struct {
	Queue      string
	Messages   int
	Consumers  int
	StatsKnown bool
}

// String is the sentence the platform's status and events carry.
func (k Kept) String() string {
	switch {
	case !k.StatsKnown:
		return fmt.Sprintf("queue %s was removed from spec.queues; it is kept until the broker reports it empty", k.Queue)
	case k.Messages > 0:
		return fmt.Sprintf("queue %s was removed from spec.queues but still holds %d messages: add it back to drain it, or purge it by hand", k.Queue, k.Messages)
	case k.Consumers > 0:
		return fmt.Sprintf("queue %s was removed from spec.queues but still has %d consumers: it is deleted once they are gone", k.Queue, k.Consumers)
	}
	return fmt.Sprintf("queue %s was removed from spec.queues; the broker refused to delete it (not empty or in use): add it back to drain it, or purge it by hand", k.Queue)
}

// Plan is what NewPlan decides.
type Plan struct {
	Steps []Step
	Kept  []Kept
	// Intent is the record to write before any step: the old one and every
	// desired queue and key, so a step that succeeds is on record even if
	// the pass stops right after it.
	Intent Record
	// Record is the record once every step succeeded.
	Record Record
}

// NewPlan compares the desired queues with the broker's and orders the
// steps: the exchange, then per desired queue declare, bind, unbind stale
// keys (after the new one is bound), then removed queues, deleted only when
// empty. See the package comment for the rules.
func NewPlan(d Desired, o Observed) Plan {
	plan := Plan{Intent: copyRecord(o.Record), Record: Record{Queues: map[string][]string{}}}
	bound := boundKeys(o.Bindings)
	if !o.ExchangeExists {
		plan.Steps = append(plan.Steps, Step{Kind: StepDeclareExchange})
	}
	desired := map[string]bool{}
	for _, q := range d.Queues {
		desired[q.Queue] = true
		plan.Intent.Queues[q.Queue] = addKey(plan.Intent.Queues[q.Queue], q.RoutingKey)
		plan.Record.Queues[q.Queue] = []string{q.RoutingKey}
		if _, ok := o.Queues[q.Queue]; !ok {
			plan.Steps = append(plan.Steps, Step{Kind: StepDeclareQueue, Queue: q.Queue})
		}
		if _, ok := bound[q.Queue][q.RoutingKey]; !ok {
			plan.Steps = append(plan.Steps, Step{Kind: StepBind, Queue: q.Queue,
				Binding: Binding{Queue: q.Queue, RoutingKey: q.RoutingKey}})
		}
		for _, key := range o.Record.Queues[q.Queue] {
			if b, ok := bound[q.Queue][key]; ok && key != q.RoutingKey {
				plan.Steps = append(plan.Steps, Step{Kind: StepUnbind, Queue: q.Queue, Binding: b})
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(o.Record.Queues)) {
		if desired[name] {
			continue
		}
		q, exists := o.Queues[name]
		switch {
		case !exists:
			// Deleted by someone else: nothing left to answer for.
		case q.StatsKnown && q.Messages == 0 && q.Consumers == 0:
			plan.Steps = append(plan.Steps, Step{Kind: StepDeleteQueue, Queue: name})
		default:
			plan.Kept = append(plan.Kept, Kept{Queue: name, Messages: q.Messages, Consumers: q.Consumers, StatsKnown: q.StatsKnown})
			plan.Record.Queues[name] = slices.Clone(o.Record.Queues[name])
		}
	}
	return plan
}

// boundKeys indexes bindings by queue and routing key.
func boundKeys(bindings []Binding) map[string]map[string]Binding {
	out := map[string]map[string]Binding{}
	for _, b := range bindings {
		if out[b.Queue] == nil {
			out[b.Queue] = map[string]Binding{}
		}
		out[b.Queue][b.RoutingKey] = b
	}
	return out
}

func addKey(keys []string, key string) []string {
	if slices.Contains(keys, key) {
		return keys
	}
	return append(slices.Clone(keys), key)
}

func copyRecord(r Record) Record {
	out := Record{Queues: map[string][]string{}}
	for q, keys := range r.Queues {
		out.Queues[q] = slices.Clone(keys)
	}
	return out
}

// Equal tells whether two records name the same queues and keys, in any order.
func (r Record) Equal(o Record) bool {
	if len(r.Queues) != len(o.Queues) {
		return false
	}
	for q, keys := range r.Queues {
		other, ok := o.Queues[q]
		if !ok || !slices.Equal(slices.Sorted(slices.Values(keys)), slices.Sorted(slices.Values(other))) {
			return false
		}
	}
	return true
}
