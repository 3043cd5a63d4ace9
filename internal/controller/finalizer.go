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

// dataFinalizer is on every platform, whatever its deletionPolicy: the
// policy is read from the object being deleted, when it is deleted, not when
// a reconcile last saw it. A finalizer present only under Delete would
// follow the policy of the last reconcile, so a switch to Retain made while
// paused, while the operator is down, or just before the delete would still
// delete every volume.
const dataFinalizer = "platform.vkparser.io/data"

// legacyDataFinalizer was on platforms only while deletionPolicy was Delete
// (before the policy was read at deletion). It is replaced by dataFinalizer
// and handled the same way.
const legacyDataFinalizer = "platform.vkparser.io/delete-data"

// syncDataFinalizer puts dataFinalizer on the platform (and takes the legacy
// one off). It runs paused or not, and writes only when the list must
// change.
func (r *ParserPlatformReconciler) syncDataFinalizer(ctx context.Context, p *platformv1.ParserPlatform) error {
	if controllerutil.ContainsFinalizer(p, dataFinalizer) && !controllerutil.ContainsFinalizer(p, legacyDataFinalizer) {
		return nil
	}
	base := p.DeepCopy()
	controllerutil.AddFinalizer(p, dataFinalizer)
	controllerutil.RemoveFinalizer(p, legacyDataFinalizer)
	if err := r.Patch(ctx, p, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("adding the %s finalizer: %w", dataFinalizer, err)
	}
	return nil
}

// finalize runs when a platform is being deleted. It reads the platform past
// the cache, so the deletionPolicy it acts on is the one stored with the
// deletion. Delete: the data volumes go, and the garbage collector takes the
// credentials with the other children. Retain: the volumes stay (nothing
// owns them), and so do the credentials Secrets that open them, released
// from the platform so the garbage collector keeps them; a platform of the
// same name adopts them again. Then the finalizer goes, under an optimistic
// lock so another controller's finalizer added meanwhile is kept.
func (r *ParserPlatformReconciler) finalize(ctx context.Context, cached *platformv1.ParserPlatform) error {
	p := &platformv1.ParserPlatform{}
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(cached), p); err != nil {
		return client.IgnoreNotFound(err)
	}
	if !controllerutil.ContainsFinalizer(p, dataFinalizer) && !controllerutil.ContainsFinalizer(p, legacyDataFinalizer) {
		return nil
	}
	var err error
	if p.Spec.DeletionPolicy == platformv1.DeletionPolicyDelete {
		err = r.deleteDataVolumes(ctx, p)
	} else {
		err = r.retainCredentials(ctx, p)
	}
	if err != nil {
		return err
	}
	base := p.DeepCopy()
	controllerutil.RemoveFinalizer(p, dataFinalizer)
	controllerutil.RemoveFinalizer(p, legacyDataFinalizer)
	return client.IgnoreNotFound(r.Patch(ctx, p, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})))
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

// retainCredentials releases every credentials Secret of the platform's data
// from the platform (no owner reference, so no garbage collection) and
// marks it for adoption by the next platform of the same name.
func (r *ParserPlatformReconciler) retainCredentials(ctx context.Context, p *platformv1.ParserPlatform) error {
	for _, name := range resource.DataCredentialSecrets(p) {
		secret := &corev1.Secret{}
		err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: name}, secret)
		if client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("reading Secret %s: %w", name, err)
		}
		if err != nil || !isControlledBy(secret, p) {
			continue
		}
		base := secret.DeepCopy()
		if err := controllerutil.RemoveOwnerReference(p, secret, r.Scheme()); err != nil {
			return fmt.Errorf("releasing Secret %s: %w", name, err)
		}
		secret.Annotations = merged(secret.Annotations, map[string]string{resource.AnnotationRetainedFor: p.Name})
		if err := r.Patch(ctx, secret, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
			return fmt.Errorf("keeping Secret %s with the retained volumes: %w", name, err)
		}
		r.event(p, "Normal", "CredentialsRetained", "Delete",
			"Secret "+name+" kept with the data volumes it opens (deletionPolicy: Retain)")
	}
	return nil
}
