package status

import (
	"slices"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
)

func ready(name, kind string, n int32) Workload {
	return Workload{Name: name, Kind: kind, Found: true, Generation: 2, ObservedGeneration: 2,
		Desired: n, Updated: n, Ready: n, Available: n}
}

// allReady is a platform whose every workload has rolled out and whose
// cache cluster is formed.
func allReady() Observed {
	return Observed{
		Generation:   5,
		Services:     []Workload{ready("auth", "Deployment", 3), ready("gateway", "Deployment", 3)},
		LoadBalancer: ready("lb", "Deployment", 2),
		Shards:       []Workload{ready("db-0", "StatefulSet", 1), ready("db-1", "StatefulSet", 1)},
		Cache:        ready("cache", "StatefulSet", 6),
		CacheFormed:  true,
		Queues:       true,
		Broker:       ready("broker", "StatefulSet", 1),
		Workers:      []Workload{ready("worker-parser", "Deployment", 3)},
	}
}

func conditionOf(t *testing.T, st *platformv1.ParserPlatformStatus, conditionType string) metav1.Condition {
	t.Helper()
	c := meta.FindStatusCondition(st.Conditions, conditionType)
	if c == nil {
		t.Fatalf("no %s condition in %+v", conditionType, st.Conditions)
	}
	return *c
}

func TestConditions(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Observed)
		// want maps condition type to "Status/Reason".
		want map[string]string
	}{
		{"everything ready", func(*Observed) {}, map[string]string{
			TypeReady: "True/AllComponentsReady", TypeProgressing: "False/RolloutComplete", TypeDegraded: "False/AsExpected",
			TypeServicesReady: "True/ServicesAvailable", TypeLoadBalancerReady: "True/LoadBalancerAvailable",
			TypeDatabaseReady: "True/ShardsAvailable", TypeCacheReady: "True/ClusterServing", TypeQueuesReady: "True/QueuesAvailable",
			TypePaused: "False/Reconciling",
		}},
		{"a service rolling out", func(o *Observed) { o.Services[0].Updated = 1 }, map[string]string{
			TypeReady: "False/NotReady", TypeServicesReady: "False/WorkloadsNotReady", TypeProgressing: "True/RollingOut",
		}},
		{"a workload whose controller has not seen its spec", func(o *Observed) { o.Shards[1].ObservedGeneration = 1 }, map[string]string{
			TypeReady: "False/NotReady", TypeDatabaseReady: "False/WorkloadsNotReady",
		}},
		{"a workload not created yet", func(o *Observed) { o.Broker = Workload{Name: "broker", Kind: "StatefulSet"} }, map[string]string{
			TypeQueuesReady: "False/WorkloadsNotReady", TypeReady: "False/NotReady",
		}},
		{"cache pods ready but cluster not formed", func(o *Observed) { o.CacheFormed = false; o.CacheDetail = "no slots" }, map[string]string{
			TypeCacheReady: "False/ClusterNotFormed", TypeReady: "False/NotReady",
		}},
		{"no queues declared", func(o *Observed) { o.Queues = false; o.Broker = Workload{} }, map[string]string{
			TypeQueuesReady: "True/NoQueues", TypeReady: "True/AllComponentsReady",
		}},
		{"a refused operation", func(o *Observed) { o.Problems = []string{"ConfigMap vk-registry exists and is not owned"} }, map[string]string{
			TypeDegraded: "True/ReconcileProblems", TypeReady: "False/Degraded",
		}},
		{"a stalled rollout", func(o *Observed) { o.Workers[0].Stalled = true }, map[string]string{
			TypeDegraded: "True/ReconcileProblems",
		}},
		{"paused", func(o *Observed) { o.Paused = true }, map[string]string{
			TypePaused: "True/Paused", TypeProgressing: "False/Paused",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := allReady()
			tt.change(&o)
			st := &platformv1.ParserPlatformStatus{}
			Apply(st, o)
			for conditionType, want := range tt.want {
				c := conditionOf(t, st, conditionType)
				if got := string(c.Status) + "/" + c.Reason; got != want {
					t.Errorf("%s = %s (%q), want %s", conditionType, got, c.Message, want)
				}
				if c.ObservedGeneration != 5 {
					t.Errorf("%s observedGeneration = %d, want the platform's 5", conditionType, c.ObservedGeneration)
				}
			}
		})
	}
}

func TestMessagesNameWhatIsMissing(t *testing.T) {
	o := allReady()
	o.Services[0].Ready = 1
	o.Shards[1] = Workload{Name: "db-1", Kind: "StatefulSet"}
	st := &platformv1.ParserPlatformStatus{}
	Apply(st, o)
	if got := conditionOf(t, st, TypeServicesReady).Message; got != "waiting for auth 1/3 ready" {
		t.Errorf("ServicesReady message = %q", got)
	}
	if got := conditionOf(t, st, TypeDatabaseReady).Message; got != "waiting for db-1 not created yet" {
		t.Errorf("DatabaseReady message = %q", got)
	}
	if got := conditionOf(t, st, TypeReady).Message; got != "not ready: ServicesReady, DatabaseReady" {
		t.Errorf("Ready message = %q", got)
	}
}

// Status is written only when it changed, so applying the same observation
// twice must give the same status, transition times included.
func TestApplyIsStable(t *testing.T) {
	st := &platformv1.ParserPlatformStatus{}
	Apply(st, allReady())
	first := st.DeepCopy()
	Apply(st, allReady())
	if !equalStatus(first, st) {
		t.Fatalf("a second Apply of the same observation changed the status:\n%+v\n%+v", first, st)
	}
}

func TestTransitionTimeMovesOnlyWhenStatusFlips(t *testing.T) {
	st := &platformv1.ParserPlatformStatus{}
	Apply(st, allReady())
	old := metav1.NewTime(time.Now().Add(-time.Hour))
	for i := range st.Conditions {
		st.Conditions[i].LastTransitionTime = old
	}
	o := allReady()
	o.Services[0].Ready = 0
	Apply(st, o)
	if c := conditionOf(t, st, TypeServicesReady); c.LastTransitionTime.Equal(&old) {
		t.Error("ServicesReady flipped to False but kept its old transition time")
	}
	if c := conditionOf(t, st, TypeDatabaseReady); !c.LastTransitionTime.Equal(&old) {
		t.Error("DatabaseReady did not change but got a new transition time")
	}
}

func TestComponentsAndShards(t *testing.T) {
	st := &platformv1.ParserPlatformStatus{}
	o := allReady()
	o.LoadBalancerAddress = "203.0.113.7:80"
	Apply(st, o)
	if st.Shards != 2 {
		t.Errorf("shards = %d, want 2", st.Shards)
	}
	if st.LoadBalancerAddress != "203.0.113.7:80" {
		t.Errorf("loadBalancerAddress = %q", st.LoadBalancerAddress)
	}
	var names []string
	for _, c := range st.Components {
		names = append(names, c.Name)
	}
	want := []string{"auth", "broker", "cache", "db-0", "db-1", "gateway", "lb", "worker-parser"}
	if len(names) != len(want) {
		t.Fatalf("components = %v, want %v", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("components = %v, want %v (sorted, so the status bytes are stable)", names, want)
		}
	}
}

func equalStatus(a, b *platformv1.ParserPlatformStatus) bool {
	if len(a.Conditions) != len(b.Conditions) {
		return false
	}
	for i := range a.Conditions {
		x, y := a.Conditions[i], b.Conditions[i]
		if x.Type != y.Type || x.Status != y.Status || x.Reason != y.Reason || x.Message != y.Message ||
			!x.LastTransitionTime.Equal(&y.LastTransitionTime) {
			return false
		}
	}
	return len(a.Components) == len(b.Components) && a.Shards == b.Shards
}

func TestAddPlacesEachWorkloadInItsArea(t *testing.T) {
	var o Observed
	for _, c := range []struct {
		area string
		w    Workload
	}{
		{TypeServicesReady, Workload{Name: "auth", Kind: "Deployment"}},
		{TypeServicesReady, Workload{Name: "gateway", Kind: "Deployment"}},
		{TypeLoadBalancerReady, Workload{Name: "lb", Kind: "Deployment"}},
		{TypeDatabaseReady, Workload{Name: "db-0", Kind: "StatefulSet"}},
		{TypeCacheReady, Workload{Name: "cache", Kind: "StatefulSet"}},
		{TypeQueuesReady, Workload{Name: "broker", Kind: "StatefulSet"}},
		{TypeQueuesReady, Workload{Name: "worker-parser", Kind: "Deployment"}},
	} {
		if err := o.Add(c.area, c.w); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	for _, w := range o.Workloads() {
		names = append(names, w.Name)
	}
	want := []string{"auth", "gateway", "lb", "db-0", "cache", "broker", "worker-parser"}
	if !slices.Equal(names, want) {
		t.Errorf("workloads %v, want %v", names, want)
	}
	if !o.Queues {
		t.Error("a queues workload added, and Queues is false")
	}
	if err := o.Add("Nowhere", Workload{Name: "x"}); err == nil {
		t.Error("a workload of an unknown area was taken")
	}
}
