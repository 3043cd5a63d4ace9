package controller

import (
	"reflect"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ignoredTopLevelFields are not compared: metadata is compared separately
// (labels and annotations only), status belongs to the child's controller.
var ignoredTopLevelFields = map[string]bool{"apiVersion": true, "kind": true, "metadata": true, "status": true}

// matches reports whether live already has everything desired sets. It
// compares only the fields the operator sets, so values the API server
// defaults and labels or annotations that others add never look like drift,
// while a hand edit of any field the operator owns does. skipPaths are
// dotted field paths left out of the comparison (replicas owned by an HPA).
func matches(desired, live client.Object, skipPaths ...[]string) (bool, error) {
	d, err := runtime.DefaultUnstructuredConverter.ToUnstructured(desired)
	if err != nil {
		return false, err
	}
	l, err := runtime.DefaultUnstructuredConverter.ToUnstructured(live)
	if err != nil {
		return false, err
	}
	for _, path := range skipPaths {
		deletePath(d, path)
	}
	if !isSubset(desired.GetLabels(), live.GetLabels()) || !isSubset(desired.GetAnnotations(), live.GetAnnotations()) {
		return false, nil
	}
	for key, value := range d {
		if ignoredTopLevelFields[key] {
			continue
		}
		if !contains(value, l[key]) {
			return false, nil
		}
	}
	return true, nil
}

func isSubset(want, have map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// contains reports whether have holds every value set in want: maps are
// compared key by key, lists element by element with equal length, and an
// unset (nil or zero) value in want matches anything absent in have.
func contains(want, have any) bool {
	switch w := want.(type) {
	case nil:
		return true
	case map[string]any:
		h, ok := have.(map[string]any)
		if !ok {
			return len(w) == 0 && have == nil
		}
		for k, v := range w {
			if !contains(v, h[k]) {
				return false
			}
		}
		return true
	case []any:
		h, ok := have.([]any)
		if !ok {
			return len(w) == 0 && have == nil
		}
		if len(w) != len(h) {
			return false
		}
		for i := range w {
			if !contains(w[i], h[i]) {
				return false
			}
		}
		return true
	default:
		if have == nil {
			return reflect.ValueOf(want).IsZero()
		}
		return reflect.DeepEqual(want, have)
	}
}

func deletePath(obj map[string]any, path []string) {
	for i, key := range path {
		if i == len(path)-1 {
			delete(obj, key)
			return
		}
		next, ok := obj[key].(map[string]any)
		if !ok {
			return
		}
		obj = next
	}
}
