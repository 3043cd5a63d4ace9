package controller

import (
	"context"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/resource"
	"github.com/vkparser/parser-operator/internal/status"
)

// Queue-aware worker scaling: a worker whose queue has a targetQueueLength
// is scaled by a KEDA ScaledObject on its backlog while KEDA's CRDs are
// served, and by its CPU/memory HPA otherwise. A Deployment never has two
// autoscalers, either way: the HPA is deleted before its ScaledObject is
// created (pruneChildren runs before applyKEDA), and a ScaledObject no
// longer wanted is deleted before the HPA comes back (dropUnwantedScaledObjects
// runs before the children are written). When KEDA's CRDs go, the API
// server deletes the ScaledObjects with them and the next reconcile writes
// the HPAs again.

// kedaPlan is what the platform gets of KEDA this reconcile.
type kedaPlan struct {
	// served: KEDA's CRDs are installed.
	served bool
	// objects are the TriggerAuthentication and ScaledObjects to write
	// (served only).
	objects []*unstructured.Unstructured
	// queues ask for backlog scaling (whether or not KEDA is there).
	queues []string
}

func (r *ParserPlatformReconciler) planKEDA(ctx context.Context, p *platformv1.ParserPlatform) (kedaPlan, error) {
	var plan kedaPlan
	for _, q := range resource.KEDAScaledQueues(p) {
		plan.queues = append(plan.queues, q.Name)
	}
	for _, crd := range []string{resource.ScaledObjectCRD, resource.TriggerAuthenticationCRD} {
		ok, err := r.crdServed(ctx, crd)
		if err != nil || !ok {
			return plan, err
		}
	}
	plan.served = true
	plan.objects = resource.KEDAObjects(p)
	return plan, nil
}

// scaledWorkers are the Deployments the plan's ScaledObjects scale (a
// ScaledObject is named like its worker).
func (k kedaPlan) scaledWorkers() []string {
	var out []string
	for _, o := range k.objects {
		if o.GroupVersionKind() == resource.ScaledObjectGVK {
			out = append(out, o.GetName())
		}
	}
	return out
}

// condition is QueueScaling's state; nil when no queue has a backlog target.
func (k kedaPlan) condition() *metav1.Condition {
	if len(k.queues) == 0 {
		return nil
	}
	queues := strings.Join(k.queues, ", ")
	if !k.served {
		return &metav1.Condition{Type: status.TypeQueueScaling, Status: metav1.ConditionFalse, Reason: "KEDANotInstalled",
			Message: fmt.Sprintf("queues %s have a targetQueueLength, but %s is not installed: their workers keep the CPU/memory HPA until it is", queues, resource.ScaledObjectCRD)}
	}
	return &metav1.Condition{Type: status.TypeQueueScaling, Status: metav1.ConditionTrue, Reason: "ScaledByBacklog",
		Message: fmt.Sprintf("KEDA scales the workers of queues %s on their backlog (ScaledObjects, no HPA of the operator's)", queues)}
}

// dropUnwantedScaledObjects deletes the platform's ScaledObjects the plan
// no longer has, before an HPA takes their Deployment back.
func (r *ParserPlatformReconciler) dropUnwantedScaledObjects(ctx context.Context, p *platformv1.ParserPlatform, plan kedaPlan) error {
	if !plan.served {
		return nil
	}
	wanted := map[string]bool{}
	for _, name := range plan.scaledWorkers() {
		wanted[name] = true
	}
	live, err := r.ownScaledObjects(ctx, p)
	if err != nil {
		return err
	}
	for _, so := range live {
		if wanted[so.GetName()] {
			continue
		}
		if err := client.IgnoreNotFound(r.Delete(ctx, so)); err != nil {
			return fmt.Errorf("deleting ScaledObject %s: %w", so.GetName(), err)
		}
	}
	return nil
}

// applyKEDA writes the TriggerAuthentication and the ScaledObjects of the
// workers that are written (none of a worker withheld, as while a restore
// fills the shards).
func (r *ParserPlatformReconciler) applyKEDA(ctx context.Context, p *platformv1.ParserPlatform, plan kedaPlan, desired []client.Object) reconcileResult {
	deployments := map[string]bool{}
	for _, o := range desired {
		if _, ok := o.(*appsv1.Deployment); ok {
			deployments[o.GetName()] = true
		}
	}
	// The TriggerAuthentication first: the ScaledObjects name it.
	var auth, scaled []client.Object
	for _, o := range plan.objects {
		switch {
		case o.GroupVersionKind() != resource.ScaledObjectGVK:
			auth = append(auth, o)
		case deployments[o.GetName()]:
			scaled = append(scaled, o)
		}
	}
	res := r.applyChildren(ctx, p, auth)
	if len(res.errs)+len(res.refusals) == 0 && len(scaled) > 0 {
		res.merge(r.applyChildren(ctx, p, scaled))
	}
	return res
}

// contestedHPARetry is how soon a worker whose HPA waits for KEDA's to go
// is looked at again (KEDA's HPA goes with its ScaledObject, through the
// garbage collector; no event of it reaches this controller).
const contestedHPARetry = 2 * time.Second

// withoutContestedHPAs holds back each desired HPA whose Deployment another
// HPA still scales (KEDA's keda-hpa-*, left while its ScaledObject is being
// deleted): two autoscalers would fight over its replicas. It returns the
// workers held back.
func (r *ParserPlatformReconciler) withoutContestedHPAs(ctx context.Context, p *platformv1.ParserPlatform, desired []client.Object) ([]client.Object, []string, error) {
	// KEDA copies the ScaledObject's labels onto its HPA, so the cache,
	// which holds what carries the operator's labels, has it.
	live := &autoscalingv2.HorizontalPodAutoscalerList{}
	if err := r.List(ctx, live, client.InNamespace(p.Namespace), client.MatchingLabels(resource.InstanceSelector(p))); err != nil {
		return nil, nil, fmt.Errorf("listing HPAs: %w", err)
	}
	foreign := map[string]bool{} // Deployments another autoscaler scales
	for i := range live.Items {
		if h := &live.Items[i]; !isControlledBy(h, p) {
			foreign[h.Spec.ScaleTargetRef.Name] = true
		}
	}
	// A ScaledObject still there (its CRD being deleted takes it, and
	// KEDA's HPA, with it) scales its worker until it is gone.
	scaled, err := r.ownScaledObjects(ctx, p)
	if err != nil {
		return nil, nil, err
	}
	for _, so := range scaled {
		foreign[so.GetName()] = true
	}
	if len(foreign) == 0 {
		return desired, nil, nil
	}
	out := make([]client.Object, 0, len(desired))
	var held []string
	for _, o := range desired {
		if h, ok := o.(*autoscalingv2.HorizontalPodAutoscaler); ok && foreign[h.Spec.ScaleTargetRef.Name] {
			held = append(held, h.Spec.ScaleTargetRef.Name)
			continue
		}
		out = append(out, o)
	}
	return out, held, nil
}

// ownScaledObjects are the ScaledObjects the platform controls (named like
// their workers); none while KEDA's CRD is absent.
func (r *ParserPlatformReconciler) ownScaledObjects(ctx context.Context, p *platformv1.ParserPlatform) ([]*unstructured.Unstructured, error) {
	present, _, err := r.crdState(ctx, resource.ScaledObjectCRD)
	if err != nil || !present {
		return nil, err
	}
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(resource.ScaledObjectGVK.GroupVersion().WithKind(resource.ScaledObjectGVK.Kind + "List"))
	if err := r.List(ctx, list, client.InNamespace(p.Namespace), client.MatchingLabels(resource.InstanceSelector(p))); err != nil {
		if apierrors.IsNotFound(err) || meta.IsNoMatchError(err) {
			return nil, nil // the CRD went meanwhile
		}
		return nil, fmt.Errorf("listing ScaledObjects: %w", err)
	}
	var out []*unstructured.Unstructured
	for i := range list.Items {
		if isControlledBy(&list.Items[i], p) {
			out = append(out, &list.Items[i])
		}
	}
	return out, nil
}

// heldHPAObjects names the HPAs of held-back workers for the prune, which
// keeps what it is given.
func heldHPAObjects(workers []string) []client.Object {
	out := make([]client.Object, 0, len(workers))
	for _, w := range workers {
		h := &autoscalingv2.HorizontalPodAutoscaler{}
		h.SetName(w) // an HPA is named like its Deployment
		out = append(out, h)
	}
	return out
}
