package resource

import "testing"

func TestConfigHashStableUnderMapOrder(t *testing.T) {
	build := func(order []string) map[string]string {
		m := map[string]string{}
		for _, k := range order {
			m[k] = "value of " + k
		}
		return m
	}
	want := ConfigHash(build([]string{"a", "b", "c", "d", "e", "f", "g", "h"}))
	// Go randomises map iteration; many calls and insertion orders would
	// expose a hash that followed it.
	for range 50 {
		if got := ConfigHash(build([]string{"h", "g", "f", "e", "d", "c", "b", "a"})); got != want {
			t.Fatalf("hash changed with map order: %s vs %s", got, want)
		}
	}
	if len(want) != 16 {
		t.Errorf("hash %q: want 16 hex digits (fits an annotation, readable in kubectl)", want)
	}
}

func TestConfigHashChangesWithContent(t *testing.T) {
	base := map[string]string{"nginx.conf": "worker_processes auto;", "services.json": "{}"}
	h := ConfigHash(base)
	for name, changed := range map[string][]map[string]string{
		"value changed":          {{"nginx.conf": "worker_processes 2;", "services.json": "{}"}},
		"key renamed":            {{"nginx.conf": "worker_processes auto;", "registry.json": "{}"}},
		"key added":              {{"nginx.conf": "worker_processes auto;", "services.json": "{}", "x": ""}},
		"key removed":            {{"nginx.conf": "worker_processes auto;"}},
		"empty value added":      {{"nginx.conf": "worker_processes auto;", "services.json": "{}", "": ""}},
		"text moved key->value":  {{"nginx.conf": "worker_processes auto;services.json", "": "{}"}},
		"split into two configs": {{"nginx.conf": "worker_processes auto;"}, {"services.json": "{}"}},
		"extra empty config":     {base, {}},
	} {
		if got := ConfigHash(changed...); got == h {
			t.Errorf("%s: hash unchanged (%s)", name, got)
		}
	}
	if ConfigHash(map[string]string{"a": "b"}, map[string]string{"c": "d"}) == ConfigHash(map[string]string{"c": "d"}, map[string]string{"a": "b"}) {
		t.Error("swapping two configs kept the hash: a pod reading them in two places would not roll")
	}
}
