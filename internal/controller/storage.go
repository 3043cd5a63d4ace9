package controller

import (
	"context"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apiresource "k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// A StatefulSet's volume claim templates cannot change in place, so a new
// storage size in the spec takes three steps, each one deliberate and none
// repeated once done (prometheus-operator and ECK do the same):
//
//  1. every existing PVC of the StatefulSet is expanded to the new size, by
//     the operator where its StorageClass allows volume expansion, else by
//     hand (the platform says which PVCs wait, and why);
//  2. once every PVC asks for the new size, the StatefulSet is deleted with
//     its pods and PVCs orphaned (they keep running and keep their data), and
//     only if it is still the object that was compared (UID precondition);
//  3. the next reconcile creates it again with the new template; it adopts
//     the running pods and the PVCs by name. Its template now matches, so
//     nothing is done again.
//
// A smaller size or another StorageClass cannot be had without moving the
// data: those stay refused.

// storageChange is what the claim templates of a StatefulSet ask for.
type storageChange struct {
	grow    *apiresource.Quantity // the new size, when only growth is asked
	refusal string                // why the change cannot be made
}

// compareClaims compares the desired claim templates with the live ones.
func compareClaims(desired, live *appsv1.StatefulSet) storageChange {
	for i, want := range desired.Spec.VolumeClaimTemplates {
		if i >= len(live.Spec.VolumeClaimTemplates) {
			return storageChange{refusal: "a volume claim template cannot be added"}
		}
		have := live.Spec.VolumeClaimTemplates[i]
		wantSize, haveSize := want.Spec.Resources.Requests.Storage(), have.Spec.Resources.Requests.Storage()
		switch {
		case ptr.Deref(want.Spec.StorageClassName, "") != ptr.Deref(have.Spec.StorageClassName, ""):
			return storageChange{refusal: fmt.Sprintf("the StorageClass of its volumes cannot change (from %q to %q) without moving the data",
				ptr.Deref(have.Spec.StorageClassName, ""), ptr.Deref(want.Spec.StorageClassName, ""))}
		case wantSize.Cmp(*haveSize) < 0:
			return storageChange{refusal: fmt.Sprintf("its volumes cannot shrink (from %s to %s)", haveSize, wantSize)}
		case wantSize.Cmp(*haveSize) > 0:
			return storageChange{grow: wantSize}
		}
	}
	return storageChange{}
}

// reconcileStorage takes a storage change of a StatefulSet one step further.
func (w *childWriter) reconcileStorage(ctx context.Context, desired, live client.Object) error {
	d, ok := desired.(*appsv1.StatefulSet)
	if !ok {
		return nil
	}
	l := live.(*appsv1.StatefulSet)
	change := compareClaims(d, l)
	switch {
	case change.refusal != "":
		return &refusal{reason: "StorageChangeRefused", msg: fmt.Sprintf("StatefulSet %s: %s; existing volumes keep theirs", d.Name, change.refusal)}
	case change.grow == nil:
		return nil
	}
	waiting, err := w.expandVolumes(ctx, l, *change.grow)
	if err != nil {
		return err
	}
	if len(waiting) > 0 {
		return &refusal{reason: "StorageResizeWaiting", msg: fmt.Sprintf(
			"StatefulSet %s: storage grows to %s, but %s cannot be expanded by the operator; expand them by hand (kubectl patch pvc), and the StatefulSet follows",
			d.Name, change.grow, strings.Join(waiting, ", "))}
	}
	// Orphan: the pods and PVCs stay; the StatefulSet comes back with the
	// new template on the next reconcile (its deletion sends the event).
	err = w.client.Delete(ctx, l, client.PropagationPolicy("Orphan"), client.Preconditions{UID: ptr.To(l.UID)})
	if client.IgnoreNotFound(err) != nil && !apierrors.IsConflict(err) {
		return fmt.Errorf("re-creating StatefulSet %s for its new storage size: %w", d.Name, err)
	}
	w.note("StatefulSetRecreated", fmt.Sprintf("StatefulSet %s deleted with its pods and PVCs kept, to be created again with volumes of %s", d.Name, change.grow))
	return nil
}

// expandVolumes asks every PVC of the StatefulSet for size, where its
// StorageClass allows it, and returns those it could not expand ("PVC x
// (StorageClass y allows no expansion)").
func (w *childWriter) expandVolumes(ctx context.Context, sts *appsv1.StatefulSet, size apiresource.Quantity) ([]string, error) {
	pvcs, err := w.volumesOf(ctx, sts)
	if err != nil {
		return nil, err
	}
	var waiting []string
	for i := range pvcs {
		pvc := &pvcs[i]
		if pvc.Spec.Resources.Requests.Storage().Cmp(size) >= 0 {
			continue
		}
		class := ptr.Deref(pvc.Spec.StorageClassName, "")
		expandable, err := w.allowsExpansion(ctx, class)
		if err != nil {
			return nil, err
		}
		if !expandable {
			waiting = append(waiting, fmt.Sprintf("PVC %s (StorageClass %q allows no volume expansion)", pvc.Name, class))
			continue
		}
		base := pvc.DeepCopy()
		pvc.Spec.Resources.Requests[corev1.ResourceStorage] = size
		if err := w.client.Patch(ctx, pvc, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
			return nil, fmt.Errorf("expanding PVC %s to %s: %w", pvc.Name, size.String(), err)
		}
		w.note("VolumeExpanded", fmt.Sprintf("PVC %s asked for %s (StorageClass %s allows volume expansion)", pvc.Name, size.String(), class))
	}
	return waiting, nil
}

// volumesOf lists the PVCs the StatefulSet made from its claim templates:
// named <template>-<statefulset>-<ordinal>, with the template's labels.
func (w *childWriter) volumesOf(ctx context.Context, sts *appsv1.StatefulSet) ([]corev1.PersistentVolumeClaim, error) {
	var out []corev1.PersistentVolumeClaim
	for _, template := range sts.Spec.VolumeClaimTemplates {
		list := &corev1.PersistentVolumeClaimList{}
		if err := w.reader.List(ctx, list, client.InNamespace(sts.Namespace), client.MatchingLabels(template.Labels)); err != nil {
			return nil, fmt.Errorf("listing the volumes of StatefulSet %s: %w", sts.Name, err)
		}
		prefix := template.Name + "-" + sts.Name + "-"
		for _, pvc := range list.Items {
			if strings.HasPrefix(pvc.Name, prefix) {
				out = append(out, pvc)
			}
		}
	}
	return out, nil
}

// allowsExpansion reads the StorageClass (past the cache: this runs only
// while a resize is under way).
func (w *childWriter) allowsExpansion(ctx context.Context, class string) (bool, error) {
	if class == "" {
		return false, nil
	}
	sc := &storagev1.StorageClass{}
	err := w.reader.Get(ctx, client.ObjectKey{Name: class}, sc)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading StorageClass %s: %w", class, err)
	}
	return ptr.Deref(sc.AllowVolumeExpansion, false), nil
}
