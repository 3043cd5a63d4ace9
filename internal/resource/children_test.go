package resource

import (
	"fmt"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
)

func TestChildrenAreTheStatelessTier(t *testing.T) {
	p := samplePlatform()
	got := map[string]bool{}
	for _, o := range Children(p, testCredentials) {
		key := kindOf(o) + "/" + o.GetName()
		if got[key] {
			t.Errorf("%s appears twice", key)
		}
		got[key] = true
	}
	want := []string{
		"ServiceAccount/vk", "ConfigMap/vk-registry", "ConfigMap/vk-lb-config",
		"Service/vk-lb", "Deployment/vk-lb", "PodDisruptionBudget/vk-lb",
	}
	for _, name := range []string{"auth", "comments", "parser", "analytics", "gateway"} {
		for _, kind := range []string{"Service", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget"} {
			want = append(want, kind+"/vk-"+name)
		}
	}
	for _, key := range want {
		if !got[key] {
			t.Errorf("missing child %s", key)
		}
	}
}

// TestEveryChildCarriesLabelsAndOwner checks docs/architecture.md "Children":
// the five labels and a controller reference to the platform, on every child
// and on every pod template (pods are what Services, PDBs and NetworkPolicies
// select).
func TestEveryChildCarriesLabelsAndOwner(t *testing.T) {
	p := samplePlatform()
	children := Children(p, testCredentials)
	for _, o := range children {
		key := kindOf(o) + "/" + o.GetName()
		assertSpecLabels(t, key, p, o.GetLabels())
		if o.GetNamespace() != p.Namespace {
			t.Errorf("%s: namespace %q, want %q", key, o.GetNamespace(), p.Namespace)
		}
		if errs := validation.IsDNS1035Label(o.GetName()); len(errs) > 0 {
			t.Errorf("%s: name is not a DNS-1035 label: %v", key, errs)
		}
		owner := metav1.GetControllerOf(o)
		if owner == nil {
			t.Errorf("%s: no controller owner reference", key)
			continue
		}
		if len(o.GetOwnerReferences()) != 1 || owner.APIVersion != "platform.vkparser.io/v1alpha1" || owner.Kind != "ParserPlatform" ||
			owner.Name != p.Name || owner.UID != p.UID || !ptr.Deref(owner.BlockOwnerDeletion, false) {
			t.Errorf("%s: owner references %+v, want one controller reference to ParserPlatform %s (uid %s)", key, o.GetOwnerReferences(), p.Name, p.UID)
		}
	}
	for name, tmpl := range podTemplates(t, children) {
		assertSpecLabels(t, name+" pod template", p, tmpl.Labels)
	}
}

func assertSpecLabels(t *testing.T, what string, p *platformv1.ParserPlatform, l map[string]string) {
	t.Helper()
	for key, want := range map[string]string{
		LabelInstance:  p.Name,
		LabelPartOf:    "parser-platform",
		LabelManagedBy: "parser-operator",
	} {
		if l[key] != want {
			t.Errorf("%s: label %s = %q, want %q", what, key, l[key], want)
		}
	}
	for _, key := range []string{LabelName, LabelComponent} {
		if l[key] == "" {
			t.Errorf("%s: label %s missing", what, key)
		}
	}
	for key, value := range l {
		if errs := validation.IsQualifiedName(key); len(errs) > 0 {
			t.Errorf("%s: label key %q: %v", what, key, errs)
		}
		if errs := validation.IsValidLabelValue(value); len(errs) > 0 {
			t.Errorf("%s: label %s=%q: %v", what, key, value, errs)
		}
	}
}

// TestChildrenOrderFollowsDependencies checks that Children can be applied
// front to back: the ServiceAccount and ConfigMaps before anything, and for
// every workload its Service, then its Deployment, then what acts on it.
func TestChildrenOrderFollowsDependencies(t *testing.T) {
	p := samplePlatform()
	children := Children(p, testCredentials)
	position := map[string]int{}
	for i, o := range children {
		position[kindOf(o)+"/"+o.GetName()] = i
	}
	rank := func(o client.Object) int {
		switch kindOf(o) {
		case "ServiceAccount", "Secret", "ConfigMap":
			return 0
		case "Service", "NetworkPolicy":
			return 1
		case "StatefulSet", "Deployment":
			return 2
		default:
			return 3
		}
	}
	// Identity and configuration come first, as one block.
	seenOther := false
	for _, o := range children {
		if rank(o) == 0 && seenOther {
			t.Errorf("%s/%s comes after a Service or workload", kindOf(o), o.GetName())
		}
		seenOther = seenOther || rank(o) > 0
	}
	// The NetworkPolicies come before any pod they isolate can run.
	seenWorkload := false
	for _, o := range children {
		if kindOf(o) == "NetworkPolicy" && seenWorkload {
			t.Errorf("NetworkPolicy %s comes after a workload", o.GetName())
		}
		seenWorkload = seenWorkload || rank(o) == 2
	}
	// Per workload (children sharing a name): Service, NetworkPolicy <
	// Deployment < HPA, PDB.
	byName := map[string][]client.Object{}
	for _, o := range children {
		byName[o.GetName()] = append(byName[o.GetName()], o)
	}
	for name, objs := range byName {
		for i := 1; i < len(objs); i++ {
			if rank(objs[i]) < rank(objs[i-1]) {
				t.Errorf("%s: %s comes after %s", name, kindOf(objs[i]), kindOf(objs[i-1]))
			}
		}
	}
	// Whatever a pod template or HPA refers to comes before it.
	for _, o := range children {
		key := kindOf(o) + "/" + o.GetName()
		var needs []string
		if tmpl := PodTemplateOf(o); tmpl != nil {
			needs = append(needs, "ServiceAccount/"+tmpl.Spec.ServiceAccountName)
			for _, v := range tmpl.Spec.Volumes {
				if v.ConfigMap != nil {
					needs = append(needs, "ConfigMap/"+v.ConfigMap.Name)
				}
			}
		}
		if h, ok := o.(*autoscalingv2.HorizontalPodAutoscaler); ok {
			needs = append(needs, h.Spec.ScaleTargetRef.Kind+"/"+h.Spec.ScaleTargetRef.Name)
		}
		for _, need := range needs {
			at, ok := position[need]
			if !ok {
				t.Errorf("%s refers to %s, which is not among the children", key, need)
			} else if at > position[key] {
				t.Errorf("%s comes before %s, which it refers to", key, need)
			}
		}
	}
	// The app tier (services and gateway) is in strict kind order.
	last := -1
	for _, o := range children {
		if c := o.GetLabels()[LabelComponent]; c != ComponentService && c != ComponentGateway {
			continue
		}
		if r := rank(o); r < last {
			t.Errorf("%s/%s breaks the order Services, Deployments, HPAs/PDBs of the app tier", kindOf(o), o.GetName())
		} else {
			last = r
		}
	}
}

// TestSelectorsMatchPods checks that every Service, PDB and workload selects
// the pods of exactly one workload: the one of the same name where there is
// one (a headless Service may be named apart from its StatefulSet).
func TestSelectorsMatchPods(t *testing.T) {
	p := samplePlatform()
	children := Children(p, testCredentials)
	templates := podTemplates(t, children)
	workloadOf := func(name string) string {
		for _, kind := range []string{"Deployment", "StatefulSet"} {
			if templates[kind+"/"+name] != nil {
				return kind + "/" + name
			}
		}
		return ""
	}
	selects := func(what string, sel map[string]string, name string) string {
		t.Helper()
		if len(sel) == 0 {
			t.Errorf("%s: empty selector", what)
			return ""
		}
		var matched []string
		for key, tmpl := range templates {
			if labels.SelectorFromSet(sel).Matches(labels.Set(tmpl.Labels)) {
				matched = append(matched, key)
			}
		}
		want := workloadOf(name)
		if len(matched) != 1 || (want != "" && matched[0] != want) {
			t.Errorf("%s selects the pods of %v, want exactly those of %s", what, matched, orString(want, "one workload"))
			return ""
		}
		return matched[0]
	}
	for _, o := range children {
		switch c := o.(type) {
		case *corev1.Service:
			if w := selects("Service/"+c.Name, c.Spec.Selector, c.Name); w != "" {
				assertTargetPortsExist(t, c, templates[w])
			}
		case *policyv1.PodDisruptionBudget:
			selects("PodDisruptionBudget/"+c.Name, c.Spec.Selector.MatchLabels, c.Name)
		case *appsv1.Deployment:
			selects("Deployment/"+c.Name, c.Spec.Selector.MatchLabels, c.Name)
		case *appsv1.StatefulSet:
			selects("StatefulSet/"+c.Name, c.Spec.Selector.MatchLabels, c.Name)
		}
	}
}

func assertTargetPortsExist(t *testing.T, svc *corev1.Service, tmpl *corev1.PodTemplateSpec) {
	t.Helper()
	named := map[string]bool{}
	for _, c := range tmpl.Spec.Containers {
		for _, port := range c.Ports {
			named[port.Name] = true
		}
	}
	for _, port := range svc.Spec.Ports {
		if port.TargetPort.Type == intstr.String && !named[port.TargetPort.StrVal] {
			t.Errorf("Service %s port %s targets %q, which no container names", svc.Name, port.Name, port.TargetPort.String())
		}
	}
}

func TestLoadBalancerServiceType(t *testing.T) {
	for _, tc := range []struct {
		spec platformv1.LoadBalancerServiceType
		want corev1.ServiceType
	}{
		{"", corev1.ServiceTypeLoadBalancer},
		{"LoadBalancer", corev1.ServiceTypeLoadBalancer},
		{"NodePort", corev1.ServiceTypeNodePort},
		{"ClusterIP", corev1.ServiceTypeClusterIP},
	} {
		t.Run(fmt.Sprintf("%q", tc.spec), func(t *testing.T) {
			p := samplePlatform()
			p.Spec.LoadBalancer.ServiceType = tc.spec
			p.Spec.LoadBalancer.Port = 8088
			svc := find[*corev1.Service](t, Children(p, testCredentials), Name(p.Name, "lb"))
			if svc.Spec.Type != tc.want {
				t.Errorf("type %q, want %q", svc.Spec.Type, tc.want)
			}
			if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 8088 {
				t.Errorf("ports %+v, want the spec's port 8088", svc.Spec.Ports)
			}
			// The app services stay internal whatever the load balancer is.
			if s := find[*corev1.Service](t, Children(p, testCredentials), Name(p.Name, "auth")); s.Spec.Type != corev1.ServiceTypeClusterIP {
				t.Errorf("service auth has type %q, want ClusterIP", s.Spec.Type)
			}
		})
	}
}

// TestConfigHashRollsOnlyOnConfigChange: a config change rolls the pods that
// read it; nothing else restarts them (docs/architecture.md, "Children").
func TestConfigHashRollsOnlyOnConfigChange(t *testing.T) {
	hashes := func(p *platformv1.ParserPlatform) map[string]string {
		out := map[string]string{}
		for name, tmpl := range statelessTemplates(t, Children(p, testCredentials)) {
			h := tmpl.Annotations[AnnotationConfigHash]
			if h == "" {
				t.Fatalf("%s: no %s annotation", name, AnnotationConfigHash)
			}
			out[name] = h
		}
		return out
	}
	base := hashes(samplePlatform())
	lb := "Deployment/vk-lb"

	for _, tc := range []struct {
		name    string
		change  func(p *platformv1.ParserPlatform)
		rolled  []string // pod templates whose hash must change; all others must not
		appTier bool     // every service and the gateway roll
	}{{
		name: "service added: the registry changes",
		change: func(p *platformv1.ParserPlatform) {
			p.Spec.Services = append(p.Spec.Services, platformv1.ServiceSpec{Name: "search", Image: "search:1", Port: 8005})
		},
		appTier: true,
	}, {
		name:    "service port changed: the registry changes",
		change:  func(p *platformv1.ParserPlatform) { p.Spec.Services[1].Port = 9002 },
		appTier: true,
	}, {
		name:    "gateway port changed: the registry and nginx.conf change",
		change:  func(p *platformv1.ParserPlatform) { p.Spec.Gateway.Port = 8081 },
		appTier: true, rolled: []string{lb},
	}, {
		name: "images changed",
		change: func(p *platformv1.ParserPlatform) {
			p.Spec.Services[0].Image = "auth:2"
			p.Spec.Gateway.Image = "gw:2"
			p.Spec.LoadBalancer.Image = "nginx:2"
		},
	}, {
		name: "replica counts changed",
		change: func(p *platformv1.ParserPlatform) {
			p.Spec.Services[0].Replicas = ptr.To[int32](7)
			p.Spec.LoadBalancer.Replicas = 5
			p.Spec.Autoscaling.MinReplicas = 4
		},
	}, {
		name: "resources changed",
		change: func(p *platformv1.ParserPlatform) {
			p.Spec.Services[2].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: DefaultCPURequest}
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			p := samplePlatform()
			tc.change(p)
			got := hashes(p)
			mustRoll := map[string]bool{}
			for _, name := range tc.rolled {
				mustRoll[name] = true
			}
			for name, tmpl := range statelessTemplates(t, Children(p, testCredentials)) {
				if tc.appTier && (tmpl.Labels[LabelComponent] == ComponentService || tmpl.Labels[LabelComponent] == ComponentGateway) {
					mustRoll[name] = true
				}
			}
			for name, h := range got {
				before, existed := base[name]
				if !existed {
					continue // a new workload has nothing to roll
				}
				if rolled := h != before; rolled != mustRoll[name] {
					t.Errorf("%s: hash %s -> %s, rolled=%v, want rolled=%v", name, before, h, rolled, mustRoll[name])
				}
			}
		})
	}
}

// TestConfigHashIsTheMountedConfig ties each pod template's hash to the
// ConfigMaps it mounts, so a change of any of them rolls it.
func TestConfigHashIsTheMountedConfig(t *testing.T) {
	p := samplePlatform()
	children := Children(p, testCredentials)
	credentialSecrets := map[string]bool{}
	for _, name := range DataCredentialSecrets(p) {
		credentialSecrets[name] = true
	}
	configs := map[string]map[string]string{}
	for _, o := range children {
		if cm, ok := o.(*corev1.ConfigMap); ok {
			configs[cm.Name] = cm.Data
		}
	}
	for name, tmpl := range statelessTemplates(t, children) {
		var mounted []map[string]string
		for _, v := range tmpl.Spec.Volumes {
			if v.ConfigMap != nil {
				mounted = append(mounted, configs[v.ConfigMap.Name])
			}
		}
		if len(mounted) == 0 {
			t.Errorf("%s mounts no ConfigMap", name)
			continue
		}
		// Apps also read the generated values (TestGeneratedValuesRollTheirReaders).
		if ReadsAnySecret(tmpl, credentialSecrets) {
			mounted = append(mounted, testCredentials.Digest(appReadKeys(p)...))
		}
		if got, want := tmpl.Annotations[AnnotationConfigHash], ConfigHash(mounted...); got != want {
			t.Errorf("%s: config hash %s, want %s (the hash of the ConfigMaps it mounts)", name, got, want)
		}
	}
}
