package controller

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/vkparser/parser-operator/internal/metrics"
)

// TestServerChecksRecall: a settled answer is used while its inputs stay
// and for serverRecheckInterval, counted as recalled; any other look is
// counted as dialed.
func TestServerChecksRecall(t *testing.T) {
	var c serverChecks
	key := serverKey{platform: types.NamespacedName{Namespace: "ns", Name: "vk"}, server: serverCache}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	dialed := func() float64 { return testutil.ToFloat64(metrics.ServerChecks.WithLabelValues(serverCache, "dialed")) }
	recalled := func() float64 {
		return testutil.ToFloat64(metrics.ServerChecks.WithLabelValues(serverCache, "recalled"))
	}
	d0, r0 := dialed(), recalled()

	if _, _, ok := recallAnswer[cacheOutcome](&c, key, "a", now); ok {
		t.Fatal("recalled an answer never given")
	}
	c.remember(key, "a", now, cacheOutcome{formed: true, detail: "ok"})
	out, left, ok := recallAnswer[cacheOutcome](&c, key, "a", now.Add(time.Minute))
	if !ok || !out.formed || out.detail != "ok" || left != serverRecheckInterval-time.Minute {
		t.Errorf("same inputs a minute later: %+v, %s left, recalled %v", out, left, ok)
	}
	if _, _, ok := recallAnswer[cacheOutcome](&c, key, "b", now.Add(time.Minute)); ok {
		t.Error("recalled an answer for other inputs (a pod moved)")
	}
	if _, _, ok := recallAnswer[cacheOutcome](&c, key, "a", now.Add(serverRecheckInterval)); ok {
		t.Error("recalled an answer past the recheck interval")
	}
	if _, _, ok := recallAnswer[brokerOutcome](&c, key, "a", now); ok {
		t.Error("recalled an answer of another type")
	}
	c.forgetPlatform(key.platform)
	if _, _, ok := recallAnswer[cacheOutcome](&c, key, "a", now); ok {
		t.Error("recalled an answer of a forgotten platform")
	}
	if got := recalled() - r0; got != 1 {
		t.Errorf("recalled counted %v times, want 1", got)
	}
	if got := dialed() - d0; got != 5 {
		t.Errorf("dialed counted %v times, want 5", got)
	}
}

// TestMigrationProgress counts a migration across slices: each slice says
// what its plan had left and what it moved.
func TestMigrationProgress(t *testing.T) {
	var c serverChecks
	p := types.NamespacedName{Namespace: "ns", Name: "vk"}
	steps := []struct{ toMove, moved, wantMoved, wantTotal int }{
		{4096, 1000, 1000, 4096},
		{3096, 2000, 3000, 4096},
		{1096, 1096, 4096, 4096},
		{0, 0, 0, 0}, // converged: the count ends
		{1365, 100, 100, 1365},
		{5000, 0, 0, 5000}, // a bigger migration than counted (the spec grew)
	}
	for i, s := range steps {
		got := c.migrationSlice(p, s.toMove, s.moved)
		if got.moved != s.wantMoved || got.total != s.wantTotal {
			t.Errorf("slice %d (%d to move, %d moved): %d of %d, want %d of %d", i, s.toMove, s.moved, got.moved, got.total, s.wantMoved, s.wantTotal)
		}
	}
}

// TestPodsInputs: what moves a pod's answer-relevant state moves the inputs.
func TestPodsInputs(t *testing.T) {
	pod := func(ip string, ready bool, restarts int32) corev1.Pod {
		st := corev1.ConditionFalse
		if ready {
			st = corev1.ConditionTrue
		}
		return corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "vk-cache-0", UID: "u1"},
			Status: corev1.PodStatus{PodIP: ip, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}},
				ContainerStatuses: []corev1.ContainerStatus{{RestartCount: restarts}}},
		}
	}
	base := podsInputs([]corev1.Pod{pod("10.0.0.1", true, 0)})
	for name, other := range map[string]corev1.Pod{
		"IP": pod("10.0.0.2", true, 0), "readiness": pod("10.0.0.1", false, 0), "restarts": pod("10.0.0.1", true, 1),
	} {
		if podsInputs([]corev1.Pod{other}) == base {
			t.Errorf("a change of %s left the inputs as they were", name)
		}
	}
	same := pod("10.0.0.1", true, 0)
	same.Status.Message = "status churn"
	if podsInputs([]corev1.Pod{same}) != base {
		t.Error("a status change that matters to no server moved the inputs")
	}
}
