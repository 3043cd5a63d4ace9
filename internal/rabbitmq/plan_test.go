package rabbitmq

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func desired(pairs ...string) Desired {
	d := Desired{Vhost: "/", Exchange: "celery"}
	for i := 0; i+1 < len(pairs); i += 2 {
		d.Queues = append(d.Queues, QueueBinding{Queue: pairs[i], RoutingKey: pairs[i+1]})
	}
	return d
}

// idle and busy are queues with known counts.
func idle(name string) Queue { return Queue{Name: name, StatsKnown: true} }
func busy(name string, messages, consumers int) Queue {
	return Queue{Name: name, Messages: messages, Consumers: consumers, StatsKnown: true}
}

func observed(record map[string][]string, bindings []Binding, queues ...Queue) Observed {
	o := Observed{ExchangeExists: true, Queues: map[string]Queue{}, Bindings: bindings, Record: Record{Queues: record}}
	if o.Record.Queues == nil {
		o.Record.Queues = map[string][]string{}
	}
	for _, q := range queues {
		o.Queues[q.Name] = q
	}
	return o
}

func bind(queue, key string) Binding {
	return Binding{Queue: queue, RoutingKey: key, PropertiesKey: key}
}

func TestNewPlan(t *testing.T) {
	seed := desired("parser", "parser", "analytics", "analytics")
	seedBindings := []Binding{bind("parser", "parser"), bind("analytics", "analytics")}
	seedRecord := map[string][]string{"parser": {"parser"}, "analytics": {"analytics"}}
	for _, tc := range []struct {
		name       string
		d          Desired
		o          Observed
		steps      []string
		kept       []string
		record     map[string][]string
		intentOnly map[string][]string // Intent, when it differs from the observed record
	}{{
		name:   "in line: nothing to do, nothing to record",
		d:      seed,
		o:      observed(seedRecord, seedBindings, busy("parser", 200, 4), idle("analytics")),
		record: seedRecord,
	}, {
		name: "fresh broker: exchange, queues and bindings, in order",
		d:    seed,
		o:    Observed{Queues: map[string]Queue{}, Record: Record{Queues: map[string][]string{}}},
		steps: []string{"declare exchange", "declare queue parser", `bind queue parser with routing key "parser"`,
			"declare queue analytics", `bind queue analytics with routing key "analytics"`},
		record:     seedRecord,
		intentOnly: seedRecord,
	}, {
		name:   "booted from the definitions, nothing recorded yet: adopted, no call",
		d:      seed,
		o:      observed(nil, seedBindings, idle("parser"), idle("analytics")),
		record: seedRecord, intentOnly: seedRecord,
	}, {
		name:       "queue added",
		d:          desired("parser", "parser", "analytics", "analytics", "reports", "reports"),
		o:          observed(seedRecord, seedBindings, idle("parser"), idle("analytics")),
		steps:      []string{"declare queue reports", `bind queue reports with routing key "reports"`},
		record:     map[string][]string{"parser": {"parser"}, "analytics": {"analytics"}, "reports": {"reports"}},
		intentOnly: map[string][]string{"parser": {"parser"}, "analytics": {"analytics"}, "reports": {"reports"}},
	}, {
		name:       "routing key changed: the new key is bound before the old one goes; messages stay",
		d:          desired("parser", "parse.v2", "analytics", "analytics"),
		o:          observed(seedRecord, seedBindings, busy("parser", 200, 0), idle("analytics")),
		steps:      []string{`bind queue parser with routing key "parse.v2"`, `unbind queue parser from routing key "parser"`},
		record:     map[string][]string{"parser": {"parse.v2"}, "analytics": {"analytics"}},
		intentOnly: map[string][]string{"parser": {"parser", "parse.v2"}, "analytics": {"analytics"}},
	}, {
		name: "a binding the operator did not make is left alone",
		d:    seed,
		o: observed(seedRecord, append(seedBindings, bind("parser", "added-by-hand"), bind("user-queue", "parser")),
			idle("parser"), idle("analytics"), idle("user-queue")),
		record: seedRecord,
	}, {
		name:   "removed queue, empty and unused: deleted",
		d:      desired("parser", "parser"),
		o:      observed(seedRecord, seedBindings, idle("parser"), idle("analytics")),
		steps:  []string{"delete queue analytics (removed from spec.queues, empty, no consumer)"},
		record: map[string][]string{"parser": {"parser"}},
	}, {
		name:   "removed queue holding messages: kept with its binding, reported",
		d:      desired("parser", "parser"),
		o:      observed(seedRecord, seedBindings, idle("parser"), busy("analytics", 200, 0)),
		kept:   []string{"queue analytics was removed from spec.queues but still holds 200 messages: add it back to drain it, or purge it by hand"},
		record: seedRecord,
	}, {
		name:   "removed queue with a consumer: kept",
		d:      desired("parser", "parser"),
		o:      observed(seedRecord, seedBindings, idle("parser"), busy("analytics", 0, 1)),
		kept:   []string{"queue analytics was removed from spec.queues but still has 1 consumers: it is deleted once they are gone"},
		record: seedRecord,
	}, {
		name:   "removed queue whose counts the broker has not reported: kept",
		d:      desired("parser", "parser"),
		o:      observed(seedRecord, seedBindings, idle("parser"), Queue{Name: "analytics"}),
		kept:   []string{"queue analytics was removed from spec.queues; it is kept until the broker reports it empty"},
		record: seedRecord,
	}, {
		name:   "removed queue already deleted by hand: dropped from the record",
		d:      desired("parser", "parser"),
		o:      observed(seedRecord, seedBindings[:1], idle("parser")),
		record: map[string][]string{"parser": {"parser"}},
	}, {
		name:   "user-created queues, empty or not, are never touched",
		d:      seed,
		o:      observed(seedRecord, seedBindings, idle("parser"), idle("analytics"), idle("scratch"), busy("celery", 5, 0)),
		record: seedRecord,
	}, {
		name:       "removed queue added back: kept queue is bound again under its new key, the old key goes",
		d:          desired("parser", "parser", "analytics", "stats"),
		o:          observed(seedRecord, seedBindings, idle("parser"), busy("analytics", 200, 0)),
		steps:      []string{`bind queue analytics with routing key "stats"`, `unbind queue analytics from routing key "analytics"`},
		record:     map[string][]string{"parser": {"parser"}, "analytics": {"stats"}},
		intentOnly: map[string][]string{"parser": {"parser"}, "analytics": {"analytics", "stats"}},
	}, {
		name:   "queue deleted by hand while in the spec: declared and bound again",
		d:      seed,
		o:      observed(seedRecord, seedBindings[:1], idle("parser")),
		steps:  []string{"declare queue analytics", `bind queue analytics with routing key "analytics"`},
		record: seedRecord,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			plan := NewPlan(tc.d, tc.o)
			var steps, kept []string
			for _, s := range plan.Steps {
				steps = append(steps, s.String())
			}
			for _, k := range plan.Kept {
				kept = append(kept, k.String())
			}
			if diff := cmp.Diff(tc.steps, steps); diff != "" {
				t.Errorf("steps (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.kept, kept); diff != "" {
				t.Errorf("kept (-want +got):\n%s", diff)
			}
			if !plan.Record.Equal(Record{Queues: tc.record}) {
				t.Errorf("record %v, want %v", plan.Record.Queues, tc.record)
			}
			intent := tc.intentOnly
			if intent == nil {
				intent = tc.o.Record.Queues
			}
			if !plan.Intent.Equal(Record{Queues: intent}) {
				t.Errorf("intent %v, want %v", plan.Intent.Queues, intent)
			}
			for _, s := range plan.Steps {
				if (s.Kind == StepUnbind || s.Kind == StepDeleteQueue) && tc.o.Record.Queues[s.Queue] == nil {
					t.Errorf("%s: the queue is not on record, the operator never declared it", s)
				}
			}
		})
	}
}

// TestNewPlanNeverDropsMessages walks removals over every count a queue
// can report: a queue is deleted only with counts known and zero.
func TestNewPlanNeverDropsMessages(t *testing.T) {
	record := map[string][]string{"parser": {"parser"}, "gone": {"gone"}}
	for _, q := range []Queue{
		{Name: "gone"}, busy("gone", 1, 0), busy("gone", 0, 1), busy("gone", 1000000, 3), {Name: "gone", Messages: 0, Consumers: 0},
	} {
		plan := NewPlan(desired("parser", "parser"), observed(record, []Binding{bind("parser", "parser"), bind("gone", "gone")}, idle("parser"), q))
		for _, s := range plan.Steps {
			if s.Kind == StepDeleteQueue || s.Kind == StepUnbind {
				t.Errorf("%+v: plan has %q", q, s)
			}
		}
		if len(plan.Kept) != 1 || !strings.Contains(plan.Kept[0].String(), "gone") {
			t.Errorf("%+v: kept %v, want the queue reported", q, plan.Kept)
		}
		if _, ok := plan.Record.Queues["gone"]; !ok {
			t.Errorf("%+v: a kept queue left the record; it could never be deleted once drained", q)
		}
	}
}
