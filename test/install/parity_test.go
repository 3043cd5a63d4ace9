package install

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// The chart's defaults and config/default install the same objects with the
// same content. These are the only differences, each deliberate; the test
// below allows exactly these and nothing else:
//
//  1. kustomize creates the Namespace (labelled Pod Security "restricted");
//     the chart does not create the namespace it is installed in (`helm
//     install --create-namespace`; Helm cannot own its own namespace).
//  2. The chart has a `helm test` Pod (a hook, not installed).
//  3. Labels: the chart adds helm.sh/chart, app.kubernetes.io/instance,
//     app.kubernetes.io/version and control-plane to every object, and says
//     app.kubernetes.io/managed-by: Helm where kustomize says kustomize. Every
//     other kustomize label is on the chart's object with the same value.
//  4. Selectors (Deployment, metrics Service): the chart adds
//     app.kubernetes.io/instance, so two releases never select each other's
//     pods; kustomize's selector is a subset of the chart's.
//  5. Annotations: the chart adds helm.sh/resource-policy: keep to the CRD,
//     so `helm uninstall` leaves the platforms and their data.
//  6. Image tag: kustomize installs ":dev" (what `make docker-build` builds),
//     the chart its appVersion; the repository is the same.
//  7. imagePullPolicy: the chart sets IfNotPresent; kustomize leaves it to the
//     API server, whose default for a tag other than "latest" is IfNotPresent.
const (
	labelManagedBy      = "app.kubernetes.io/managed-by"
	annotationKeep      = "helm.sh/resource-policy"
	defaultPullPolicy   = "IfNotPresent"
	minObjectsInInstall = 12
)

func TestChartDefaultsInstallWhatKustomizeInstalls(t *testing.T) {
	want := map[key]*unstructured.Unstructured{}
	for _, u := range kustomize(t) {
		if u.GetKind() == "Namespace" { // difference 1
			if u.GetName() != namespace {
				t.Errorf("kustomize creates namespace %q, the chart is installed in %q", u.GetName(), namespace)
			}
			continue
		}
		want[keyOf(u)] = u
	}
	got := map[key]*unstructured.Unstructured{}
	for _, u := range mustHelmTemplate(t) {
		if !isHelmHook(u) { // difference 2
			got[keyOf(u)] = u
		}
	}
	// Both renderings empty, or one object each, must not pass.
	if len(want) < minObjectsInInstall {
		t.Fatalf("kustomize rendered %d objects, want at least %d: %v", len(want), minObjectsInInstall, slices.Collect(maps.Keys(want)))
	}

	for _, k := range sortedKeys(want) {
		if got[k] == nil {
			t.Errorf("kustomize installs %s, the chart does not", k)
		}
	}
	for _, k := range sortedKeys(got) {
		if want[k] == nil {
			t.Errorf("the chart installs %s, kustomize does not", k)
		}
	}
	for _, k := range sortedKeys(want) {
		if got[k] != nil {
			t.Run(k.String(), func(t *testing.T) { compareObjects(t, want[k], got[k]) })
		}
	}
}

func sortedKeys(m map[key]*unstructured.Unstructured) []key {
	return slices.SortedFunc(maps.Keys(m), func(a, b key) int { return strings.Compare(a.String(), b.String()) })
}

// compareObjects checks metadata by the rules above, then the rest of the
// object (spec, rules, roleRef, subjects, ...) for equality.
func compareObjects(t *testing.T, kust, chart *unstructured.Unstructured) {
	t.Helper()
	for k, v := range kust.GetLabels() {
		switch {
		case k == labelManagedBy:
			if chart.GetLabels()[k] != "Helm" {
				t.Errorf("label %s = %q, want Helm", k, chart.GetLabels()[k])
			}
		case chart.GetLabels()[k] != v:
			t.Errorf("label %s = %q in the chart, %q in kustomize", k, chart.GetLabels()[k], v)
		}
	}
	annotations := maps.Clone(chart.GetAnnotations())
	if kust.GetKind() == "CustomResourceDefinition" { // difference 5
		if annotations[annotationKeep] != "keep" {
			t.Errorf("the chart's CRD lacks %s: keep", annotationKeep)
		}
		delete(annotations, annotationKeep)
	}
	if d := cmp.Diff(kust.GetAnnotations(), annotations); d != "" {
		t.Errorf("annotations differ (-kustomize +chart):\n%s", d)
	}

	want, got := body(kust), body(chart)
	switch kust.GetKind() {
	case "Deployment":
		adoptSelector(t, want, got, "spec", "selector", "matchLabels")
		adoptSelector(t, want, got, "spec", "template", "metadata", "labels")
		normaliseContainers(t, want, got)
	case "Service":
		adoptSelector(t, want, got, "spec", "selector")
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("content differs (-kustomize +chart):\n%s", d)
	}
}

// body is the object without metadata, which compareObjects checks by rules.
func body(u *unstructured.Unstructured) map[string]any {
	c := u.DeepCopy().Object
	delete(c, "metadata")
	return c
}

// adoptSelector checks difference 4 (kustomize's labels are a subset of the
// chart's) and then gives the chart kustomize's, so the diff shows the rest.
func adoptSelector(t *testing.T, want, got map[string]any, path ...string) {
	t.Helper()
	w, _, _ := unstructured.NestedStringMap(want, path...)
	g, _, _ := unstructured.NestedStringMap(got, path...)
	if len(w) == 0 {
		t.Errorf("kustomize has no %s", strings.Join(path, "."))
	}
	for k, v := range w {
		if g[k] != v {
			t.Errorf("%s: %s = %q in the chart, %q in kustomize", strings.Join(path, "."), k, g[k], v)
		}
	}
	if err := unstructured.SetNestedStringMap(got, w, path...); err != nil {
		t.Fatal(err)
	}
}

// normaliseContainers applies differences 6 and 7 to the pod templates.
func normaliseContainers(t *testing.T, want, got map[string]any) {
	t.Helper()
	path := []string{"spec", "template", "spec", "containers"}
	wc, _, _ := unstructured.NestedSlice(want, path...)
	gc, _, _ := unstructured.NestedSlice(got, path...)
	if len(wc) != len(gc) {
		return // the diff shows it
	}
	for i := range wc {
		w, g := wc[i].(map[string]any), gc[i].(map[string]any)
		wi, _ := w["image"].(string)
		gi, _ := g["image"].(string)
		if repository(wi) != repository(gi) {
			t.Errorf("container %v: image %q in the chart, %q in kustomize: different repositories", w["name"], gi, wi)
		}
		g["image"] = wi
		if _, ok := w["imagePullPolicy"]; !ok {
			w["imagePullPolicy"] = defaultPullPolicy
		}
	}
	_ = unstructured.SetNestedSlice(want, wc, path...)
	_ = unstructured.SetNestedSlice(got, gc, path...)
}

// repository is an image reference without its tag.
func repository(image string) string {
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		return image[:i]
	}
	return image
}

// TestInstallsAreCoherent checks each rendering on its own: the Deployment's
// selector picks its pods, the metrics Service picks them (and only them),
// every binding names a role and ServiceAccount of the install, and the
// operator runs as that ServiceAccount. A parity test alone would pass if
// both were broken the same way.
func TestInstallsAreCoherent(t *testing.T) {
	renderings := map[string]objects{
		"kustomize":                  kustomize(t),
		"chart defaults":             mustHelmTemplate(t),
		"chart namespaced HA scrape": mustHelmTemplate(t, haValues...),
	}
	for name, objs := range renderings {
		t.Run(name, func(t *testing.T) { checkCoherent(t, objs) })
	}
}
