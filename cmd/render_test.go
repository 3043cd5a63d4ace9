package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/resource"
)

var samplePath = filepath.Join("..", "config", "samples", "platform_v1alpha1_parserplatform.yaml")

// render runs the subcommand as main would and returns stdout, stderr and
// the exit status.
func render(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := renderMain(args, strings.NewReader(stdin), &stdout, &stderr)
	return stdout.String(), stderr.String(), code
}

// mustRender renders or fails the test.
func mustRender(t *testing.T, stdin string, args ...string) []*unstructured.Unstructured {
	t.Helper()
	out, errOut, code := render(t, stdin, args...)
	if code != 0 {
		t.Fatalf("render %v: exit %d, stderr:\n%s", args, code, errOut)
	}
	return decodeStream(t, out)
}

// decodeStream reads a YAML stream with a YAML decoder that knows nothing of
// the renderer: every document must be a complete object.
func decodeStream(t *testing.T, stream string) []*unstructured.Unstructured {
	t.Helper()
	reader := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(stream)))
	var out []*unstructured.Unstructured
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("reading the stream: %v", err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := yaml.UnmarshalStrict(doc, &u.Object); err != nil {
			t.Fatalf("document %d is not YAML: %v\n%s", len(out), err, doc)
		}
		out = append(out, u)
	}
}

func sampleManifest(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(samplePath)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// keyOf names a child "Kind/name".
func keyOf(u *unstructured.Unstructured) string { return u.GetKind() + "/" + u.GetName() }

func TestRenderSampleHasEveryContractName(t *testing.T) {
	objs := mustRender(t, "", "-f", samplePath, "-n", "parser")
	have := map[string]bool{}
	for _, u := range objs {
		have[keyOf(u)] = true
		if u.GetNamespace() != "parser" {
			t.Errorf("%s: namespace %q, want parser", keyOf(u), u.GetNamespace())
		}
		for k, v := range map[string]string{
			resource.LabelInstance: "vk", resource.LabelPartOf: resource.PartOf, resource.LabelManagedBy: resource.ManagedBy,
		} {
			if u.GetLabels()[k] != v {
				t.Errorf("%s: label %s=%q, want %q", keyOf(u), k, u.GetLabels()[k], v)
			}
		}
	}
	// docs/architecture.md "Children", for P=vk and the sample's services, shards and queues.
	want := []string{"ConfigMap/vk-registry", "ConfigMap/vk-lb-config", "ConfigMap/vk-shard-map",
		"Deployment/vk-lb", "Service/vk-lb", "PodDisruptionBudget/vk-lb",
		"StatefulSet/vk-cache", "Service/vk-cache", "Service/vk-cache-headless", "ConfigMap/vk-cache", "Secret/vk-cache",
		"StatefulSet/vk-broker", "Service/vk-broker", "Secret/vk-broker", "ConfigMap/vk-broker"}
	for _, s := range []string{"auth", "comments", "parser", "analytics", "gateway"} {
		for _, kind := range []string{"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"} {
			want = append(want, kind+"/vk-"+s)
		}
	}
	for _, i := range []string{"0", "1", "2", "3"} {
		want = append(want, "StatefulSet/vk-db-"+i, "Service/vk-db-"+i, "Secret/vk-db-"+i+"-credentials")
	}
	for _, q := range []string{"parser", "analytics", "notifications"} {
		for _, kind := range []string{"Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget"} {
			want = append(want, kind+"/vk-worker-"+q)
		}
	}
	for _, w := range want {
		if !have[w] {
			t.Errorf("missing %s", w)
		}
	}
	if !slices.ContainsFunc(objs, func(u *unstructured.Unstructured) bool { return u.GetKind() == "NetworkPolicy" }) {
		t.Error("no NetworkPolicy")
	}
	if slices.ContainsFunc(objs, func(u *unstructured.Unstructured) bool { return u.GetKind() == "ServiceMonitor" }) {
		t.Error("ServiceMonitor printed without --service-monitor")
	}
}

// TestRenderRoundTrips decodes every document strictly into its typed Go
// object (unknown or misspelt fields fail) and checks the noise is gone.
func TestRenderRoundTrips(t *testing.T) {
	out, _, code := render(t, "", "-f", samplePath)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	decoder := serializer.NewCodecFactory(clientgoscheme.Scheme, serializer.EnableStrict).UniversalDeserializer()
	objs := decodeStream(t, out)
	if len(objs) < 60 {
		t.Fatalf("only %d documents", len(objs))
	}
	for _, u := range objs {
		if u.GetAPIVersion() == "" || u.GetKind() == "" {
			t.Errorf("%s has no apiVersion or kind", u.GetName())
		}
		if _, ok := u.Object["status"]; ok {
			t.Errorf("%s has a status", keyOf(u))
		}
		doc, err := yaml.Marshal(u.Object)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(doc, []byte("creationTimestamp")) {
			t.Errorf("%s carries a creationTimestamp", keyOf(u))
		}
		if _, _, err := decoder.Decode(doc, nil, nil); err != nil {
			t.Errorf("%s does not decode as its kind: %v", keyOf(u), err)
		}
	}
}

// TestRenderedChildrenEqualTheBuilders: what render prints is what the
// operator would create for the platform the API server would store, for
// every child and in the same order (the Deployments compared field by field
// as typed objects).
func TestRenderedChildrenEqualTheBuilders(t *testing.T) {
	data := []byte(sampleManifest(t))
	p, err := loadPlatform(data, "parser")
	if err != nil {
		t.Fatal(err)
	}
	p.UID = "0a1b2c3d-0000-4000-8000-000000000001"
	withUID := strings.Replace(string(data), "  name: vk\n", "  name: vk\n  uid: "+string(p.UID)+"\n", 1)
	objs := mustRender(t, withUID, "-f", "-", "-n", "parser")
	want := resource.Children(p, (&renderOptions{}).credentials(p))
	if len(objs) != len(want) {
		t.Fatalf("rendered %d children, the builders make %d", len(objs), len(want))
	}
	deployments := 0
	for i, w := range want {
		if got := objs[i]; keyOf(got) != kindOf(w)+"/"+w.GetName() {
			t.Fatalf("child %d is %s, the builders make %s %s there", i, keyOf(got), kindOf(w), w.GetName())
		}
		d, ok := w.(*appsv1.Deployment)
		if !ok {
			continue
		}
		deployments++
		got := &appsv1.Deployment{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(objs[i].Object, got); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(normalized(t, d), normalized(t, got)); diff != "" {
			t.Errorf("Deployment %s differs from the builder (-builder +rendered):\n%s", d.Name, diff)
		}
	}
	if deployments != 9 {
		t.Errorf("compared %d Deployments, the sample has 9 (4 services, gateway, lb, 3 workers)", deployments)
	}
}

// normalized is obj through JSON, as the API would see it: nil and empty
// collections compare equal.
func normalized(t *testing.T, obj client.Object) map[string]any {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	delete(m, "status")
	dropNullTimestamps(m)
	return m
}

// TestRenderAppliesTheCRDDefaults: a manifest with only the required fields
// renders with the CRD's defaults (the values live in the CRD, not in Go).
func TestRenderAppliesTheCRDDefaults(t *testing.T) {
	minimal := `apiVersion: platform.vkparser.io/v1alpha1
kind: ParserPlatform
metadata: {name: mini}
spec:
  services: [{name: auth, image: auth:1, port: 8001}]
  gateway: {image: gw:1}
`
	objs := mustRender(t, minimal, "-f", "-")
	byKey := map[string]*unstructured.Unstructured{}
	for _, u := range objs {
		byKey[keyOf(u)] = u
		if u.GetNamespace() != "default" {
			t.Errorf("%s: namespace %q, want default", keyOf(u), u.GetNamespace())
		}
	}
	db := &appsv1.StatefulSet{}
	mustConvert(t, byKey, "StatefulSet/mini-db-0", db)
	if img := db.Spec.Template.Spec.Containers[0].Image; img != "postgres:16-alpine" {
		t.Errorf("shard image %q, want the CRD default postgres:16-alpine", img)
	}
	if _, ok := byKey["StatefulSet/mini-db-1"]; ok {
		t.Error("database.shards defaults to 1, got a second shard")
	}
	lb := &corev1.Service{}
	mustConvert(t, byKey, "Service/mini-lb", lb)
	if lb.Spec.Type != corev1.ServiceTypeLoadBalancer || lb.Spec.Ports[0].Port != 80 {
		t.Errorf("lb Service %s port %d, want the CRD defaults LoadBalancer port 80", lb.Spec.Type, lb.Spec.Ports[0].Port)
	}
	cache := &appsv1.StatefulSet{}
	mustConvert(t, byKey, "StatefulSet/mini-cache", cache)
	if *cache.Spec.Replicas != 6 {
		t.Errorf("cache replicas %d, want 6 (CRD defaults: 3 masters, 1 replica each)", *cache.Spec.Replicas)
	}
}

func mustConvert(t *testing.T, byKey map[string]*unstructured.Unstructured, key string, into any) {
	t.Helper()
	u, ok := byKey[key]
	if !ok {
		t.Fatalf("%s not rendered", key)
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, into); err != nil {
		t.Fatal(err)
	}
}

func secretValues(t *testing.T, objs []*unstructured.Unstructured) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, u := range objs {
		if u.GetKind() != "Secret" {
			continue
		}
		data, _, _ := unstructured.NestedStringMap(u.Object, "data")
		for k, v := range data {
			b, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				t.Fatal(err)
			}
			out[u.GetName()+"/"+k] = string(b)
		}
	}
	return out
}

func TestRenderSecrets(t *testing.T) {
	first := mustRender(t, "", "-f", samplePath)
	placeholders := secretValues(t, first)
	for _, key := range []string{"vk-db-0-credentials/password", "vk-cache/password", "vk-broker/password"} {
		if placeholders[key] != secretPlaceholder {
			t.Errorf("%s = %q, want the placeholder", key, placeholders[key])
		}
	}
	if again := secretValues(t, mustRender(t, "", "-f", samplePath)); !cmp.Equal(placeholders, again) {
		t.Error("two renders of the same manifest differ")
	}
	generated := secretValues(t, mustRender(t, "", "-f", samplePath, "--generate-secrets"))
	other := secretValues(t, mustRender(t, "", "-f", samplePath, "--generate-secrets"))
	for _, key := range []string{"vk-db-0-credentials/password", "vk-cache/password", "vk-broker/password"} {
		if v := generated[key]; len(v) < 20 || v == other[key] || strings.Contains(v, secretPlaceholder) {
			t.Errorf("--generate-secrets: %s = %q (other run %q), want a fresh random value", key, v, other[key])
		}
	}
	for key, v := range generated {
		if strings.Contains(v, secretPlaceholder) {
			t.Errorf("--generate-secrets: %s still holds the placeholder", key)
		}
	}
}

func TestRenderOwnerReferencesOnlyWithUID(t *testing.T) {
	for _, u := range mustRender(t, "", "-f", samplePath) {
		if len(u.GetOwnerReferences()) > 0 {
			t.Fatalf("%s has owner references though the manifest has no uid", keyOf(u))
		}
	}
	withUID := strings.Replace(sampleManifest(t), "  name: vk\n", "  name: vk\n  uid: 1111-2222\n", 1)
	for _, u := range mustRender(t, withUID, "-f", "-") {
		refs := u.GetOwnerReferences()
		if len(refs) != 1 || refs[0].UID != "1111-2222" || refs[0].Kind != "ParserPlatform" || refs[0].Controller == nil || !*refs[0].Controller {
			t.Fatalf("%s: owner references %+v, want the platform as controller", keyOf(u), refs)
		}
	}
}

func TestRenderServiceMonitor(t *testing.T) {
	objs := mustRender(t, "", "-f", samplePath, "--service-monitor")
	if last := objs[len(objs)-1]; keyOf(last) != "ServiceMonitor/vk" || last.GetAPIVersion() != "monitoring.coreos.com/v1" {
		t.Errorf("last document is %s %s, want the ServiceMonitor vk", last.GetAPIVersion(), keyOf(last))
	}
	disabled := strings.Replace(sampleManifest(t), "serviceMonitor: auto", "serviceMonitor: disabled", 1)
	for _, u := range mustRender(t, disabled, "-f", "-", "--service-monitor") {
		if u.GetKind() == "ServiceMonitor" {
			t.Error("ServiceMonitor printed for a platform that disables it")
		}
	}
}

func TestRenderJSONFromStdin(t *testing.T) {
	js, err := yaml.YAMLToJSON([]byte(sampleManifest(t)))
	if err != nil {
		t.Fatal(err)
	}
	fromJSON, _, code := render(t, string(js), "-f", "-")
	fromYAML, _, _ := render(t, "", "-f", samplePath)
	if code != 0 || fromJSON != fromYAML {
		t.Errorf("JSON on stdin (exit %d) renders differently from the YAML file", code)
	}
}

func TestRenderBadInput(t *testing.T) {
	sample := sampleManifest(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
		code  int
		want  string
	}{
		{"no file", "", nil, 2, "-f FILE is required"},
		{"unknown flag", "", []string{"-f", "x", "--frobnicate"}, 2, "flag provided but not defined: -frobnicate"},
		{"stray argument", "", []string{"-f", "x", "extra"}, 2, `unexpected argument "extra"`},
		{"missing file", "", []string{"-f", filepath.Join(dir, "nope.yaml")}, 1, "no such file"},
		{"not YAML", "{{{", []string{"-f", "-"}, 1, "stdin:"},
		{"empty", "# nothing\n", []string{"-f", "-"}, 1, "holds 0 documents"},
		{"two documents", sample + "\n---\n" + sample, []string{"-f", "-"}, 1, "holds 2 documents"},
		{"another kind", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", []string{"-f", "-"}, 1, "holds a v1 ConfigMap, not a ParserPlatform"},
		{"unknown field", strings.Replace(sample, "  services:", "  servics: []\n  services:", 1), []string{"-f", "-"}, 1, `unknown field "spec.servics"`},
		{"duplicate field", strings.Replace(sample, "  deletionPolicy: Retain", "  deletionPolicy: Retain\n  deletionPolicy: Delete", 1), []string{"-f", "-"}, 1, "deletionPolicy"},
		{"invalid", strings.Replace(sample, "shards: 4", "shards: 0", 1), []string{"-f", "-"}, 1, "spec.database.shards"},
		{"CEL rule", strings.Replace(sample, "name: comments", "name: gateway", 1), []string{"-f", "-"}, 1, "spec.services[1].name"},
		{"namespace mismatch", strings.Replace(sample, "  name: vk\n", "  name: vk\n  namespace: a\n", 1), []string{"-f", "-", "-n", "b"}, 1, "does not match -n b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := render(t, tc.stdin, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.want) || out != "" {
				t.Errorf("exit %d, stderr %q, stdout %d bytes; want exit %d, stderr with %q, no stdout", code, errOut, len(out), tc.code, tc.want)
			}
			if !strings.HasPrefix(errOut, "parser-operator render: ") {
				t.Errorf("stderr %q does not name the command", errOut)
			}
		})
	}
}

func TestRenderHelp(t *testing.T) {
	out, _, code := render(t, "", "--help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, flag := range []string{"-f, --filename", "-n, --namespace", "--generate-secrets", "--service-monitor", "Exit status"} {
		if !strings.Contains(out, flag) {
			t.Errorf("usage does not mention %s", flag)
		}
	}
}

// TestRenderPlatformIsWhatTheAPIServerStores checks loadPlatform directly:
// explicit values are kept, left-out ones defaulted.
func TestRenderPlatformIsWhatTheAPIServerStores(t *testing.T) {
	p, err := loadPlatform([]byte(sampleManifest(t)), "parser")
	if err != nil {
		t.Fatal(err)
	}
	if p.Namespace != "parser" || p.Name != "vk" || p.Spec.Database.Shards != 4 {
		t.Errorf("got %s/%s with %d shards", p.Namespace, p.Name, p.Spec.Database.Shards)
	}
	if p.Spec.Database.Image != "postgres:16-alpine" || p.Spec.LoadBalancer.ServiceType != "LoadBalancer" {
		t.Errorf("defaults not applied: database image %q, lb type %q", p.Spec.Database.Image, p.Spec.LoadBalancer.ServiceType)
	}
	if p.Spec.Monitoring.ServiceMonitor != platformv1.ServiceMonitorAuto {
		t.Errorf("serviceMonitor %q", p.Spec.Monitoring.ServiceMonitor)
	}
}
