package main

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/resource"
)

// childKinds are the kinds a platform's children come in, with their
// resources; the informers watch these (metadata only, operator-labelled).
var childKinds = map[string]schema.GroupVersionResource{
	"ServiceAccount":          {Version: "v1", Resource: "serviceaccounts"},
	"Secret":                  {Version: "v1", Resource: "secrets"},
	"ConfigMap":               {Version: "v1", Resource: "configmaps"},
	"Service":                 {Version: "v1", Resource: "services"},
	"StatefulSet":             {Group: "apps", Version: "v1", Resource: "statefulsets"},
	"Deployment":              {Group: "apps", Version: "v1", Resource: "deployments"},
	"HorizontalPodAutoscaler": {Group: "autoscaling", Version: "v2", Resource: "horizontalpodautoscalers"},
	"PodDisruptionBudget":     {Group: "policy", Version: "v1", Resource: "poddisruptionbudgets"},
	"NetworkPolicy":           {Group: "networking.k8s.io", Version: "v1", Resource: "networkpolicies"},
}

var platformGVR = platformv1.GroupVersion.WithResource("parserplatforms")

// tracker watches children and platforms and tells when a set of expected
// children all exist and every expected platform reports
// status.observedGeneration == metadata.generation. Times are when the
// benchmark's watch delivered the event: a few milliseconds after the write.
type tracker struct {
	mu        sync.Mutex
	want      map[string]bool // "Kind ns/name" of children, "ParserPlatform ns/name"
	namespace map[string]bool // namespaces of the current phase
	seen      map[string]time.Time
	extra     []string // operator-labelled children in the phase's namespaces nobody expected
	left      int
	done      chan struct{}
	doneAt    time.Time
	cancel    context.CancelFunc
}

func childKey(kind, ns, name string) string { return kind + " " + ns + "/" + name }

// startTracker starts the informers and waits for their first list.
func startTracker(ctx context.Context, cfg *rest.Config) (*tracker, error) {
	ctx, cancel := context.WithCancel(ctx)
	t := &tracker{cancel: cancel}
	meta, err := metadata.NewForConfig(unthrottled(cfg))
	if err != nil {
		cancel()
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(unthrottled(cfg))
	if err != nil {
		cancel()
		return nil, err
	}
	ours := func(o *metav1.ListOptions) { o.LabelSelector = resource.LabelManagedBy + "=" + resource.ManagedBy }
	metaFactory := metadatainformer.NewFilteredSharedInformerFactory(meta, 0, metav1.NamespaceAll, ours)
	var synced []cache.InformerSynced
	for kind, gvr := range childKinds {
		inf := metaFactory.ForResource(gvr).Informer()
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: func(obj any) { t.childAdded(kind, obj) },
		}); err != nil {
			cancel()
			return nil, err
		}
		synced = append(synced, inf.HasSynced)
	}
	dynFactory := dynamicinformer.NewDynamicSharedInformerFactory(dyn, 0)
	inf := dynFactory.ForResource(platformGVR).Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    t.platformChanged,
		UpdateFunc: func(_, obj any) { t.platformChanged(obj) },
	}); err != nil {
		cancel()
		return nil, err
	}
	synced = append(synced, inf.HasSynced)
	metaFactory.Start(ctx.Done())
	dynFactory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		cancel()
		return nil, fmt.Errorf("the benchmark's informers did not sync")
	}
	return t, nil
}

func (t *tracker) stop() { t.cancel() }

// expect arms the tracker for one phase: children and platforms to wait for.
func (t *tracker) expect(children, platforms []string, namespaces []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.want = map[string]bool{}
	t.namespace = map[string]bool{}
	t.seen = map[string]time.Time{}
	t.extra = nil
	for _, k := range children {
		t.want[k] = true
	}
	for _, k := range platforms {
		t.want["ParserPlatform "+k] = true
	}
	for _, ns := range namespaces {
		t.namespace[ns] = true
	}
	t.left = len(t.want)
	t.done = make(chan struct{})
	t.doneAt = time.Time{}
}

func (t *tracker) childAdded(kind string, obj any) {
	m, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return
	}
	t.mark(childKey(kind, m.Namespace, m.Name), m.Namespace)
}

func (t *tracker) platformChanged(obj any) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return
	}
	observed, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
	if u.GetGeneration() > 0 && observed == u.GetGeneration() {
		t.mark("ParserPlatform "+u.GetNamespace()+"/"+u.GetName(), "")
	}
}

func (t *tracker) mark(key, namespace string) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.want == nil {
		return
	}
	if !t.want[key] {
		if namespace != "" && t.namespace[namespace] {
			t.extra = append(t.extra, key)
		}
		return
	}
	if _, dup := t.seen[key]; dup {
		return
	}
	t.seen[key] = now
	if t.left--; t.left == 0 {
		t.doneAt = now
		close(t.done)
	}
}

// wait returns when everything expected was seen, or fails after timeout
// naming a few of the missing.
func (t *tracker) wait(ctx context.Context, timeout time.Duration) (time.Time, error) {
	t.mu.Lock()
	done := t.done
	t.mu.Unlock()
	select {
	case <-done:
		t.mu.Lock()
		defer t.mu.Unlock()
		return t.doneAt, nil
	case <-time.After(timeout):
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var missing []string
	for k := range t.want {
		if _, ok := t.seen[k]; !ok {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing)
	if len(missing) > 5 {
		missing = append(missing[:5], fmt.Sprintf("... (%d in all)", len(missing)))
	}
	return time.Time{}, fmt.Errorf("not converged after %s; missing %v", timeout, missing)
}

// unexpected lists operator-labelled children of the phase's namespaces that
// render did not predict.
func (t *tracker) unexpected() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.extra...)
}
