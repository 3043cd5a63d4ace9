package resource

import (
	"fmt"
	"strconv"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
)

// KEDA's kinds: a worker whose queue has a targetQueueLength is scaled by
// a ScaledObject on its backlog while KEDA's CRDs are served, instead of
// the operator's own HPA. Built unstructured, as the Prometheus Operator's
// kinds are: one object each does not justify KEDA's Go module.
var (
	ScaledObjectGVK          = schema.GroupVersionKind{Group: "keda.sh", Version: "v1alpha1", Kind: "ScaledObject"}
	TriggerAuthenticationGVK = schema.GroupVersionKind{Group: "keda.sh", Version: "v1alpha1", Kind: "TriggerAuthentication"}
)

// CRD names the controller watches for.
const (
	ScaledObjectCRD          = "scaledobjects.keda.sh"
	TriggerAuthenticationCRD = "triggerauthentications.keda.sh"
)

// KEDAScaledQueues are the queues whose workers KEDA scales when it is
// installed: autoscaling on and a targetQueueLength set.
func KEDAScaledQueues(p *platformv1.ParserPlatform) []*platformv1.QueueSpec {
	if !hasQueues(p) {
		return nil
	}
	var out []*platformv1.QueueSpec
	for i := range p.Spec.Queues.Queues {
		q := &p.Spec.Queues.Queues[i]
		if q.QueueLengthTarget() > 0 && p.Spec.AutoscalingFor(q.Autoscaling.Override()).Enabled {
			out = append(out, q)
		}
	}
	return out
}

// KEDAObjects are the TriggerAuthentication (one per platform, named like
// the broker) and a ScaledObject per KEDAScaledQueues, named like the
// worker's Deployment; nil when no queue asks for backlog scaling.
func KEDAObjects(p *platformv1.ParserPlatform) []*unstructured.Unstructured {
	queues := KEDAScaledQueues(p)
	if len(queues) == 0 {
		return nil
	}
	out := []*unstructured.Unstructured{TriggerAuthentication(p)}
	for _, q := range queues {
		out = append(out, ScaledObject(p, q))
	}
	return out
}

// TriggerAuthentication hands KEDA the broker's credentials from the
// broker's Secret: the AMQP URL (key url) for RabbitMQ, the password for a
// Redis broker. KEDA reads the Secret itself; the operator copies nothing.
func TriggerAuthentication(p *platformv1.ParserPlatform) *unstructured.Unstructured {
	meta := objectMeta(p, BrokerName(p), brokerName, ComponentBroker)
	u := &unstructured.Unstructured{Object: map[string]any{}}
	u.SetGroupVersionKind(TriggerAuthenticationGVK)
	u.SetName(meta.Name)
	u.SetNamespace(meta.Namespace)
	u.SetLabels(meta.Labels)
	u.SetOwnerReferences(meta.OwnerReferences)
	param, key := "host", KeyBrokerURL
	if isRedisBroker(p) {
		param, key = "password", KeyPassword
	}
	u.Object["spec"] = map[string]any{"secretTargetRef": []any{map[string]any{
		"parameter": param, "name": BrokerName(p), "key": key,
	}}}
	return u
}

// ScaledObject scales queue q's worker Deployment between the queue's
// min and max replicas: on the queue's ready messages (targetQueueLength
// per replica) and on the CPU and memory targets of the spec, with the
// scale-down behaviour the operator's HPA has.
func ScaledObject(p *platformv1.ParserPlatform, q *platformv1.QueueSpec) *unstructured.Unstructured {
	a := p.Spec.AutoscalingFor(q.Autoscaling.Override())
	w := &appWorkload{platform: p, name: WorkerName(q.Name), component: ComponentWorker, autoscaling: a}
	u := &unstructured.Unstructured{Object: map[string]any{}}
	meta := w.meta()
	u.SetGroupVersionKind(ScaledObjectGVK)
	u.SetName(meta.Name)
	u.SetNamespace(meta.Namespace)
	u.SetLabels(meta.Labels)
	u.SetOwnerReferences(meta.OwnerReferences)
	triggers := []any{queueTrigger(p, q)}
	triggers = append(triggers, resourceTrigger("cpu", a.TargetCPUUtilization))
	if a.TargetMemoryUtilization > 0 {
		triggers = append(triggers, resourceTrigger("memory", a.TargetMemoryUtilization))
	}
	behavior, err := runtime.DefaultUnstructuredConverter.ToUnstructured(w.HPA().Spec.Behavior)
	if err != nil {
		panic(err) // a typed struct always converts
	}
	u.Object["spec"] = map[string]any{
		"scaleTargetRef":  map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": w.childName()},
		"minReplicaCount": int64(a.MinReplicas),
		"maxReplicaCount": int64(a.MaxReplicas),
		"pollingInterval": int64(15),
		"advanced": map[string]any{
			"horizontalPodAutoscalerConfig": map[string]any{"behavior": behavior},
		},
		"triggers": triggers,
	}
	return u
}

// queueTrigger reads the queue's backlog: ready messages on RabbitMQ
// (QueueLength over AMQP, as the broker's one user), the list's length on
// a Redis broker (Celery's queue is a list named like the queue).
func queueTrigger(p *platformv1.ParserPlatform, q *platformv1.QueueSpec) map[string]any {
	target := strconv.Itoa(int(q.QueueLengthTarget()))
	auth := map[string]any{"name": BrokerName(p)}
	if isRedisBroker(p) {
		return map[string]any{"type": "redis", "authenticationRef": auth, "metadata": map[string]any{
			"address":       fmt.Sprintf("%s.%s.svc:%d", BrokerName(p), p.Namespace, RedisPort),
			"listName":      q.Name,
			"listLength":    target,
			"databaseIndex": "0",
		}}
	}
	return map[string]any{"type": "rabbitmq", "authenticationRef": auth, "metadata": map[string]any{
		"protocol":  "amqp",
		"queueName": q.Name,
		"mode":      "QueueLength",
		"value":     target,
	}}
}

func resourceTrigger(kind string, percent int32) map[string]any {
	return map[string]any{"type": kind, "metricType": "Utilization", "metadata": map[string]any{"value": strconv.Itoa(int(percent))}}
}

// WithoutReplacedHPAs drops from children the HPAs that KEDA's
// ScaledObjects replace (same name): a Deployment must never have two
// autoscalers. The controller calls it only while KEDA's CRDs are served.
func WithoutReplacedHPAs(children []client.Object, keda []*unstructured.Unstructured) []client.Object {
	replaced := map[string]bool{}
	for _, o := range keda {
		if o.GroupVersionKind() == ScaledObjectGVK {
			replaced[o.GetName()] = true
		}
	}
	out := make([]client.Object, 0, len(children))
	for _, c := range children {
		if kindName(c) == "HorizontalPodAutoscaler" && replaced[c.GetName()] {
			continue
		}
		out = append(out, c)
	}
	return out
}
