package crd

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

var generated = filepath.Join("..", "..", "config", "crd", "bases", "platform.vkparser.io_parserplatforms.yaml")

// TestEmbeddedCRDIsCurrent keeps the copy in step with what `make manifests`
// generates: a stale copy would default and validate by yesterday's rules.
func TestEmbeddedCRDIsCurrent(t *testing.T) {
	want, err := os.ReadFile(generated)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ParserPlatformYAML, want) {
		t.Fatalf("internal/crd holds a stale copy of %s: run 'go generate ./internal/crd'", generated)
	}
}

func load(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{} // integers as int64, as the API server decodes them
	if err := u.UnmarshalJSON(js); err != nil {
		t.Fatal(err)
	}
	if u.GetNamespace() == "" {
		u.SetNamespace("default")
	}
	return u.Object
}

// expectations are the "# expect: <text>" lines of a testdata manifest: the
// API server's refusal must contain each (api/v1alpha1/validation_test.go
// proves that against a real one).
func expectations(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	var out []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "# expect: "); ok {
			out = append(out, rest)
		}
	}
	return out
}

// TestSchemaRefusesWhatTheAPIServerRefuses runs the API package's testdata,
// which the API server itself refuses with these messages, through the
// offline schema: the same manifests fail, with the same words.
func TestSchemaRefusesWhatTheAPIServerRefuses(t *testing.T) {
	s, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	invalid, _ := filepath.Glob(filepath.Join("..", "..", "api", "v1alpha1", "testdata", "invalid", "*.yaml"))
	if len(invalid) < 18 {
		t.Fatalf("found %d invalid manifests", len(invalid))
	}
	for _, path := range invalid {
		t.Run(filepath.Base(path), func(t *testing.T) {
			obj := load(t, path)
			s.Default(obj)
			errs := s.Validate(context.Background(), obj)
			if len(errs) == 0 {
				t.Fatal("accepted")
			}
			msg := errs.ToAggregate().Error()
			for _, want := range expectations(t, path) {
				if !strings.Contains(msg, want) {
					t.Errorf("refusal %q does not contain %q", msg, want)
				}
			}
		})
	}
	valid, _ := filepath.Glob(filepath.Join("..", "..", "api", "v1alpha1", "testdata", "valid", "*.yaml"))
	for _, path := range valid {
		obj := load(t, path)
		if unknown := s.Prune(obj); len(unknown) > 0 {
			t.Errorf("%s: unknown fields %v", path, unknown)
		}
		s.Default(obj)
		if errs := s.Validate(context.Background(), obj); len(errs) > 0 {
			t.Errorf("%s refused: %v", path, errs.ToAggregate())
		}
	}
}

func TestPruneReportsUnknownFields(t *testing.T) {
	s, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	obj := map[string]any{
		"apiVersion": "platform.vkparser.io/v1alpha1", "kind": "ParserPlatform",
		"metadata": map[string]any{"name": "vk", "namespace": "default"},
		"spec": map[string]any{
			"servics":  []any{},
			"database": map[string]any{"shards": int64(2), "shardz": int64(3)},
		},
	}
	got := strings.Join(s.Prune(obj), ",")
	if got != "spec.database.shardz,spec.servics" && got != "spec.servics,spec.database.shardz" {
		t.Errorf("unknown fields %q", got)
	}
	if _, ok := obj["spec"].(map[string]any)["servics"]; ok {
		t.Error("unknown field kept")
	}
}

func TestDefaultFillsTheCRDDefaults(t *testing.T) {
	s, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	obj := map[string]any{"spec": map[string]any{"database": map[string]any{"shards": int64(2)}, "queues": map[string]any{}}}
	s.Default(obj)
	for path, want := range map[string]any{
		"spec.database.image":                             "postgres:16-alpine",
		"spec.database.shards":                            int64(2), // given: kept
		"spec.deletionPolicy":                             "Retain",
		"spec.cache.masters":                              int64(3),
		"spec.loadBalancer.serviceType":                   "LoadBalancer",
		"spec.monitoring.serviceMonitor":                  "auto",
		"spec.autoscaling.maxReplicas":                    int64(20),
		"spec.queues.broker.type":                         "rabbitmq",
		"spec.autoscaling.targetCPUUtilizationPercentage": int64(70),
	} {
		got, found, err := unstructured.NestedFieldNoCopy(obj, strings.Split(path, ".")...)
		if err != nil || !found || got != want {
			t.Errorf("%s = %v (found %v), want %v", path, got, found, want)
		}
	}
}
