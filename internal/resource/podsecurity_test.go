package resource

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiresource "k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"k8s.io/utils/ptr"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
)

// restricted is the level every workload must meet (every pod runs under Pod
// Security restricted: docs/architecture.md, "Availability"), at the newest
// policy version.
var restricted = api.LevelVersion{Level: api.LevelRestricted, Version: api.LatestVersion()}

// violations runs a pod template through the upstream Pod Security evaluator,
// the code the admission plugin runs, and returns what it forbids.
func violations(t *testing.T, tmpl *corev1.PodTemplateSpec) []string {
	t.Helper()
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatalf("building the Pod Security evaluator: %v", err)
	}
	var out []string
	for _, r := range evaluator.EvaluatePod(restricted, &tmpl.ObjectMeta, &tmpl.Spec) {
		if !r.Allowed {
			out = append(out, fmt.Sprintf("%s (%s)", r.ForbiddenReason, r.ForbiddenDetail))
		}
	}
	return out
}

// platformVariants are platforms that exercise every branch of the pod
// builders: the sample, user resources and env, autoscaling off.
func platformVariants() map[string]*platformv1.ParserPlatform {
	custom := samplePlatform()
	custom.Spec.Autoscaling.Enabled = ptr.To(false)
	custom.Spec.Services[0].Resources = corev1.ResourceRequirements{
		Limits: corev1.ResourceList{corev1.ResourceCPU: apiresource.MustParse("1"), corev1.ResourceMemory: apiresource.MustParse("1Gi")},
	}
	custom.Spec.Services[1].Env = []corev1.EnvVar{{Name: "LOG_LEVEL", Value: "debug"}}
	custom.Spec.LoadBalancer = platformv1.LoadBalancerSpec{Replicas: 3, ServiceType: "NodePort", Image: "nginxinc/nginx-unprivileged:1.27"}
	custom.Spec.Monitoring.MetricsPort = 9100
	return map[string]*platformv1.ParserPlatform{"sample": samplePlatform(), "customised": custom}
}

func TestPodTemplatesMeetPodSecurityRestricted(t *testing.T) {
	for variant, p := range platformVariants() {
		templates := podTemplates(t, Children(p, testCredentials))
		// The four services, the gateway and the load balancer at least: a
		// walk that finds nothing must not pass.
		if len(templates) < len(p.Spec.Services)+2 {
			t.Fatalf("%s: found %d pod templates among the children, want at least %d", variant, len(templates), len(p.Spec.Services)+2)
		}
		for _, name := range slices.Sorted(maps.Keys(templates)) {
			t.Run(variant+"/"+name, func(t *testing.T) {
				if v := violations(t, templates[name]); len(v) > 0 {
					t.Errorf("violates Pod Security %q:\n  %s", restricted.Level, strings.Join(v, "\n  "))
				}
			})
		}
	}
}

// TestPodSecurityEvaluatorRejectsUnsafeTemplates is the control: the same
// evaluator, on the operator's own templates made unsafe in one way each,
// must refuse them, so the test above cannot pass vacuously.
func TestPodSecurityEvaluatorRejectsUnsafeTemplates(t *testing.T) {
	p := samplePlatform()
	base := podTemplates(t, Children(p, testCredentials))["Deployment/"+Name(p.Name, "auth")]
	if base == nil {
		t.Fatal("no auth Deployment among the children")
	}
	for name, tc := range map[string]struct {
		breakIt func(*corev1.PodSpec)
		reason  string
	}{
		"privileged": {func(s *corev1.PodSpec) {
			s.Containers[0].SecurityContext.Privileged = ptr.To(true)
		}, "privileged"},
		"privilege escalation": {func(s *corev1.PodSpec) {
			s.Containers[0].SecurityContext.AllowPrivilegeEscalation = ptr.To(true)
		}, "allowPrivilegeEscalation"},
		"root user": {func(s *corev1.PodSpec) {
			s.SecurityContext.RunAsNonRoot = nil
			s.Containers[0].SecurityContext.RunAsNonRoot = nil
			s.SecurityContext.RunAsUser = ptr.To[int64](0)
		}, "runAsUser=0"},
		"capabilities kept": {func(s *corev1.PodSpec) {
			s.Containers[0].SecurityContext.Capabilities = nil
		}, "unrestricted capabilities"},
		"no seccomp profile": {func(s *corev1.PodSpec) {
			s.SecurityContext.SeccompProfile = nil
			s.Containers[0].SecurityContext.SeccompProfile = nil
		}, "seccompProfile"},
		"host path volume": {func(s *corev1.PodSpec) {
			s.Volumes = append(s.Volumes, corev1.Volume{Name: "host", VolumeSource: corev1.VolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: "/var/run"},
			}})
		}, "hostPath"},
	} {
		t.Run(name, func(t *testing.T) {
			tmpl := base.DeepCopy()
			tc.breakIt(&tmpl.Spec)
			v := violations(t, tmpl)
			if len(v) == 0 {
				t.Fatalf("the evaluator allowed a template with %s", name)
			}
			if joined := strings.Join(v, "; "); !strings.Contains(joined, tc.reason) {
				t.Errorf("violations %q do not name %q", joined, tc.reason)
			}
		})
	}
}
