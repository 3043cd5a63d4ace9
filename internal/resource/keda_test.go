package resource

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
)

// kedaPlatform: the sample with a backlog target on the parser queue only.
func kedaPlatform() *platformv1.ParserPlatform {
	p := samplePlatform()
	p.Spec.Queues.Queues[0].Autoscaling = &platformv1.QueueAutoscaling{
		AutoscalingOverride: platformv1.AutoscalingOverride{MaxReplicas: ptr.To[int32](40), TargetMemoryUtilizationPercentage: ptr.To[int32](0)},
		TargetQueueLength:   ptr.To[int32](25),
	}
	return p
}

func nested(t *testing.T, u *unstructured.Unstructured, path ...string) any {
	t.Helper()
	v, ok, err := unstructured.NestedFieldNoCopy(u.Object, path...)
	if err != nil || !ok {
		t.Fatalf("%s %s has no %v: %v", u.GetKind(), u.GetName(), path, err)
	}
	return v
}

func TestScaledObjectScalesTheWorkerOnItsQueue(t *testing.T) {
	p := kedaPlatform()
	objs := KEDAObjects(p)
	if len(objs) != 2 || objs[0].GetKind() != "TriggerAuthentication" || objs[1].GetName() != Name(p.Name, WorkerName("parser")) {
		t.Fatalf("KEDA objects %v, want the TriggerAuthentication and the parser worker's ScaledObject only", names(objs))
	}
	so := objs[1]
	if nested(t, so, "spec", "scaleTargetRef", "name") != Name(p.Name, WorkerName("parser")) ||
		nested(t, so, "spec", "minReplicaCount") != int64(3) || nested(t, so, "spec", "maxReplicaCount") != int64(40) {
		t.Errorf("ScaledObject target and bounds: %v", so.Object["spec"])
	}
	triggers := nested(t, so, "spec", "triggers").([]any)
	if len(triggers) != 2 { // queue and CPU; memory is off for this queue
		t.Fatalf("triggers %v, want rabbitmq and cpu", triggers)
	}
	rabbit := triggers[0].(map[string]any)
	meta := rabbit["metadata"].(map[string]any)
	if rabbit["type"] != "rabbitmq" || meta["queueName"] != "parser" || meta["mode"] != "QueueLength" || meta["value"] != "25" ||
		rabbit["authenticationRef"].(map[string]any)["name"] != BrokerName(p) {
		t.Errorf("rabbitmq trigger %v", rabbit)
	}
	if cpu := triggers[1].(map[string]any); cpu["type"] != "cpu" || cpu["metricType"] != "Utilization" || cpu["metadata"].(map[string]any)["value"] != "70" {
		t.Errorf("cpu trigger %v", cpu)
	}
	if nested(t, so, "spec", "advanced", "horizontalPodAutoscalerConfig", "behavior", "scaleDown", "stabilizationWindowSeconds") != int64(300) {
		t.Error("the ScaledObject lost the HPA's scale-down stabilisation")
	}
	ref := nested(t, objs[0], "spec", "secretTargetRef").([]any)[0].(map[string]any)
	if ref["parameter"] != "host" || ref["name"] != BrokerName(p) || ref["key"] != KeyBrokerURL {
		t.Errorf("TriggerAuthentication reads %v, want host from the broker Secret's url", ref)
	}
	for _, o := range objs {
		if o.GetOwnerReferences()[0].UID != p.UID || o.GetLabels()[LabelManagedBy] != ManagedBy {
			t.Errorf("%s %s lacks the children's owner reference or labels", o.GetKind(), o.GetName())
		}
	}
}

func TestRedisBrokerGetsTheListLengthTrigger(t *testing.T) {
	p := redisBrokerPlatform()
	p.Spec.Queues.Queues[0].Autoscaling = &platformv1.QueueAutoscaling{TargetQueueLength: ptr.To[int32](10)}
	objs := KEDAObjects(p)
	trigger := nested(t, objs[1], "spec", "triggers").([]any)[0].(map[string]any)
	meta := trigger["metadata"].(map[string]any)
	if trigger["type"] != "redis" || meta["listName"] != p.Spec.Queues.Queues[0].Name || meta["listLength"] != "10" ||
		meta["address"] != BrokerName(p)+"."+p.Namespace+".svc:6379" {
		t.Errorf("redis trigger %v", trigger)
	}
	ref := nested(t, objs[0], "spec", "secretTargetRef").([]any)[0].(map[string]any)
	if ref["parameter"] != "password" || ref["key"] != KeyPassword {
		t.Errorf("TriggerAuthentication for a Redis broker reads %v", ref)
	}
}

func TestNoKEDAObjectsWithoutTarget(t *testing.T) {
	p := kedaPlatform()
	p.Spec.Queues.Queues[0].Autoscaling.Enabled = ptr.To(false)
	if objs := KEDAObjects(p); objs != nil {
		t.Errorf("autoscaling off: KEDA objects %v", names(objs))
	}
	if objs := KEDAObjects(samplePlatform()); objs != nil {
		t.Errorf("no targetQueueLength: KEDA objects %v", names(objs))
	}
}

// TestWithoutReplacedHPAs: the worker KEDA scales loses its HPA, and only
// that one.
func TestWithoutReplacedHPAs(t *testing.T) {
	p := kedaPlatform()
	children := Children(p, testCredentials)
	before := hpas(children)
	after := hpas(WithoutReplacedHPAs(children, KEDAObjects(p)))
	worker := Name(p.Name, WorkerName("parser"))
	if _, ok := before[worker]; !ok {
		t.Fatalf("no HPA %s to replace among %d", worker, len(before))
	}
	if _, ok := after[worker]; ok || len(after) != len(before)-1 {
		t.Errorf("HPAs after: %d (of %d), %s kept: %v", len(after), len(before), worker, after[worker] != nil)
	}
}

func names(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.GetKind()+"/"+o.GetName())
	}
	return out
}
