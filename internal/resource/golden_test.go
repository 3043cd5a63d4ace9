package resource

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The golden files pin the generated configuration byte for byte, so any
// change to it shows up in review as a diff of the files. After a deliberate
// change, regenerate them with `make golden` (UPDATE_GOLDEN=1).

func TestGoldenNginxConf(t *testing.T) {
	assertGolden(t, "nginx.conf.golden", RenderNginxConf(samplePlatform()))
}

func TestGoldenRegistry(t *testing.T) {
	assertGolden(t, "registry.json.golden", RenderRegistry(samplePlatform()))
}

// TestGoldenConfigMapsCarryRenderedConfig ties the golden files to what is
// actually applied: the ConfigMaps must hold exactly the rendered text.
func TestGoldenConfigMapsCarryRenderedConfig(t *testing.T) {
	p := samplePlatform()
	if got := LoadBalancerConfigMap(p).Data; len(got) != 1 || got[NginxConfKey] != RenderNginxConf(p) {
		t.Errorf("load balancer ConfigMap data = %v keys, want only %q with the rendered nginx.conf", len(got), NginxConfKey)
	}
	if got := RegistryConfigMap(p).Data; len(got) != 1 || got[RegistryFileKey] != RenderRegistry(p) {
		t.Errorf("registry ConfigMap data = %v keys, want only %q with the rendered registry", len(got), RegistryFileKey)
	}
}

func assertGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if os.Getenv("UPDATE_GOLDEN") != "" {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatalf("updating golden file: %v", err)
		}
		t.Logf("wrote %s", path)
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run `make golden` to create it): %v", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the rendered output (-golden +rendered); if the change is deliberate, run `make golden`:\n%s",
			path, cmp.Diff(string(want), got))
	}
}
