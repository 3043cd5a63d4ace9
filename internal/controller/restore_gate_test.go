package controller

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/resource"
	"github.com/vkparser/parser-operator/internal/status"
)

func kindsOf(objs []client.Object) map[string]int {
	out := map[string]int{}
	for _, o := range objs {
		switch o.(type) {
		case *appsv1.Deployment:
			out["Deployment"]++
		case *autoscalingv2.HorizontalPodAutoscaler:
			out["HPA"]++
		case *appsv1.StatefulSet:
			out["StatefulSet"]++
		default:
			out["other"]++
		}
	}
	return out
}

// TestWithholdAppsWhileRestoring: while a restore at creation is unfinished
// no Deployment (services, gateway, lb, workers) or HPA is written, the data
// tier is; once restored (in status or by the annotation), everything is.
func TestWithholdAppsWhileRestoring(t *testing.T) {
	p := samplePlatform("parser", "vk")
	p.Spec.Database.Shards = 2
	p.Spec.Database.Restore = &platformv1.RestoreSpec{BackupSet: "latest"}
	desired := resource.Children(p, resource.Credentials{})
	r := &ParserPlatformReconciler{}

	write, held, res := r.withholdApps(p, desired, nil)
	if k := kindsOf(write); k["Deployment"] != 0 || k["HPA"] != 0 || k["StatefulSet"] < 3 {
		t.Errorf("restoring: writes %v", k)
	}
	if k := kindsOf(held); k["Deployment"] < 4 || k["other"] != 0 {
		t.Errorf("restoring: withholds %v", k)
	}
	if len(write)+len(held) != len(desired) || len(res.refusals) != 0 {
		t.Errorf("%d + %d of %d children, refusals %v", len(write), len(held), len(desired), res.refusals)
	}

	meta.SetStatusCondition(&p.Status.Conditions, metav1.Condition{Type: status.TypeRestored, Status: metav1.ConditionFalse,
		Reason: reasonShardCountMismatch, Message: "backup set S has 4 shards but spec.database.shards is 2"})
	if _, _, res := r.withholdApps(p, desired, nil); len(res.refusals) != 1 || !strings.Contains(res.refusals[0], "has 4 shards") {
		t.Errorf("a refused restore is not reported: %v", res.refusals)
	}

	p.Annotations = map[string]string{AnnotationRestored: "S"}
	if write, held, _ := r.withholdApps(p, desired, nil); len(write) != len(desired) || len(held) != 0 {
		t.Errorf("restored (annotation): writes %d of %d", len(write), len(desired))
	}
	p.Annotations = nil
	p.Status.Restore = &platformv1.RestoreStatus{CompletedAt: &metav1.Time{}}
	if write, _, _ := r.withholdApps(p, desired, nil); len(write) != len(desired) {
		t.Errorf("restored (status): writes %d of %d", len(write), len(desired))
	}
	p.Spec.Database.Restore, p.Status.Restore = nil, nil
	if write, _, _ := r.withholdApps(p, desired, nil); len(write) != len(desired) {
		t.Errorf("no restore: writes %d of %d", len(write), len(desired))
	}
}
