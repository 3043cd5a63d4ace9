package install

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

const (
	// release and namespace are the README's `helm install parser-operator
	// charts/parser-operator -n parser-operator-system`: with them the chart's
	// names are kustomize's (namePrefix parser-operator-, namespace
	// parser-operator-system).
	release   = "parser-operator"
	namespace = "parser-operator-system"
	chartDir  = "charts/parser-operator"
)

// repoRoot is the clone's top directory: the tests run in test/install.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

var (
	helmOnce sync.Once
	helmPath string
	helmErr  error
)

// helm is the pinned helm: $HELM when set (make chart-check passes it),
// otherwise hack/tool.sh builds it from the Go module proxy once and caches it.
func helm(t *testing.T) string {
	t.Helper()
	helmOnce.Do(func() {
		if p := os.Getenv("HELM"); p != "" {
			helmPath = p
			return
		}
		cmd := exec.Command(filepath.Join(repoRoot(t), "hack", "tool.sh"), "helm")
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		helmPath, helmErr = strings.TrimSpace(string(out)), err
	})
	if helmErr != nil {
		t.Fatalf("getting helm (hack/tool.sh helm): %v", helmErr)
	}
	return helmPath
}

// run executes a tool in the repository root and returns its stdout, or an
// error carrying its stderr.
func run(t *testing.T, name string, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = repoRoot(t)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes(), nil
}

// helmTemplate renders the chart as the README installs it, with extra
// arguments (--set ..., --skip-tests); it returns helm's error, stderr
// included, so tests can check what a refused value says.
func helmTemplate(t *testing.T, args ...string) ([]*unstructured.Unstructured, error) {
	t.Helper()
	base := []string{"template", release, chartDir, "--namespace", namespace}
	out, err := run(t, helm(t), append(base, args...)...)
	if err != nil {
		return nil, err
	}
	return decode(t, out), nil
}

// mustHelmTemplate is helmTemplate for values that must render.
func mustHelmTemplate(t *testing.T, args ...string) objects {
	t.Helper()
	objs, err := helmTemplate(t, args...)
	if err != nil {
		t.Fatalf("rendering the chart: %v", err)
	}
	return objects(objs)
}

// kustomize renders config/default with kubectl's built-in kustomize.
func kustomize(t *testing.T) objects {
	t.Helper()
	out, err := run(t, "kubectl", "kustomize", "config/default")
	if err != nil {
		t.Fatalf("rendering config/default: %v", err)
	}
	return objects(decode(t, out))
}

// decode splits a multi-document YAML stream into objects, skipping empty
// documents (helm leaves them where a template renders nothing).
func decode(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("decoding rendered YAML: %v", err)
		}
		if len(m) > 0 {
			objs = append(objs, &unstructured.Unstructured{Object: m})
		}
	}
}

// objects is a rendering, with lookups by kind and name.
type objects []*unstructured.Unstructured

// key names an object uniquely in an install.
type key struct{ Kind, Namespace, Name string }

func (k key) String() string {
	if k.Namespace == "" {
		return k.Kind + "/" + k.Name
	}
	return k.Kind + "/" + k.Namespace + "/" + k.Name
}

func keyOf(u *unstructured.Unstructured) key {
	return key{u.GetKind(), u.GetNamespace(), u.GetName()}
}

// find returns the object of that kind and name (any namespace), or nil.
func (o objects) find(kind, name string) *unstructured.Unstructured {
	for _, u := range o {
		if u.GetKind() == kind && u.GetName() == name {
			return u
		}
	}
	return nil
}

// ofKind returns the objects of one kind, in rendering order.
func (o objects) ofKind(kind string) objects {
	var out objects
	for _, u := range o {
		if u.GetKind() == kind {
			out = append(out, u)
		}
	}
	return out
}

// get is find for objects that must exist, converted to their Go type.
func get[T any](t *testing.T, o objects, kind, name string) *T {
	t.Helper()
	u := o.find(kind, name)
	if u == nil {
		t.Fatalf("no %s %q in the rendering; it has %v", kind, name, o.keys())
	}
	return typed[T](t, u)
}

func typed[T any](t *testing.T, u *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, out); err != nil {
		t.Fatalf("converting %s: %v", keyOf(u), err)
	}
	return out
}

func (o objects) keys() []key {
	out := make([]key, 0, len(o))
	for _, u := range o {
		out = append(out, keyOf(u))
	}
	return out
}

// isHelmHook tells `helm test` Pods and other hooks from installed objects.
func isHelmHook(u *unstructured.Unstructured) bool {
	_, ok := u.GetAnnotations()["helm.sh/hook"]
	return ok
}
