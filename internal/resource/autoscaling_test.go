package resource

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
)

// hpaWant is what an HPA must say; memory 0 means no memory metric.
type hpaWant struct {
	min, max, cpu, memory int32
}

func TestHPAFromSpecAndOverrides(t *testing.T) {
	for _, tc := range []struct {
		name      string
		platform  platformv1.AutoscalingSpec
		override  *platformv1.AutoscalingOverride // on the auth service
		auth      hpaWant
		others    hpaWant
		noAuthHPA bool
	}{{
		name:   "defaults: 3..20, CPU 70, memory 80",
		auth:   hpaWant{3, 20, 70, 80},
		others: hpaWant{3, 20, 70, 80},
	}, {
		name:     "platform settings apply to every workload",
		platform: platformv1.AutoscalingSpec{MinReplicas: 2, MaxReplicas: 10, TargetCPUUtilizationPercentage: 60, TargetMemoryUtilizationPercentage: ptr.To[int32](90)},
		auth:     hpaWant{2, 10, 60, 90},
		others:   hpaWant{2, 10, 60, 90},
	}, {
		name:     "memory 0 drops the memory metric",
		platform: platformv1.AutoscalingSpec{TargetMemoryUtilizationPercentage: ptr.To[int32](0)},
		auth:     hpaWant{3, 20, 70, 0},
		others:   hpaWant{3, 20, 70, 0},
	}, {
		name:     "a per-service override wins, only for that service and only where set",
		platform: platformv1.AutoscalingSpec{MinReplicas: 4},
		override: &platformv1.AutoscalingOverride{MaxReplicas: ptr.To[int32](8), TargetCPUUtilizationPercentage: ptr.To[int32](50)},
		auth:     hpaWant{4, 8, 50, 80},
		others:   hpaWant{4, 20, 70, 80},
	}, {
		name:     "an override can turn the memory metric off",
		override: &platformv1.AutoscalingOverride{TargetMemoryUtilizationPercentage: ptr.To[int32](0)},
		auth:     hpaWant{3, 20, 70, 0},
		others:   hpaWant{3, 20, 70, 80},
	}, {
		name:     "an override can turn the memory metric back on",
		platform: platformv1.AutoscalingSpec{TargetMemoryUtilizationPercentage: ptr.To[int32](0)},
		override: &platformv1.AutoscalingOverride{TargetMemoryUtilizationPercentage: ptr.To[int32](75)},
		auth:     hpaWant{3, 20, 70, 75},
		others:   hpaWant{3, 20, 70, 0},
	}, {
		name:      "an override can turn autoscaling off for one service",
		override:  &platformv1.AutoscalingOverride{Enabled: ptr.To(false)},
		noAuthHPA: true,
		others:    hpaWant{3, 20, 70, 80},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			p := samplePlatform()
			p.Spec.Autoscaling = tc.platform
			p.Spec.Services[0].Autoscaling = tc.override
			children := Children(p, testCredentials)
			all := hpas(children)
			auth := Name(p.Name, "auth")
			if tc.noAuthHPA {
				if _, ok := all[auth]; ok {
					t.Errorf("HPA %s exists although autoscaling is off for it", auth)
				}
			} else {
				assertHPA(t, all[auth], auth, tc.auth)
			}
			for _, s := range append(p.Spec.Services[1:], platformv1.ServiceSpec{Name: "gateway"}) {
				name := Name(p.Name, s.Name)
				assertHPA(t, all[name], name, tc.others)
			}
			// Deployments start at the HPA's minimum.
			for name, h := range all {
				d := find[*appsv1.Deployment](t, children, name)
				if got := ptr.Deref(d.Spec.Replicas, -1); got != *h.Spec.MinReplicas {
					t.Errorf("Deployment %s starts with %d replicas, want the HPA's minimum %d", name, got, *h.Spec.MinReplicas)
				}
			}
		})
	}
}

func assertHPA(t *testing.T, h *autoscalingv2.HorizontalPodAutoscaler, name string, want hpaWant) {
	t.Helper()
	if h == nil {
		t.Errorf("no HPA %s", name)
		return
	}
	if ref := h.Spec.ScaleTargetRef; ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" || ref.Name != name {
		t.Errorf("HPA %s targets %+v, want its Deployment", name, ref)
	}
	if got := ptr.Deref(h.Spec.MinReplicas, 0); got != want.min || h.Spec.MaxReplicas != want.max {
		t.Errorf("HPA %s: replicas %d..%d, want %d..%d", name, got, h.Spec.MaxReplicas, want.min, want.max)
	}
	got := map[corev1.ResourceName]int32{}
	for _, m := range h.Spec.Metrics {
		if m.Type != autoscalingv2.ResourceMetricSourceType || m.Resource == nil ||
			m.Resource.Target.Type != autoscalingv2.UtilizationMetricType || m.Resource.Target.AverageUtilization == nil {
			t.Errorf("HPA %s: metric %+v is not a resource utilisation target", name, m)
			continue
		}
		got[m.Resource.Name] = *m.Resource.Target.AverageUtilization
	}
	wantMetrics := map[corev1.ResourceName]int32{corev1.ResourceCPU: want.cpu}
	if want.memory != 0 {
		wantMetrics[corev1.ResourceMemory] = want.memory
	}
	if len(got) != len(wantMetrics) || len(h.Spec.Metrics) != len(wantMetrics) {
		t.Errorf("HPA %s: metrics %v, want %v", name, got, wantMetrics)
		return
	}
	for r, v := range wantMetrics {
		if got[r] != v {
			t.Errorf("HPA %s: %s target %d%%, want %d%%", name, r, got[r], v)
		}
	}
}

func TestAutoscalingOffUsesSpecReplicas(t *testing.T) {
	p := samplePlatform()
	p.Spec.Autoscaling.Enabled = ptr.To(false)
	p.Spec.Services[0].Replicas = ptr.To[int32](5)
	p.Spec.Services[1].Replicas = ptr.To[int32](0) // scaled to zero on purpose
	p.Spec.Gateway.Replicas = ptr.To[int32](4)
	// A service that turns autoscaling back on for itself keeps its HPA.
	p.Spec.Services[2].Autoscaling = &platformv1.AutoscalingOverride{Enabled: ptr.To(true)}
	children := Children(p, testCredentials)

	all := hpas(children)
	if len(all) != 1 || all[Name(p.Name, "parser")] == nil {
		t.Errorf("HPAs %v, want only the one of the service that turned autoscaling back on", keysOf(all))
	}
	for name, want := range map[string]int32{
		"auth":      5,
		"comments":  0,
		"parser":    platformv1.DefaultMinReplicas, // its HPA's minimum
		"analytics": 2,                             // left out: the CRD's default, 2
		"gateway":   4,
	} {
		d := find[*appsv1.Deployment](t, children, Name(p.Name, name))
		if got := ptr.Deref(d.Spec.Replicas, -1); got != want {
			t.Errorf("Deployment %s: %d replicas, want %d", d.Name, got, want)
		}
	}
}

func keysOf[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
