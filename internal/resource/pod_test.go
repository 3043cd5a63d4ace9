package resource

import (
	"maps"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiresource "k8s.io/apimachinery/pkg/api/resource"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
)

func TestWithDefaultRequests(t *testing.T) {
	q := apiresource.MustParse
	for _, tc := range []struct {
		name     string
		in       corev1.ResourceRequirements
		requests corev1.ResourceList
		limits   corev1.ResourceList
	}{{
		name:     "nothing given: both defaulted",
		requests: corev1.ResourceList{corev1.ResourceCPU: q("100m"), corev1.ResourceMemory: q("128Mi")},
	}, {
		name:     "both requests given: kept",
		in:       corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: q("250m"), corev1.ResourceMemory: q("1Gi")}},
		requests: corev1.ResourceList{corev1.ResourceCPU: q("250m"), corev1.ResourceMemory: q("1Gi")},
	}, {
		name:     "CPU request only: memory defaulted",
		in:       corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: q("2")}},
		requests: corev1.ResourceList{corev1.ResourceCPU: q("2"), corev1.ResourceMemory: q("128Mi")},
	}, {
		name: "limits only: requests copy the limits, as the API server would",
		in: corev1.ResourceRequirements{Limits: corev1.ResourceList{
			corev1.ResourceCPU: q("50m"), corev1.ResourceMemory: q("64Mi"),
		}},
		requests: corev1.ResourceList{corev1.ResourceCPU: q("50m"), corev1.ResourceMemory: q("64Mi")},
		limits:   corev1.ResourceList{corev1.ResourceCPU: q("50m"), corev1.ResourceMemory: q("64Mi")},
	}, {
		name:     "memory limit only: memory request copies it, CPU defaulted",
		in:       corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: q("2Gi")}},
		requests: corev1.ResourceList{corev1.ResourceCPU: q("100m"), corev1.ResourceMemory: q("2Gi")},
		limits:   corev1.ResourceList{corev1.ResourceMemory: q("2Gi")},
	}, {
		name: "request and a different limit: request kept",
		in: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: q("200m")},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: q("1")},
		},
		requests: corev1.ResourceList{corev1.ResourceCPU: q("200m"), corev1.ResourceMemory: q("128Mi")},
		limits:   corev1.ResourceList{corev1.ResourceCPU: q("1")},
	}, {
		name:     "other resources untouched",
		in:       corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceEphemeralStorage: q("1Gi")}},
		requests: corev1.ResourceList{corev1.ResourceCPU: q("100m"), corev1.ResourceMemory: q("128Mi"), corev1.ResourceEphemeralStorage: q("1Gi")},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.in.DeepCopy()
			got := withDefaultRequests(tc.in)
			assertResources(t, "requests", got.Requests, tc.requests)
			assertResources(t, "limits", got.Limits, tc.limits)
			if !equalResources(tc.in.Requests, before.Requests) || !equalResources(tc.in.Limits, before.Limits) {
				t.Errorf("the input was modified: %v", tc.in)
			}
		})
	}
}

func assertResources(t *testing.T, what string, got, want corev1.ResourceList) {
	t.Helper()
	if !equalResources(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func equalResources(a, b corev1.ResourceList) bool {
	if len(a) != len(b) {
		return false
	}
	for name, qa := range a {
		qb, ok := b[name]
		if !ok || qa.Cmp(qb) != 0 {
			return false
		}
	}
	return true
}

// appContainers are the containers of every app workload among the children.
func appContainers(t *testing.T, p *platformv1.ParserPlatform) map[string]corev1.Container {
	t.Helper()
	out := map[string]corev1.Container{}
	for name, tmpl := range podTemplates(t, Children(p, testCredentials)) {
		if !appComponents[tmpl.Labels[LabelComponent]] {
			continue
		}
		for _, c := range tmpl.Spec.Containers {
			out[name+"/"+c.Name] = c
		}
	}
	return out
}

func TestEveryAppContainerHasInstanceID(t *testing.T) {
	p := samplePlatform()
	p.Spec.Services[0].Env = []corev1.EnvVar{{Name: "EXTRA", Value: "1"}}
	containers := appContainers(t, p)
	if len(containers) < len(p.Spec.Services)+1 {
		t.Fatalf("found %d app containers, want at least the %d services and the gateway", len(containers), len(p.Spec.Services))
	}
	for _, name := range slices.Sorted(maps.Keys(containers)) {
		c := containers[name]
		var found []corev1.EnvVar
		for _, e := range c.Env {
			if e.Name == "INSTANCE_ID" {
				found = append(found, e)
			}
		}
		if len(found) != 1 {
			t.Errorf("%s: %d INSTANCE_ID variables, want 1", name, len(found))
			continue
		}
		e := found[0]
		if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.name" {
			t.Errorf("%s: INSTANCE_ID = %+v, want the pod name from fieldRef metadata.name", name, e)
		}
	}
}
