package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/crd"
	"github.com/vkparser/parser-operator/internal/resource"
)

// renderUsage is the whole help of `parser-operator render`.
const renderUsage = `Usage: parser-operator render -f FILE [-n NAMESPACE] [--generate-secrets] [--service-monitor]

Prints the children the operator would create for one ParserPlatform, as a
multi-document YAML stream, in the order it creates them: a preview for
reviews and GitOps diffs, made without a cluster.

The manifest is read as the API server would store it: unknown fields and
the CRD's rules (OpenAPI bounds, CEL) are refused as by 'kubectl apply', and
the CRD's defaults are filled in.

  -f, --filename FILE    the ParserPlatform manifest, YAML or JSON ("-": stdin)
  -n, --namespace NS     the platform's namespace (default: the manifest's, else "default")
  --generate-secrets     put fresh random values in the generated Secrets
                         (default: the fixed placeholder ` + secretPlaceholder + `)
  --service-monitor      also print the Prometheus Operator ServiceMonitor, as on a
                         cluster where its CRD is installed
  --operator-namespace NS
                         the operator's namespace, from which the NetworkPolicies
                         admit it (default: ` + resource.DefaultOperatorNamespace + `)

Owner references to the platform are printed only when the manifest has a
metadata.uid (e.g. 'kubectl get pp NAME -o yaml' of a live platform).

Examples:
  parser-operator render -f config/samples/platform_v1alpha1_parserplatform.yaml -n parser
  kubectl get pp vk -n parser -o yaml | parser-operator render -f - | kubectl diff -f -

Exit status: 0 when the children were printed, 1 when the manifest could not
be read or is not a valid ParserPlatform, 2 for wrong flags.
`

// secretPlaceholder stands for every value the operator generates (database,
// cache and broker passwords, the Erlang cookie): a preview must neither leak
// the live values nor churn with random ones. It is URL-safe, so the broker
// URL that embeds it still parses.
const secretPlaceholder = "GENERATED-BY-PARSER-OPERATOR" //nolint:gosec // G101: the placeholder printed instead of a secret.

// renderOptions are the parsed flags of `parser-operator render`.
type renderOptions struct {
	file            string
	namespace       string
	generateSecrets bool
	serviceMonitor  bool
	// operatorNamespace is where the operator runs (NetworkPolicies).
	operatorNamespace string
}

// runRender is `parser-operator render`. It returns the process exit status.
func runRender(args []string, stdout, stderr io.Writer) int {
	return renderMain(args, os.Stdin, stdout, stderr)
}

// renderMain is runRender with stdin as a parameter, for tests.
func renderMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	o, err := parseRenderFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		_, _ = fmt.Fprint(stdout, renderUsage)
		return 0
	}
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "parser-operator render: %v\nRun 'parser-operator render --help' for usage.\n", err)
		return 2
	}
	out, err := o.render(stdin)
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "parser-operator render: %v\n", err)
		return 1
	}
	if _, err := stdout.Write(out); err != nil {
		_, _ = fmt.Fprintf(stderr, "parser-operator render: %v\n", err)
		return 1
	}
	return 0
}

func parseRenderFlags(args []string) (*renderOptions, error) {
	o := &renderOptions{}
	fs := flag.NewFlagSet("parser-operator render", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	for _, name := range []string{"f", "filename"} {
		fs.StringVar(&o.file, name, "", "manifest file")
	}
	for _, name := range []string{"n", "namespace"} {
		fs.StringVar(&o.namespace, name, "", "namespace")
	}
	fs.BoolVar(&o.generateSecrets, "generate-secrets", false, "random secret values")
	fs.BoolVar(&o.serviceMonitor, "service-monitor", false, "print the ServiceMonitor")
	fs.StringVar(&o.operatorNamespace, "operator-namespace", "", "the operator's namespace")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	switch {
	case fs.NArg() > 0:
		return nil, fmt.Errorf("unexpected argument %q (the manifest goes after -f)", fs.Arg(0))
	case o.file == "":
		return nil, errors.New("-f FILE is required (\"-\" reads stdin)")
	}
	return o, nil
}

// render reads the manifest and returns the YAML stream of its children.
func (o *renderOptions) render(stdin io.Reader) ([]byte, error) {
	data, err := o.read(stdin)
	if err != nil {
		return nil, err
	}
	p, err := loadPlatform(data, o.namespace)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.source(), err)
	}
	children := resource.Children(p, o.credentials(p), resource.WithOperatorNamespace(o.operatorNamespace))
	if o.serviceMonitor && p.Spec.Monitoring.ServiceMonitor != platformv1.ServiceMonitorDisabled {
		children = append(children, resource.ServiceMonitor(p))
	}
	return marshalStream(children, p.UID != "")
}

func (o *renderOptions) read(stdin io.Reader) ([]byte, error) {
	if o.file == "-" {
		data, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("reading stdin: %w", err)
		}
		return data, nil
	}
	return os.ReadFile(o.file) //nolint:gosec // G703: the caller's own CLI argument, read with the caller's rights.
}

func (o *renderOptions) source() string {
	if o.file == "-" {
		return "stdin"
	}
	return o.file
}

// credentials are the generated values: the placeholder, or fresh random
// ones with --generate-secrets (crypto/rand, 130 bits, URL-safe).
func (o *renderOptions) credentials(p *platformv1.ParserPlatform) resource.Credentials {
	creds := resource.Credentials{}
	for _, key := range resource.GeneratedKeys(p) {
		creds[key] = secretPlaceholder
		if o.generateSecrets {
			creds[key] = rand.Text()
		}
	}
	return creds
}

// loadPlatform decodes one ParserPlatform manifest and makes of it what the
// API server would store: namespace set, unknown fields refused, defaults
// filled in, the CRD's rules checked.
func loadPlatform(data []byte, namespace string) (*platformv1.ParserPlatform, error) {
	obj, err := decodeOne(data)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: obj}
	if gvk := u.GroupVersionKind(); gvk != platformv1.GroupVersion.WithKind("ParserPlatform") {
		return nil, fmt.Errorf("holds %s, not a ParserPlatform (apiVersion %s)", describeGVK(u), platformv1.GroupVersion)
	}
	if err := setNamespace(u, namespace); err != nil {
		return nil, err
	}
	schema, err := crd.Load()
	if err != nil {
		return nil, err
	}
	if unknown := schema.Prune(obj); len(unknown) > 0 {
		return nil, fmt.Errorf("unknown field %s", strings.Join(quoteAll(unknown), ", "))
	}
	schema.Default(obj)
	if errs := schema.Validate(context.Background(), obj); len(errs) > 0 {
		return nil, fmt.Errorf("ParserPlatform %q is invalid: %w", u.GetName(), errs.ToAggregate())
	}
	p := &platformv1.ParserPlatform{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(obj, p, true); err != nil {
		return nil, fmt.Errorf("decoding the ParserPlatform: %w", err)
	}
	return p, nil
}

// decodeOne reads exactly one YAML or JSON object; duplicate fields are
// refused, as kubectl's strict field validation does.
func decodeOne(data []byte) (map[string]any, error) {
	var docs [][]byte
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading YAML: %w", err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) > 0 {
			docs = append(docs, doc)
		}
	}
	if len(docs) != 1 {
		return nil, fmt.Errorf("holds %d documents; render takes exactly one ParserPlatform", len(docs))
	}
	js, err := yaml.YAMLToJSONStrict(docs[0])
	if err != nil {
		return nil, fmt.Errorf("not valid YAML or JSON: %w", err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(js); err != nil {
		return nil, fmt.Errorf("not a Kubernetes object: %w", err)
	}
	return u.Object, nil
}

// setNamespace applies -n: it fills in a missing namespace and, as kubectl,
// refuses one that contradicts the manifest.
func setNamespace(u *unstructured.Unstructured, namespace string) error {
	switch have := u.GetNamespace(); {
	case namespace != "" && have != "" && have != namespace:
		return fmt.Errorf("the namespace of the manifest (%s) does not match -n %s", have, namespace)
	case have == "" && namespace == "":
		u.SetNamespace("default")
	case have == "":
		u.SetNamespace(namespace)
	}
	return nil
}

// marshalStream prints the children as one YAML stream: apiVersion and kind
// set, no status, no null timestamps, owner references only when the
// platform has a uid for them to point at.
func marshalStream(children []client.Object, withOwner bool) ([]byte, error) {
	var out bytes.Buffer
	for _, child := range children {
		obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(child)
		if err != nil {
			return nil, fmt.Errorf("converting %s %s: %w", kindOf(child), child.GetName(), err)
		}
		clean(obj)
		if !withOwner {
			unstructured.RemoveNestedField(obj, "metadata", "ownerReferences")
		}
		doc, err := yaml.Marshal(obj)
		if err != nil {
			return nil, fmt.Errorf("printing %s %s: %w", kindOf(child), child.GetName(), err)
		}
		out.WriteString("---\n")
		out.Write(doc)
	}
	return out.Bytes(), nil
}

// clean drops what an object that was never stored carries as noise: its
// status (also in volume claim templates) and null creationTimestamps.
func clean(obj map[string]any) {
	delete(obj, "status")
	dropNullTimestamps(obj)
	templates, _, _ := unstructured.NestedSlice(obj, "spec", "volumeClaimTemplates")
	for _, t := range templates {
		if m, ok := t.(map[string]any); ok {
			delete(m, "status")
		}
	}
	if templates != nil {
		_ = unstructured.SetNestedSlice(obj, templates, "spec", "volumeClaimTemplates")
	}
}

func dropNullTimestamps(v any) {
	switch v := v.(type) {
	case map[string]any:
		if ts, ok := v["creationTimestamp"]; ok && ts == nil {
			delete(v, "creationTimestamp")
		}
		for _, child := range v {
			dropNullTimestamps(child)
		}
	case []any:
		for _, child := range v {
			dropNullTimestamps(child)
		}
	}
}

func kindOf(obj client.Object) string { return obj.GetObjectKind().GroupVersionKind().Kind }

func describeGVK(u *unstructured.Unstructured) string {
	if u.GetKind() == "" {
		return "an object without kind"
	}
	return fmt.Sprintf("a %s %s", u.GetAPIVersion(), u.GetKind())
}

func quoteAll(in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

// stripComments blanks YAML comment lines, so a document of comments only
// counts as empty.
func stripComments(doc []byte) []byte {
	var out bytes.Buffer
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			out.Write(line)
			out.WriteByte('\n')
		}
	}
	return out.Bytes()
}
