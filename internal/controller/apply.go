package controller

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/resource"
)

// restartedAtAnnotation is set on pod templates by `kubectl rollout restart`;
// keeping it lets users restart workloads the operator manages.
const restartedAtAnnotation = "kubectl.kubernetes.io/restartedAt"

// errNotOwned marks a child that exists but belongs to someone else: the
// operator refuses to take it over rather than overwrite it.
var errNotOwned = errors.New("exists and is not owned by this platform")

// refusal is a change the operator will not make on purpose; reason is the
// event reason, the message tells the user why and what to do.
type refusal struct{ reason, msg string }

func (r *refusal) Error() string { return r.msg }

// action is what ensure did to one child.
type action string

const (
	actionNone    action = ""
	actionCreated action = "Created"
	actionUpdated action = "Updated"
)

// childWriter makes one child match its desired state with the fewest writes:
// none when it already matches, a create when it is missing, an update when
// a field the operator sets has drifted.
type childWriter struct {
	client client.Client
	// reader reads past the cache: a child whose labels were removed by hand
	// drops out of the label-filtered cache but still exists.
	reader client.Reader
	owner  *platformv1.ParserPlatform
	// hpaTargets are the workloads whose replicas belong to an HPA.
	hpaTargets map[string]bool
	// memo remembers the children found matching (memo.go); nil: none.
	memo *childMemo
	// note records a deliberate step on a child beyond a create or update
	// (a volume expanded); safe to call from parallel writes.
	note func(reason, msg string)
}

func (w *childWriter) ensure(ctx context.Context, desired client.Object) (action, error) {
	platform := client.ObjectKeyFromObject(w.owner)
	desiredHash := ""
	if memoized(desired) && w.memo != nil {
		desiredHash = w.desiredHash(desired)
	}
	live, created, err := w.getOrCreate(ctx, platform, desired, desiredHash)
	if created {
		return actionCreated, err
	}
	if err != nil || live == nil {
		return actionNone, err
	}
	if live.GetDeletionTimestamp() != nil {
		// Being deleted (a StatefulSet re-created for its storage, waiting
		// for the garbage collector to orphan its pods): its deletion
		// brings the next reconcile, which creates it anew.
		return actionNone, nil
	}
	if w.unchanged(platform, desired, live, desiredHash) {
		return actionNone, w.reconcileStorage(ctx, desired, live)
	}
	if cachedFingerprint(live) != "" && slimKind(live) {
		// The cache holds it without its content: compare the full object.
		full := newEmpty(desired)
		if err := w.reader.Get(ctx, client.ObjectKeyFromObject(desired), full); err != nil || full.GetDeletionTimestamp() != nil {
			return actionNone, client.IgnoreNotFound(err) // going: its deletion brings a reconcile
		}
		live = full
	}
	act, err := w.converge(ctx, platform, desired, live, desiredHash)
	if err != nil {
		return actionNone, err
	}
	return act, w.reconcileStorage(ctx, desired, live)
}

// getOrCreate reads the child from the cache, and creates it when it is
// missing (created). A child that exists but left the cache (its labels
// removed by hand) is read past the cache. Nil live and no error: nothing
// to do.
func (w *childWriter) getOrCreate(ctx context.Context, platform types.NamespacedName, desired client.Object, desiredHash string) (live client.Object, created bool, err error) {
	key := client.ObjectKeyFromObject(desired)
	live = newEmpty(desired)
	err = w.client.Get(ctx, key, live)
	if !apierrors.IsNotFound(err) {
		return live, false, err
	}
	obj := desired.DeepCopyObject().(client.Object)
	err = w.client.Create(ctx, obj)
	switch {
	case apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		// The namespace, and the platform with it, is going: nothing
		// to make, and no error to retry.
		return nil, false, nil
	case err == nil:
		w.remember(platform, obj, "", desiredHash)
		return obj, true, nil
	case !apierrors.IsAlreadyExists(err):
		return nil, true, err
	}
	err = w.reader.Get(ctx, key, live)
	return live, false, err
}

// unchanged tells whether live, read from the cache, is as it was when it
// last matched the same desired state (memo.go): nothing to compare.
func (w *childWriter) unchanged(platform types.NamespacedName, desired, live client.Object, desiredHash string) bool {
	return w.memo != nil && cachedFingerprint(live) != "" && metav1.IsControlledBy(live, w.owner) &&
		isSubset(desired.GetLabels(), live.GetLabels()) && isSubset(desired.GetAnnotations(), live.GetAnnotations()) &&
		w.memo.hit(platform, live, desiredHash)
}

// converge compares live (from the cache, or the full object past it)
// with desired and updates it when it drifted, adopting a retained Secret.
func (w *childWriter) converge(ctx context.Context, platform types.NamespacedName, desired, live client.Object, desiredHash string) (action, error) {
	adopting := !metav1.IsControlledBy(live, w.owner)
	if adopting && !retainedFor(live, w.owner) {
		return actionNone, errNotOwned
	}
	ok, err := matches(desired, live, w.skipPaths(desired)...)
	if err != nil {
		return actionNone, err
	}
	// The cache's own copy carries its fingerprint; an object read from the
	// API server with it (put there by hand) is rewritten without it.
	fp := cachedFingerprint(live)
	fromCache := fp != "" && !slimKind(live)
	if ok && !adopting && (fp == "" || fromCache) {
		w.remember(platform, live, fp, desiredHash)
		return actionNone, nil
	}
	out := w.updated(desired, live)
	if adopting {
		adopt(out, w.owner)
	}
	if err := w.client.Update(ctx, out); err != nil {
		w.forget(platform, live)
		return actionNone, err
	}
	w.remember(platform, out, "", desiredHash)
	return actionUpdated, nil
}

// memoized tells whether the memo can hold obj's kind: only typed children
// have a fingerprint in the cache.
func memoized(obj client.Object) bool {
	_, untyped := obj.(*unstructured.Unstructured)
	return !untyped
}

// remember records in the memo that stored matches the desired hash.
func (w *childWriter) remember(platform types.NamespacedName, stored client.Object, fp, desiredHash string) {
	if w.memo != nil && desiredHash != "" {
		w.memo.record(platform, stored, fp, desiredHash)
	}
}

func (w *childWriter) forget(platform types.NamespacedName, obj client.Object) {
	if w.memo != nil {
		w.memo.forget(platform, obj)
	}
}

// retainedFor tells whether live is a credentials Secret that a deleted
// platform of owner's name left with its retained volumes: the one object a
// platform takes over without owning it already.
func retainedFor(live client.Object, owner *platformv1.ParserPlatform) bool {
	_, isSecret := live.(*corev1.Secret)
	return isSecret && metav1.GetControllerOf(live) == nil &&
		live.GetAnnotations()[resource.AnnotationRetainedFor] == owner.Name &&
		live.GetLabels()[resource.LabelInstance] == owner.Name
}

// adopt makes the platform the controller of a retained Secret again.
func adopt(out client.Object, owner *platformv1.ParserPlatform) {
	out.SetOwnerReferences(append(out.GetOwnerReferences(), resource.OwnerReference(owner)))
	annotations := out.GetAnnotations()
	delete(annotations, resource.AnnotationRetainedFor)
	out.SetAnnotations(annotations)
}

// skipPaths leaves out of the comparison what the operator does not write:
// replicas an HPA owns, and a StatefulSet's volume claim templates, which
// the API server does not let change (reconcileStorage handles them).
func (w *childWriter) skipPaths(obj client.Object) [][]string {
	var paths [][]string
	if w.ownedByHPA(obj) {
		paths = append(paths, []string{"spec", "replicas"})
	}
	if _, ok := obj.(*appsv1.StatefulSet); ok {
		paths = append(paths, []string{"spec", "volumeClaimTemplates"})
	}
	return paths
}

func (w *childWriter) ownedByHPA(obj client.Object) bool {
	_, isDeployment := obj.(*appsv1.Deployment)
	_, isStatefulSet := obj.(*appsv1.StatefulSet)
	return (isDeployment || isStatefulSet) && w.hpaTargets[obj.GetName()]
}

// updated is desired with what must survive an update carried over from
// live: its identity and resourceVersion (optimistic locking), labels and
// annotations others added, and fields the API server or another controller
// owns.
func (w *childWriter) updated(desired, cached client.Object) client.Object {
	// The live object comes from the cache without a copy: never share its
	// maps, slices or pointers with the object the update decodes into.
	live := cached.DeepCopyObject().(client.Object)
	out := desired.DeepCopyObject().(client.Object)
	out.SetResourceVersion(live.GetResourceVersion())
	out.SetUID(live.GetUID())
	out.SetLabels(merged(live.GetLabels(), desired.GetLabels()))
	// The cache's fingerprint is never written.
	out.SetAnnotations(withoutFingerprint(merged(live.GetAnnotations(), desired.GetAnnotations())))
	out.SetOwnerReferences(live.GetOwnerReferences())
	out.SetFinalizers(live.GetFinalizers())
	switch o := out.(type) {
	case *appsv1.Deployment:
		l := live.(*appsv1.Deployment)
		if w.ownedByHPA(o) {
			o.Spec.Replicas = l.Spec.Replicas
		}
		keepRestartedAt(&o.Spec.Template, &l.Spec.Template)
	case *appsv1.StatefulSet:
		l := live.(*appsv1.StatefulSet)
		if w.ownedByHPA(o) {
			o.Spec.Replicas = l.Spec.Replicas
		}
		keepRestartedAt(&o.Spec.Template, &l.Spec.Template)
		// Immutable: an update that changed them would be refused whole.
		o.Spec.VolumeClaimTemplates = l.Spec.VolumeClaimTemplates
		o.Spec.ServiceName = l.Spec.ServiceName
		o.Spec.PodManagementPolicy = l.Spec.PodManagementPolicy
	case *corev1.Service:
		keepAllocatedServiceFields(o, live.(*corev1.Service))
	}
	return out
}

func keepRestartedAt(desired, live *corev1.PodTemplateSpec) {
	if at, ok := live.Annotations[restartedAtAnnotation]; ok {
		desired.Annotations = merged(desired.Annotations, map[string]string{restartedAtAnnotation: at})
	}
}

// keepAllocatedServiceFields carries over what the API server allocated:
// cluster IPs cannot change, and node ports would otherwise be reallocated.
func keepAllocatedServiceFields(desired, live *corev1.Service) {
	desired.Spec.ClusterIP = live.Spec.ClusterIP
	desired.Spec.ClusterIPs = live.Spec.ClusterIPs
	desired.Spec.IPFamilies = live.Spec.IPFamilies
	desired.Spec.IPFamilyPolicy = live.Spec.IPFamilyPolicy
	if desired.Spec.Type == corev1.ServiceTypeClusterIP {
		return
	}
	nodePorts := map[string]int32{}
	for _, p := range live.Spec.Ports {
		nodePorts[p.Name] = p.NodePort
	}
	for i := range desired.Spec.Ports {
		if desired.Spec.Ports[i].NodePort == 0 {
			desired.Spec.Ports[i].NodePort = nodePorts[desired.Spec.Ports[i].Name]
		}
	}
	if desired.Spec.Type == live.Spec.Type {
		desired.Spec.HealthCheckNodePort = live.Spec.HealthCheckNodePort
	}
}

func merged(base, overlay map[string]string) map[string]string {
	if len(base) == 0 && len(overlay) == 0 {
		return nil
	}
	out := maps.Clone(base)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, overlay)
	return out
}

// newEmpty returns a zero object of the same Go type as obj (of the same
// kind, for unstructured objects).
func newEmpty(obj client.Object) client.Object {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		out := &unstructured.Unstructured{}
		out.SetGroupVersionKind(u.GroupVersionKind())
		return out
	}
	return reflect.New(reflect.TypeOf(obj).Elem()).Interface().(client.Object)
}

// describe names a child for messages and events: "Deployment vk-auth".
func describe(obj client.Object) string {
	return fmt.Sprintf("%s %s", kindOf(obj), obj.GetName())
}

func kindOf(obj client.Object) string {
	if k := obj.GetObjectKind().GroupVersionKind().Kind; k != "" {
		return k
	}
	return reflect.TypeOf(obj).Elem().Name()
}
