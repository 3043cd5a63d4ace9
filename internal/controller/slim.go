package controller

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"reflect"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The operator's memory is mostly its cache of children, and most of that
// is content it never reads from the cache: the pod templates of the
// Deployments and StatefulSets, the ConfigMaps' data, the NetworkPolicies'
// rules. The cache keeps a slim copy of those kinds, without that content,
// and every cached child carries a fingerprint of its content as the API
// server stored it (fingerprint: what the cache does not compare itself;
// labels and annotations it keeps and compares whole). The childWriter
// (apply.go) remembers, per child,
// the fingerprint it last saw match its desired state; while the cached
// fingerprint is the same, nothing has changed and nothing is compared.
// When it differs (a hand edit, a new spec), the full object is read past
// the cache and compared as before.

// fingerprintAnnotation holds a cached child's fingerprint. It exists only
// in the operator's cache: the informers' transform sets it, updated()
// drops it, and a full object read from the API server that carries it
// (put there by hand) is rewritten without it.
const fingerprintAnnotation = "platform.vkparser.io/cache-fingerprint"

// fingerprint is a digest of obj as the API server stores it, without what
// changes with no change of content the cache does not hold:
// resourceVersion, managedFields, status (others' to write) and the labels
// and annotations, which the cache keeps whole and unchanged() compares
// there (so others' labels and annotations change no fingerprint). A create
// or update response and the watch event of the same write give the same
// fingerprint. obj is not modified. Typed objects only (reflect: a shallow
// copy whose Status is zeroed).
func fingerprint(obj client.Object) string {
	if generationTracked(obj) {
		return "generation " + strconv.FormatInt(obj.GetGeneration(), 10)
	}
	v := reflect.ValueOf(obj).Elem()
	c := reflect.New(v.Type())
	c.Elem().Set(v) // shallow: only top-level fields are replaced below
	cp := c.Interface().(client.Object)
	if f := c.Elem().FieldByName("TypeMeta"); f.IsValid() {
		f.SetZero() // set on some decoded objects, not on others
	}
	if f := c.Elem().FieldByName("Status"); f.IsValid() {
		f.SetZero()
	}
	cp.SetResourceVersion("")
	cp.SetManagedFields(nil)
	cp.SetLabels(nil)
	cp.SetAnnotations(nil)
	h := sha256.New()
	if err := json.NewEncoder(h).Encode(cp); err != nil {
		// API types always encode; an empty fingerprint never matches.
		return ""
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// generationTracked tells whether the API server moves obj's generation
// with every change of its spec, its whole content besides metadata and
// status: its generation then serves as its fingerprint, and costs no
// hashing of the largest children (the workloads, on every status event).
func generationTracked(obj client.Object) bool {
	switch obj.(type) {
	case *appsv1.Deployment, *appsv1.StatefulSet, *networkingv1.NetworkPolicy, *policyv1.PodDisruptionBudget:
		return true
	}
	return false
}

// handSetFingerprint is the cache's fingerprint of an object that came from
// the API server with a fingerprint annotation on it (put there by hand):
// it matches no verified state, so the object is read past the cache and
// rewritten without the annotation.
const handSetFingerprint = "set by hand"

// cachedFingerprint is the fingerprint the cache's transform put on a child
// ("" for an object not read from the cache).
func cachedFingerprint(obj client.Object) string {
	return obj.GetAnnotations()[fingerprintAnnotation]
}

// slimKind tells whether the cache holds obj's kind without its content:
// such a child is read past the cache before it is compared or updated.
func slimKind(obj client.Object) bool {
	switch obj.(type) {
	case *appsv1.Deployment, *appsv1.StatefulSet, *corev1.ConfigMap, *networkingv1.NetworkPolicy:
		return true
	}
	return false
}

// slimmed tells whether obj's heavy content is already dropped (an object
// the transform has seen; a valid workload always has containers).
func slimmed(obj client.Object) bool {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return len(o.Spec.Template.Spec.Containers) == 0
	case *appsv1.StatefulSet:
		return len(o.Spec.Template.Spec.Containers) == 0
	case *corev1.ConfigMap:
		return o.Data == nil && o.BinaryData == nil
	case *networkingv1.NetworkPolicy:
		return reflect.ValueOf(o.Spec).IsZero()
	}
	return false
}

// transformed tells whether obj is one slimChild returned (informers may
// hand the cache's own objects to the transform again, on a resync): it has
// a fingerprint, no managedFields (the API server sends them with every
// object) and, for a slim kind, no content. Such an object's annotations
// hold its own fingerprint, which must not count as one put there by hand.
func transformed(obj client.Object) bool {
	return cachedFingerprint(obj) != "" && obj.GetManagedFields() == nil && (!slimKind(obj) || slimmed(obj))
}

// slimChild is the cache's transform of every child kind: it drops
// managedFields, fingerprints the object and, for the slim kinds, drops
// what the operator reads only from the full object (pod templates,
// ConfigMap data, NetworkPolicy rules). Kept: metadata, status, replicas,
// selectors, a StatefulSet's volume claim templates and service name, and
// every field of the other kinds. Idempotent: a slimmed object that
// carries its fingerprint is returned as it is.
func slimChild(in any) (any, error) {
	obj, ok := in.(client.Object)
	if !ok {
		return in, nil // a tombstone (DeletedFinalStateUnknown)
	}
	if transformed(obj) {
		return in, nil
	}
	obj.SetManagedFields(nil)
	shareStrings(obj)
	fp := fingerprint(obj)
	annotations := obj.GetAnnotations() // a decoded object: the transform's to change
	if annotations == nil {
		annotations = map[string]string{}
	}
	if _, handSet := annotations[fingerprintAnnotation]; handSet {
		fp = handSetFingerprint
	}
	annotations[fingerprintAnnotation] = fp
	obj.SetAnnotations(annotations)
	switch o := obj.(type) {
	case *appsv1.Deployment:
		o.Spec.Template = corev1.PodTemplateSpec{}
	case *appsv1.StatefulSet:
		o.Spec.Template = corev1.PodTemplateSpec{}
	case *corev1.ConfigMap:
		o.Data, o.BinaryData = nil, nil
	case *networkingv1.NetworkPolicy:
		o.Spec = networkingv1.NetworkPolicySpec{}
	}
	return obj, nil
}

// withoutFingerprint returns annotations without the cache's fingerprint
// (the same map when it has none).
func withoutFingerprint(annotations map[string]string) map[string]string {
	if _, ok := annotations[fingerprintAnnotation]; !ok {
		return annotations
	}
	out := maps.Clone(annotations)
	delete(out, fingerprintAnnotation)
	if len(out) == 0 {
		return nil
	}
	return out
}
