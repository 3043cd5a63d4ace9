package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// platformSpec is one platform of a phase: its manifest and the children
// render predicts for it.
type platformSpec struct {
	name, namespace string
	manifest        []byte
	rendered        []byte // the render subcommand's YAML stream
	children        []*unstructured.Unstructured
}

func (p *platformSpec) key() string { return p.namespace + "/" + p.name }

// childKeys are the tracker's keys of the rendered children.
func (p *platformSpec) childKeys() []string {
	out := make([]string, 0, len(p.children))
	for _, c := range p.children {
		out = append(out, childKey(c.GetKind(), p.namespace, c.GetName()))
	}
	return out
}

// newPlatform is the sample renamed and placed in a namespace, rendered by
// the operator binary's render subcommand.
func newPlatform(ctx context.Context, bin string, sample *unstructured.Unstructured, name, namespace string) (*platformSpec, error) {
	u := sample.DeepCopy()
	u.SetName(name)
	u.SetNamespace(namespace)
	manifest, err := yaml.Marshal(u.Object)
	if err != nil {
		return nil, err
	}
	p := &platformSpec{name: name, namespace: namespace, manifest: manifest}
	cmd := exec.CommandContext(ctx, bin, "render", "-f", "-", "-n", namespace)
	cmd.Stdin = bytes.NewReader(manifest)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = childProcAttr()
	if p.rendered, err = cmd.Output(); err != nil {
		return nil, fmt.Errorf("parser-operator render (is `case \"render\"` dispatched in cmd/main.go?): %w: %s", err, stderr.String())
	}
	if p.children, err = decodeStream(p.rendered); err != nil {
		return nil, fmt.Errorf("reading the render output: %w", err)
	}
	return p, nil
}

func readSample(path string) (*unstructured.Unstructured, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(data, &u.Object); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return u, nil
}

func decodeStream(stream []byte) ([]*unstructured.Unstructured, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(stream)))
	var out []*unstructured.Unstructured
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(doc, &u.Object); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
}

// renderAll renders many platforms, two render processes at a time.
func renderAll(ctx context.Context, bin string, sample *unstructured.Unstructured, names, namespaces []string) ([]*platformSpec, error) {
	out := make([]*platformSpec, len(names))
	errs := make([]error, len(names))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for i := range jobs {
				out[i], errs[i] = newPlatform(ctx, bin, sample, names[i], namespaces[i])
			}
		})
	}
	for i := range names {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return out, errors.Join(errs...)
}

// plainCreate creates objects with a plain client, inflight requests at a
// time, in the given order, and returns the wall time.
func plainCreate(ctx context.Context, c client.Client, objs []*unstructured.Unstructured, inflight int) (time.Duration, error) {
	jobs := make(chan *unstructured.Unstructured)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	start := time.Now()
	for range inflight {
		wg.Go(func() {
			for obj := range jobs {
				if err := c.Create(ctx, obj.DeepCopy()); err != nil {
					mu.Lock()
					first = errors.Join(first, fmt.Errorf("creating %s %s/%s: %w", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err))
					mu.Unlock()
				}
			}
		})
	}
	for _, obj := range objs {
		jobs <- obj
	}
	close(jobs)
	wg.Wait()
	return time.Since(start), first
}

// inNamespace is a copy of the children placed in another namespace (the
// plain loop's copy of the operator's platforms).
func inNamespace(objs []*unstructured.Unstructured, namespace string) []*unstructured.Unstructured {
	out := make([]*unstructured.Unstructured, len(objs))
	for i, o := range objs {
		out[i] = o.DeepCopy()
		out[i].SetNamespace(namespace)
	}
	return out
}

// kubectlApply runs `kubectl apply --server-side` of a rendered stream, as a
// user would, and returns its wall time.
func kubectlApply(ctx context.Context, kubectl, kubeconfig, cacheDir, file string) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfig, "--cache-dir", cacheDir,
		"apply", "--server-side", "--field-manager=bench-kubectl", "-f", file)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = childProcAttr()
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("kubectl apply --server-side: %w\n%s", err, out.String())
	}
	if n := strings.Count(out.String(), "serverside-applied"); n == 0 {
		return 0, fmt.Errorf("kubectl applied nothing:\n%s", out.String())
	}
	return elapsed, nil
}

// warmKubectl fills kubectl's discovery cache, as a user's is.
func warmKubectl(ctx context.Context, kubectl, kubeconfig, cacheDir string) error {
	cmd := exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfig, "--cache-dir", cacheDir, "api-resources")
	cmd.SysProcAttr = childProcAttr()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("kubectl api-resources: %w\n%s", err, out)
	}
	return nil
}
