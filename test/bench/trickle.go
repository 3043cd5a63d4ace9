package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vkparser/parser-operator/internal/resource"
)

// trickleWindow is what a steady trickle of spec changes costs: one change
// every Period, each to the next converged platform in turn (the image of
// its first service), measured from the patch to the benchmark's watch
// seeing that service's Deployment carry the new image.
type trickleWindow struct {
	Window, Period time.Duration
	changeTimes
	Reconciles, Writes float64
	Rows               []string
}

// changeTimes are how fast a window's spec changes reached their child.
type changeTimes struct {
	Changes, Reached int
	// ChangeToChild are the latencies of the changes that reached their
	// Deployment, sorted.
	ChangeToChild                      []time.Duration
	ChangeToChildP50, ChangeToChildP99 time.Duration
	// QueueWait is the operator's work-queue wait during the window, in
	// seconds.
	QueueWaitP50, QueueWaitP99 float64
}

// record takes the latencies the watch saw and the work-queue wait between
// two scrapes of the operator.
func (c *changeTimes) record(watch *imageWatch, m0, m1 families) {
	c.ChangeToChild = watch.latencies()
	c.Reached = len(c.ChangeToChild)
	c.ChangeToChildP50, c.ChangeToChildP99 = percentile(c.ChangeToChild, 0.5), percentile(c.ChangeToChild, 0.99)
	ours := where("controller", controllerName)
	queue := m1.histogram("workqueue_queue_duration_seconds", ours).minus(m0.histogram("workqueue_queue_duration_seconds", ours))
	c.QueueWaitP50, c.QueueWaitP99 = queue.quantile(0.5), queue.quantile(0.99)
}

// trickle runs --trickle of spec changes over the many platforms.
func (e *env) trickle(ctx context.Context, op *operatorProcess) error {
	if e.o.trickle <= 0 {
		return nil
	}
	svc, err := firstService(e.sampleObj)
	if err != nil {
		return err
	}
	w := &e.res.Trickle
	w.Period = e.o.tricklePeriod
	watch, err := watchImages(ctx, e.c.admin)
	if err != nil {
		return err
	}
	defer watch.stop()
	progress("trickle: one spec change every %s for %s (the image of service %q, platform after platform)", w.Period, e.o.trickle, svc.name)
	mark, err := e.markWindow(ctx, op)
	if err != nil {
		return err
	}
	start := time.Now()
	for i := 0; time.Since(start) < e.o.trickle; i++ {
		p := e.many[i%len(e.many)]
		image := fmt.Sprintf("%s-trickle.%d", svc.image, i)
		deployment := types.NamespacedName{Namespace: p.namespace, Name: resource.Name(p.name, svc.name)}
		watch.expect(deployment, image)
		if err := setServiceImage(ctx, e.c.adminClient, p, image); err != nil {
			return err
		}
		w.Changes++
		if err := sleep(ctx, w.Period); err != nil {
			return err
		}
	}
	if err := op.settle(ctx, 0, e.o.timeout); err != nil {
		return err
	}
	w.Window = time.Since(start)
	var m1 families
	w.Writes, w.Rows, m1, err = e.closeWindow(ctx, op, mark)
	if err != nil {
		return err
	}
	w.record(watch, mark.metrics, m1)
	ours := where("controller", controllerName)
	w.Reconciles = m1.sum("controller_runtime_reconcile_total", ours) - mark.metrics.sum("controller_runtime_reconcile_total", ours)
	progress("trickle: %d changes, %d reached their Deployment, change to child p50 %s p99 %s, queue wait p99 %s",
		w.Changes, w.Reached, seconds(w.ChangeToChildP50), seconds(w.ChangeToChildP99), secondsF(w.QueueWaitP99))
	if w.Reached < w.Changes {
		return fmt.Errorf("%d of %d changes never reached their Deployment", w.Changes-w.Reached, w.Changes)
	}
	return nil
}

type service struct{ name, image string }

// firstService is the sample's first service: the one the trickle edits.
func firstService(sample *unstructured.Unstructured) (service, error) {
	list, _, err := unstructured.NestedSlice(sample.Object, "spec", "services")
	if err != nil {
		return service{}, fmt.Errorf("the sample's spec.services: %w", err)
	}
	if len(list) == 0 {
		return service{}, fmt.Errorf("the sample declares no service (spec.services) for the trickle to change")
	}
	first, _ := list[0].(map[string]any)
	name, _ := first["name"].(string)
	image, _ := first["image"].(string)
	if name == "" || image == "" {
		return service{}, fmt.Errorf("the sample's first service has no name or image")
	}
	return service{name, image}, nil
}

// setServiceImage patches one platform's first service image, as `kubectl
// patch --type=json` would.
func setServiceImage(ctx context.Context, c client.Client, p *platformSpec, image string) error {
	patch, err := json.Marshal([]map[string]any{{"op": "replace", "path": "/spec/services/0/image", "value": image}})
	if err != nil {
		return err
	}
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(platformGVR.GroupVersion().WithKind("ParserPlatform"))
	obj.SetNamespace(p.namespace)
	obj.SetName(p.name)
	return c.Patch(ctx, obj, client.RawPatch(types.JSONPatchType, patch))
}

// imageWatch watches the operator's Deployments and times when each
// expected image shows up in one of its Deployment's containers.
type imageWatch struct {
	mu      sync.Mutex
	pending map[types.NamespacedName]expected
	reached []time.Duration
	cancel  context.CancelFunc
}

type expected struct {
	image string
	since time.Time
}

func watchImages(ctx context.Context, cfg *rest.Config) (*imageWatch, error) {
	clients, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &imageWatch{pending: map[types.NamespacedName]expected{}, cancel: cancel}
	factory := informers.NewSharedInformerFactoryWithOptions(clients, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.LabelSelector = resource.LabelManagedBy + "=" + resource.ManagedBy
	}))
	informer := factory.Apps().V1().Deployments().Informer()
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    w.seen,
		UpdateFunc: func(_, obj any) { w.seen(obj) },
	}); err != nil {
		cancel()
		return nil, err
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		cancel()
		return nil, fmt.Errorf("the Deployment watch did not sync")
	}
	return w, nil
}

func (w *imageWatch) stop() { w.cancel() }

func (w *imageWatch) expect(key types.NamespacedName, image string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pending[key] = expected{image: image, since: time.Now()}
}

func (w *imageWatch) seen(obj any) {
	d, ok := obj.(*appsv1.Deployment)
	if !ok {
		return
	}
	key := types.NamespacedName{Namespace: d.Namespace, Name: d.Name}
	w.mu.Lock()
	defer w.mu.Unlock()
	want, ok := w.pending[key]
	if ok && slices.ContainsFunc(d.Spec.Template.Spec.Containers, func(c corev1.Container) bool { return c.Image == want.image }) {
		w.reached = append(w.reached, time.Since(want.since))
		delete(w.pending, key)
	}
}

// waitReached waits until the change expected of key, if any, has been
// seen.
func (w *imageWatch) waitReached(ctx context.Context, key types.NamespacedName, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		w.mu.Lock()
		want, pending := w.pending[key]
		w.mu.Unlock()
		switch {
		case !pending:
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("%s never got image %s (%s after the change)", key, want.image, timeout)
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}

// latencies are the change-to-child times seen so far, sorted.
func (w *imageWatch) latencies() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := slices.Clone(w.reached)
	slices.Sort(out)
	return out
}

// percentile of sorted durations, nearest rank; 0 for none.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func (r *results) printTrickle(p func(string, ...any)) {
	w := r.Trickle
	if w.Changes == 0 {
		return
	}
	p("### Trickle: one spec change every %s across %d converged platforms (%d changes in %s)", seconds(w.Period), r.Many.Platforms, w.Changes, seconds(w.Window))
	p("")
	p("| measure | value | target |")
	p("|---|---|---|")
	p("| changes that reached their Deployment | %d of %d | all |", w.Reached, w.Changes)
	p("| change to child (patch to the Deployment's new image seen), p50 / p99 | %s / %s | p99 < 1 s: %s |",
		seconds(w.ChangeToChildP50), seconds(w.ChangeToChildP99), verdict(w.ChangeToChildP99 < time.Second))
	p("| work-queue wait p50 / p99 | %s / %s | p99 < 1 s: %s |", secondsF(w.QueueWaitP50), secondsF(w.QueueWaitP99), verdict(w.QueueWaitP99 < 1))
	p("| reconciles | %.0f | |", w.Reconciles)
	p("| operator writes (%s) | %.0f | |", strings.Join(w.Rows, "; "), w.Writes)
	p("")
}
