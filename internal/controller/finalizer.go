package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/resource"
)

// dataFinalizer is on a platform only while its deletionPolicy is Delete: it
// lets the operator delete the data volumes before the platform goes. With
// Retain there is no finalizer, nothing owns the PVCs (StatefulSets retain
// them), and they outlive the platform.
const dataFinalizer = "platform.vkparser.io/delete-data"

// syncDataFinalizer adds or removes the finalizer to match deletionPolicy.
// It writes only when the finalizer's presence must change.
func (r *ParserPlatformReconciler) syncDataFinalizer(ctx context.Context, p *platformv1.ParserPlatform) error {
	want := p.Spec.DeletionPolicy == platformv1.DeletionPolicyDelete
	if controllerutil.ContainsFinalizer(p, dataFinalizer) == want {
		return nil
	}
	base := p.DeepCopy()
	if want {
		controllerutil.AddFinalizer(p, dataFinalizer)
	} else {
		controllerutil.RemoveFinalizer(p, dataFinalizer)
	}
	if err := r.Patch(ctx, p, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("updating the %s finalizer: %w", dataFinalizer, err)
	}
	return nil
}

// finalize runs when a platform with the finalizer is being deleted: its
// data volumes go, then the finalizer, and the garbage collector removes the
// rest through owner references.
func (r *ParserPlatformReconciler) finalize(ctx context.Context, p *platformv1.ParserPlatform) error {
	if !controllerutil.ContainsFinalizer(p, dataFinalizer) {
		return nil
	}
	if err := r.deleteDataVolumes(ctx, p); err != nil {
		return err
	}
	base := p.DeepCopy()
	controllerutil.RemoveFinalizer(p, dataFinalizer)
	return client.IgnoreNotFound(r.Patch(ctx, p, client.MergeFrom(base)))
}

// deleteDataVolumes deletes the PVCs of the platform's StatefulSets: they
// carry the platform's labels from the volume claim templates. The list goes
// past the cache: PVCs are read only here, not worth an informer.
func (r *ParserPlatformReconciler) deleteDataVolumes(ctx context.Context, p *platformv1.ParserPlatform) error {
	pvcs := &corev1.PersistentVolumeClaimList{}
	if err := r.APIReader.List(ctx, pvcs, client.InNamespace(p.Namespace), client.MatchingLabels(resource.InstanceSelector(p))); err != nil {
		return fmt.Errorf("listing data volumes: %w", err)
	}
	for i := range pvcs.Items {
		pvc := &pvcs.Items[i]
		if err := r.Delete(ctx, pvc); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting PersistentVolumeClaim %s: %w", pvc.Name, err)
		}
		r.event(p, "Normal", "DataDeleted", "Delete", "PersistentVolumeClaim "+pvc.Name+" (deletionPolicy: Delete)")
	}
	return nil
}
