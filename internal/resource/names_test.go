package resource

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

func TestChildNameKeepsShortNames(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{Name("vk"), "vk"},
		{Name("vk", "auth"), "vk-auth"},
		{Name("vk", "lb", "config"), "vk-lb-config"},
		{StatefulSetName("vk", "db", "0"), "vk-db-0"},
		// Exactly at the budget: still untouched.
		{Name(strings.Repeat("a", 59), "abc"), strings.Repeat("a", 59) + "-abc"},
		{StatefulSetName(strings.Repeat("a", 49), "db"), strings.Repeat("a", 49) + "-db"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestChildNameShortensLongNames(t *testing.T) {
	platform45 := "p" + strings.Repeat("x", 44) // the longest name the CRD allows
	service30 := "s" + strings.Repeat("y", 29)  // the longest service name
	for _, tc := range []struct {
		name   string
		budget int
		build  func(platform string, parts ...string) string
		parts  []string
	}{
		{"service child", MaxNameLength, Name, []string{platform45, service30}},
		{"one over the budget", MaxNameLength, Name, []string{strings.Repeat("a", 61), "abc"}},
		{"cut lands on a dash", MaxNameLength, Name, []string{strings.Repeat("a", 53), "b-cccccccccccccc"}},
		{"lb config", MaxNameLength, Name, []string{platform45, "lb", "config", strings.Repeat("z", 20)}},
		{"statefulset", MaxStatefulSetNameLength, StatefulSetName, []string{platform45, "broker", "data"}},
		{"statefulset one over", MaxStatefulSetNameLength, StatefulSetName, []string{strings.Repeat("a", 50), "db"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			full := strings.Join(tc.parts, "-")
			got := tc.build(tc.parts[0], tc.parts[1:]...)
			if len(got) > tc.budget {
				t.Errorf("%q is %d characters, budget %d", got, len(got), tc.budget)
			}
			if got == full {
				t.Errorf("%d-character name was not shortened", len(full))
			}
			if errs := validation.IsDNS1035Label(got); len(errs) > 0 {
				t.Errorf("%q is not a DNS-1035 label: %v", got, errs)
			}
			if again := tc.build(tc.parts[0], tc.parts[1:]...); again != got {
				t.Errorf("not deterministic: %q then %q", got, again)
			}
			// A readable prefix of the full name survives the cut.
			if !strings.HasPrefix(full, got[:tc.budget-hashSuffixLength-2]) {
				t.Errorf("%q does not start with a prefix of %q", got, full)
			}
		})
	}
}

// Long names that differ only past the cut must still get distinct names:
// otherwise two children would fight over one object.
func TestChildNameDistinctForDistinctLongNames(t *testing.T) {
	platform := "p" + strings.Repeat("x", 44)
	seen := map[string]string{}
	for _, budget := range []int{MaxNameLength, MaxStatefulSetNameLength} {
		for i := range 200 {
			parts := []string{"s" + strings.Repeat("y", 28) + string(rune('a'+i%26)), "db", itoa(int32(i))}
			full := strings.Join(append([]string{platform}, parts...), "-")
			got := ChildName(budget, platform, parts...)
			key := itoa(int32(budget)) + "/" + got
			if prev, dup := seen[key]; dup {
				t.Fatalf("%q and %q both shorten to %q", prev, full, got)
			}
			seen[key] = full
		}
	}
}

func TestTruncateFitsLabelValues(t *testing.T) {
	if got := Truncate("auth"); got != "auth" {
		t.Errorf("Truncate(auth) = %q", got)
	}
	long := strings.Repeat("v", 100)
	got := Truncate(long)
	if errs := validation.IsValidLabelValue(got); len(errs) > 0 {
		t.Errorf("Truncate(100 chars) = %q, not a label value: %v", got, errs)
	}
}
