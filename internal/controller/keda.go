package controller

import (
	"context"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
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
	for _, o := range plan.objects {
		wanted[o.GetKind()+"/"+o.GetName()] = true
	}
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(resource.ScaledObjectGVK.GroupVersion().WithKind(resource.ScaledObjectGVK.Kind + "List"))
	if err := r.List(ctx, list, client.InNamespace(p.Namespace), client.MatchingLabels(resource.InstanceSelector(p))); err != nil {
		if apierrors.IsNotFound(err) || meta.IsNoMatchError(err) {
			return nil // the CRD went meanwhile
		}
		return fmt.Errorf("listing ScaledObjects: %w", err)
	}
	for i := range list.Items {
		so := &list.Items[i]
		if wanted[resource.ScaledObjectGVK.Kind+"/"+so.GetName()] || !isControlledBy(so, p) {
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
	var objs []client.Object
	for _, o := range plan.objects {
		if o.GroupVersionKind() != resource.ScaledObjectGVK || deployments[o.GetName()] {
			objs = append(objs, o)
		}
	}
	if len(objs) == 0 {
		return reconcileResult{}
	}
	return r.applyChildren(ctx, p, objs)
}
