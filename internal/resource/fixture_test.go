package resource

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
)

// samplePlatform is the sample platform
// (config/samples/platform_v1alpha1_parserplatform.yaml): namespace parser,
// name vk, auth :8001, comments :8002, parser :8003, analytics :8004 and the
// gateway on :8080. The golden files are rendered from it; change it only
// together with them (make golden).
func samplePlatform() *platformv1.ParserPlatform {
	service := func(name string, port int32) platformv1.ServiceSpec {
		return platformv1.ServiceSpec{
			Name:  name,
			Image: "registry.example.com/vk-parser/" + name + ":1.4.0",
			Port:  port,
		}
	}
	return &platformv1.ParserPlatform{
		TypeMeta: metav1.TypeMeta{APIVersion: platformv1.GroupVersion.String(), Kind: "ParserPlatform"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      "vk",
			Namespace: "parser",
			UID:       types.UID("0b5e0f4e-6d7a-4c1e-9a3b-7f2d8c9e1a20"),
		},
		Spec: platformv1.ParserPlatformSpec{
			Services: []platformv1.ServiceSpec{
				service("auth", 8001),
				service("comments", 8002),
				service("parser", 8003),
				service("analytics", 8004),
			},
			Gateway: platformv1.GatewaySpec{
				Image: "registry.example.com/vk-parser/gateway:1.4.0",
				Port:  8080,
			},
			// The stateful tier of the sample: 4 shards, a 3x(1+1) Redis
			// Cluster and the services' three Celery queues on RabbitMQ.
			Database: platformv1.DatabaseSpec{Shards: 4},
			Cache:    platformv1.CacheSpec{Masters: 3, ReplicasPerMaster: ptr.To[int32](1)},
			Queues: &platformv1.QueuesSpec{
				Broker:  platformv1.BrokerSpec{Type: platformv1.BrokerRabbitMQ},
				Workers: platformv1.WorkersSpec{Image: "registry.example.com/vk-parser/worker:1.4.0", App: "vk_parser"},
				Queues: []platformv1.QueueSpec{
					{Name: "parser", RoutingKey: "parser", Tasks: []string{"parser.tasks.parse_comments"}, Concurrency: 4},
					{Name: "analytics", RoutingKey: "analytics", Tasks: []string{"analytics.tasks.process_data"}},
					{Name: "notifications", RoutingKey: "notifications", Tasks: []string{"notifications.tasks.send_email"}},
				},
			},
		},
	}
}

// podTemplates are the pod templates of every workload among objs, keyed by
// "Kind/name".
func podTemplates(t *testing.T, objs []client.Object) map[string]*corev1.PodTemplateSpec {
	t.Helper()
	out := map[string]*corev1.PodTemplateSpec{}
	for _, o := range objs {
		if tmpl := PodTemplateOf(o); tmpl != nil {
			out[kindOf(o)+"/"+o.GetName()] = tmpl
		}
	}
	return out
}

// statelessTemplates are the pod templates of the stateless tier's workloads
// (services, gateway, load balancer): the ones that read the registry or
// nginx.conf and carry their hash.
func statelessTemplates(t *testing.T, objs []client.Object) map[string]*corev1.PodTemplateSpec {
	t.Helper()
	out := map[string]*corev1.PodTemplateSpec{}
	for name, tmpl := range podTemplates(t, objs) {
		switch tmpl.Labels[LabelComponent] {
		case ComponentService, ComponentGateway, ComponentLoadBalancer:
			out[name] = tmpl
		}
	}
	return out
}

// appComponents run the platform's own code (README.md, "What the operator
// creates": app containers get INSTANCE_ID): services, the gateway and queue
// workers, not nginx or the data stores.
var appComponents = map[string]bool{ComponentService: true, ComponentGateway: true, "worker": true}

// find returns the child of type T named name, or fails.
func find[T client.Object](t *testing.T, objs []client.Object, name string) T {
	t.Helper()
	for _, o := range objs {
		if typed, ok := o.(T); ok && o.GetName() == name {
			return typed
		}
	}
	var zero T
	t.Fatalf("no %T named %q among the children", zero, name)
	return zero
}

// hpas are the HPAs among objs by name.
func hpas(objs []client.Object) map[string]*autoscalingv2.HorizontalPodAutoscaler {
	out := map[string]*autoscalingv2.HorizontalPodAutoscaler{}
	for _, o := range objs {
		if h, ok := o.(*autoscalingv2.HorizontalPodAutoscaler); ok {
			out[h.Name] = h
		}
	}
	return out
}

// kindOf names an object's kind from its Go type, so a builder that forgets
// TypeMeta cannot hide a child from a test.
func kindOf(o client.Object) string {
	switch o.(type) {
	case *corev1.ServiceAccount:
		return "ServiceAccount"
	case *corev1.Secret:
		return "Secret"
	case *corev1.ConfigMap:
		return "ConfigMap"
	case *corev1.Service:
		return "Service"
	case *appsv1.StatefulSet:
		return "StatefulSet"
	case *appsv1.Deployment:
		return "Deployment"
	case *autoscalingv2.HorizontalPodAutoscaler:
		return "HorizontalPodAutoscaler"
	default:
		return o.GetObjectKind().GroupVersionKind().Kind
	}
}

// testCredentials stand in for the generated values the controller resolves:
// builders only copy them into Secrets and configs.
var testCredentials = Credentials{}
