package controller

import (
	"maps"
	"slices"
	"strings"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The children of a platform repeat the same strings and label sets over
// and over: every one of them names its namespace, carries the platform's
// labels and an owner reference to the platform, and a workload, its
// Service and its PDB select the same labels. Decoded, each is a copy of
// its own; the cache's transform (slimChild) replaces them with one shared
// copy, which at hundreds of platforms is a good part of the operator's
// memory. Cached objects are never modified in place (kinds.go), so
// sharing them is safe.

// pool holds the one copy of each string and label set the cache shares.
// It grows with the distinct names, labels and platforms seen, and stops
// taking new entries at poolLimit (the rest are then kept as decoded).
type pool struct {
	mu      sync.Mutex
	strings map[string]string
	sets    map[string]map[string]string
}

const poolLimit = 1 << 17

var shared = &pool{strings: map[string]string{}, sets: map[string]map[string]string{}}

// str returns the pool's copy of s; the caller holds p.mu.
func (p *pool) str(s string) string {
	if c, ok := p.strings[s]; ok {
		return c
	}
	if len(p.strings) < poolLimit {
		p.strings[s] = s
	}
	return s
}

// set returns the pool's copy of a label set (nil for an empty one); the
// caller holds p.mu. The copy is shared: never modify it (merged and
// maps.Clone make new maps).
func (p *pool) set(m map[string]string) map[string]string {
	if len(m) == 0 {
		return m
	}
	var key strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		key.WriteString(k)
		key.WriteByte(0)
		key.WriteString(m[k])
		key.WriteByte(0)
	}
	if c, ok := p.sets[key.String()]; ok {
		return c
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[p.str(k)] = p.str(v)
	}
	if len(p.sets) < poolLimit {
		p.sets[key.String()] = out
	}
	return out
}

// selector shares a label selector's matchLabels; the caller holds p.mu.
func (p *pool) selector(s *metav1.LabelSelector) {
	if s != nil {
		s.MatchLabels = p.set(s.MatchLabels)
	}
}

// shareStrings replaces what obj repeats of other children with the
// pool's copies: its namespace, labels, annotation keys and values (the
// fingerprint is set after), owner references and selectors.
func shareStrings(obj client.Object) {
	p := shared
	// One lock for the whole object: the transform runs on every event.
	p.mu.Lock()
	defer p.mu.Unlock()
	obj.SetNamespace(p.str(obj.GetNamespace()))
	obj.SetLabels(p.set(obj.GetLabels()))
	if a := obj.GetAnnotations(); len(a) > 0 {
		out := make(map[string]string, len(a)+1)
		for k, v := range a {
			out[p.str(k)] = p.str(v)
		}
		obj.SetAnnotations(out)
	}
	refs := obj.GetOwnerReferences()
	for i := range refs {
		refs[i].APIVersion, refs[i].Kind, refs[i].Name = p.str(refs[i].APIVersion), p.str(refs[i].Kind), p.str(refs[i].Name)
		refs[i].UID = types.UID(p.str(string(refs[i].UID)))
	}
	switch o := obj.(type) {
	case *appsv1.Deployment:
		p.selector(o.Spec.Selector)
	case *appsv1.StatefulSet:
		p.selector(o.Spec.Selector)
		o.Spec.ServiceName = p.str(o.Spec.ServiceName)
	case *corev1.Service:
		o.Spec.Selector = p.set(o.Spec.Selector)
		for i := range o.Spec.Ports {
			o.Spec.Ports[i].Name = p.str(o.Spec.Ports[i].Name)
		}
	case *policyv1.PodDisruptionBudget:
		p.selector(o.Spec.Selector)
	case *autoscalingv2.HorizontalPodAutoscaler:
		ref := &o.Spec.ScaleTargetRef
		ref.APIVersion, ref.Kind, ref.Name = p.str(ref.APIVersion), p.str(ref.Kind), p.str(ref.Name)
	}
}
