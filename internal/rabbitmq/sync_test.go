package rabbitmq

import (
	"context"
	"testing"
)

// fakeBroker stands in for the management API where the real server cannot
// be steered: a queue that takes a message between the statistics the plan
// read and the deletion, which the broker then refuses.
type fakeBroker struct {
	queues   map[string]Queue
	bindings []Binding
	record   Record
	refuse   map[string]bool // DeleteQueueIfIdle refuses these
	calls    []string
}

func (f *fakeBroker) ExchangeExists(context.Context, string, string) (bool, error) { return true, nil }
func (f *fakeBroker) Queues(context.Context, string) ([]Queue, error) {
	var out []Queue
	for _, q := range f.queues {
		out = append(out, q)
	}
	return out, nil
}
func (f *fakeBroker) Bindings(context.Context, string, string) ([]Binding, error) {
	return f.bindings, nil
}
func (f *fakeBroker) Record(context.Context) (Record, error) { return copyRecord(f.record), nil }
func (f *fakeBroker) DeclareExchange(context.Context, string, string) error {
	f.calls = append(f.calls, "declare exchange")
	return nil
}
func (f *fakeBroker) DeclareQueue(_ context.Context, _, q string) error {
	f.calls = append(f.calls, "declare "+q)
	f.queues[q] = idle(q)
	return nil
}
func (f *fakeBroker) Bind(_ context.Context, _, _ string, b Binding) error {
	f.calls = append(f.calls, "bind "+b.Queue+" "+b.RoutingKey)
	f.bindings = append(f.bindings, Binding{Queue: b.Queue, RoutingKey: b.RoutingKey, PropertiesKey: b.RoutingKey})
	return nil
}
func (f *fakeBroker) Unbind(_ context.Context, _, _ string, b Binding) error {
	f.calls = append(f.calls, "unbind "+b.Queue+" "+b.RoutingKey)
	return nil
}
func (f *fakeBroker) DeleteQueueIfIdle(_ context.Context, _, q string) (bool, error) {
	f.calls = append(f.calls, "delete "+q)
	if f.refuse[q] {
		return false, nil
	}
	delete(f.queues, q)
	return true, nil
}
func (f *fakeBroker) SetRecord(_ context.Context, r Record) error {
	f.calls = append(f.calls, "record")
	f.record = copyRecord(r)
	return nil
}

func TestSyncKeepsAQueueTheBrokerRefusesToDelete(t *testing.T) {
	f := &fakeBroker{
		queues:   map[string]Queue{"parser": idle("parser"), "analytics": idle("analytics")},
		bindings: []Binding{bind("parser", "parser"), bind("analytics", "analytics")},
		record:   Record{Queues: map[string][]string{"parser": {"parser"}, "analytics": {"analytics"}}},
		refuse:   map[string]bool{"analytics": true},
	}
	res, err := Sync(t.Context(), f, desired("parser", "parser"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Done) != 0 || len(res.Kept) != 1 || res.Kept[0].Queue != "analytics" {
		t.Fatalf("done %v, kept %v; want analytics kept", res.Done, res.Kept)
	}
	if want := "queue analytics was removed from spec.queues; the broker refused to delete it (not empty or in use): add it back to drain it, or purge it by hand"; res.Kept[0].String() != want {
		t.Errorf("reported %q, want %q", res.Kept[0], want)
	}
	if _, ok := f.record.Queues["analytics"]; !ok {
		t.Errorf("the refused queue left the record %v: it could never be deleted once drained", f.record.Queues)
	}
	// Drained later: the next sync deletes it and forgets it.
	f.refuse = nil
	if _, err := Sync(t.Context(), f, desired("parser", "parser"), nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.queues["analytics"]; ok {
		t.Error("analytics not deleted once the broker allowed it")
	}
	if _, ok := f.record.Queues["analytics"]; ok {
		t.Errorf("deleted queue still on record: %v", f.record.Queues)
	}
}

func TestSyncInLineMakesNoCall(t *testing.T) {
	f := &fakeBroker{
		queues:   map[string]Queue{"parser": busy("parser", 5, 1)},
		bindings: []Binding{bind("parser", "parser")},
		record:   Record{Queues: map[string][]string{"parser": {"parser"}}},
	}
	if _, err := Sync(t.Context(), f, desired("parser", "parser"), nil); err != nil {
		t.Fatal(err)
	}
	if len(f.calls) != 0 {
		t.Errorf("a broker in line got %v", f.calls)
	}
}

func TestSyncRecordsBeforeDeclaring(t *testing.T) {
	f := &fakeBroker{queues: map[string]Queue{}, record: Record{Queues: map[string][]string{}}}
	var hooked []string
	if _, err := Sync(t.Context(), f, desired("parser", "parser"), func(s Step) { hooked = append(hooked, s.String()) }); err != nil {
		t.Fatal(err)
	}
	want := []string{"record", "declare parser", "bind parser parser"}
	if len(f.calls) != len(want) {
		t.Fatalf("calls %v, want %v", f.calls, want)
	}
	for i := range want {
		if f.calls[i] != want[i] {
			t.Fatalf("calls %v, want %v", f.calls, want)
		}
	}
	if len(hooked) != 2 {
		t.Errorf("hook told of %v, want the two steps", hooked)
	}
}
