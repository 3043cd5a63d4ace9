package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/metrics"
	"github.com/vkparser/parser-operator/internal/resource"
)

// applyChildren ensures every desired child, in order, and records an event
// for each one created or updated.
func (r *ParserPlatformReconciler) applyChildren(ctx context.Context, p *platformv1.ParserPlatform, desired []client.Object) reconcileResult {
	return r.writeChildren(ctx, p, r.childWriter(p, desired, nil), desired)
}

// applyPlatformChildren is applyChildren for the platform's own children
// (all of them but KEDA's and the monitoring kinds'), where the workloads in
// scaled also have their replicas owned by an autoscaler that is not among
// desired (a KEDA ScaledObject's HPA). Its result carries the digest of
// the children as verified, for the status; a restarted operator starts
// from it (seedMemo).
func (r *ParserPlatformReconciler) applyPlatformChildren(ctx context.Context, p *platformv1.ParserPlatform, desired []client.Object, scaled []string) reconcileResult {
	w := r.childWriter(p, desired, scaled)
	r.seedMemo(ctx, p, w, desired)
	res := r.writeChildren(ctx, p, w, desired)
	res.childrenDigest = r.memo.digest(client.ObjectKeyFromObject(p), memoKeys(desired))
	return res
}

// childWriter writes desired's children of p; the workloads in scaled have
// their replicas owned by an autoscaler not among desired.
func (r *ParserPlatformReconciler) childWriter(p *platformv1.ParserPlatform, desired []client.Object, scaled []string) *childWriter {
	targets := hpaTargets(desired)
	for _, name := range scaled {
		targets[name] = true
	}
	return &childWriter{client: r.Client, reader: r.APIReader, owner: p, hpaTargets: targets, memo: &r.memo,
		note: func(reason, msg string) { r.event(p, "Normal", reason, "Update", msg) }}
}

// writeChildren ensures every desired child with w, and records an event
// for each one created or updated.
func (r *ParserPlatformReconciler) writeChildren(ctx context.Context, p *platformv1.ParserPlatform, w *childWriter, desired []client.Object) reconcileResult {
	outcomes := make([]childOutcome, len(desired))
	// Two phases: what pods read (ServiceAccount, Secrets, ConfigMaps) first,
	// so no pod starts without its configuration; then everything else.
	// Within a phase nothing depends on anything else, so writes go in
	// parallel (the API server accepts a Deployment before its Service, an
	// HPA before its Deployment).
	for _, group := range writePhases(desired) {
		var wg sync.WaitGroup
		sem := make(chan struct{}, childWriteParallelism)
		for _, i := range group {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				outcomes[i].act, outcomes[i].err = w.ensure(ctx, desired[i])
			}()
		}
		wg.Wait()
	}
	var res reconcileResult
	for i, obj := range desired {
		r.record(ctx, p, obj, outcomes[i], &res)
	}
	return res
}

// seedMemo fills an empty memo of p (a restart) from the cache when the
// children are in the state status.childrenDigest names: each was found
// matching the same desired state in it, so none is read past the cache.
// A child changed since, or desired differently, changes the digest, and
// every child is compared as after any restart.
func (r *ParserPlatformReconciler) seedMemo(ctx context.Context, p *platformv1.ParserPlatform, w *childWriter, desired []client.Object) {
	platform := client.ObjectKeyFromObject(p)
	if p.Status.ChildrenDigest == "" || !r.memo.cold(platform) {
		return
	}
	candidates := map[string]memoEntry{}
	for _, d := range desired {
		if !memoized(d) {
			continue
		}
		live := newEmpty(d)
		if err := r.Get(ctx, client.ObjectKeyFromObject(d), live); err != nil {
			return // missing, or not cached: the reconcile sees to it
		}
		candidates[memoKey(d)] = memoEntry{uid: live.GetUID(), resourceVersion: live.GetResourceVersion(),
			fingerprint: cachedFingerprint(live), desired: w.desiredHash(d)}
	}
	r.memo.seed(platform, candidates, p.Status.ChildrenDigest)
}

// memoKeys names the children of desired that the memo can hold.
func memoKeys(desired []client.Object) []string {
	var keys []string
	for _, d := range desired {
		if memoized(d) {
			keys = append(keys, memoKey(d))
		}
	}
	return keys
}

// childWriteParallelism bounds the requests one reconcile has in flight:
// the API server's own limit here, measured by the benchmark (16 in flight
// is where a plain client stops getting faster).
const childWriteParallelism = 16

type childOutcome struct {
	act action
	err error
}

// record turns what ensure did to one child into the result, a log line, an
// event and a metric.
func (r *ParserPlatformReconciler) record(ctx context.Context, p *platformv1.ParserPlatform, obj client.Object, o childOutcome, res *reconcileResult) {
	var refused *refusal
	switch {
	case errors.Is(o.err, errNotOwned):
		msg := describe(obj) + " " + errNotOwned.Error() + "; delete it or rename the platform"
		res.refusals = append(res.refusals, msg)
		r.warnOnce(p, "AdoptionRefused", msg)
	case errors.As(o.err, &refused):
		res.refusals = append(res.refusals, refused.Error())
		r.warnOnce(p, refused.reason, refused.Error())
	case o.err != nil:
		res.errs = append(res.errs, fmt.Errorf("reconciling %s: %w", describe(obj), o.err))
	case o.act != actionNone:
		logf.FromContext(ctx).Info(string(o.act)+" child", "child", describe(obj))
		r.event(p, "Normal", string(o.act), string(o.act), describe(obj))
		metrics.Actions.WithLabelValues(p.Namespace, p.Name, kindOf(obj), strings.ToLower(string(o.act))).Inc()
	}
}

// writePhases splits the children into the configuration
// (resource.ChildKinds says which kinds), written before anything that
// reads it, and the rest, as indexes into desired.
func writePhases(desired []client.Object) [][]int {
	phases := [][]int{nil, nil}
	for i, obj := range desired {
		if resource.IsConfiguration(kindOf(obj)) {
			phases[0] = append(phases[0], i)
		} else {
			phases[1] = append(phases[1], i)
		}
	}
	return phases
}

// pruneChildren deletes children the spec no longer asks for (a removed
// service's Deployment, Service, HPA, PDB). Only children this platform
// controls are candidates.
func (r *ParserPlatformReconciler) pruneChildren(ctx context.Context, p *platformv1.ParserPlatform, desired []client.Object) reconcileResult {
	want := map[string]bool{}
	for _, obj := range desired {
		want[kindOf(obj)+"/"+obj.GetName()] = true
	}
	var res reconcileResult
	for _, k := range managedKinds {
		live, err := r.listChildren(ctx, p, k)
		if err != nil {
			res.errs = append(res.errs, err)
			continue
		}
		for _, obj := range live {
			if want[kindOf(k.object)+"/"+obj.GetName()] {
				continue
			}
			if err := r.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
				res.errs = append(res.errs, fmt.Errorf("deleting %s: %w", describe(obj), err))
				continue
			}
			r.memo.forget(client.ObjectKeyFromObject(p), obj)
			logf.FromContext(ctx).Info("Deleted child no longer in the spec", "child", describe(obj))
			metrics.Actions.WithLabelValues(p.Namespace, p.Name, kindOf(k.object), "deleted").Inc()
			r.event(p, "Normal", "Deleted", "Delete", kindOf(k.object)+" "+obj.GetName())
		}
	}
	return res
}

// listChildren lists the children of one kind that the platform controls.
func (r *ParserPlatformReconciler) listChildren(ctx context.Context, p *platformv1.ParserPlatform, k managedKind) ([]client.Object, error) {
	list := k.list.DeepCopyObject().(client.ObjectList)
	if err := r.List(ctx, list, client.InNamespace(p.Namespace), client.MatchingLabels(resource.InstanceSelector(p))); err != nil {
		return nil, fmt.Errorf("listing %T: %w", list, err)
	}
	objs, err := metaExtract(list)
	if err != nil {
		return nil, err
	}
	var owned []client.Object
	for _, obj := range objs {
		if isControlledBy(obj, p) {
			owned = append(owned, obj)
		}
	}
	return owned, nil
}

// hpaTargets are the names of the workloads an HPA scales.
func hpaTargets(desired []client.Object) map[string]bool {
	out := map[string]bool{}
	for _, obj := range desired {
		if hpa, ok := obj.(*autoscalingv2.HorizontalPodAutoscaler); ok {
			out[hpa.Spec.ScaleTargetRef.Name] = true
		}
	}
	return out
}
