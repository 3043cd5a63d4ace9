package controller

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
)

// TestStatusChurnFilter: status the operator does not read wakes no
// reconcile; a spec change, a hand edit of metadata, or a change of what
// it reads does.
func TestStatusChurnFilter(t *testing.T) {
	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "vk-auth", Generation: 1, Labels: map[string]string{"a": "b"}},
		Spec:       autoscalingv2.HorizontalPodAutoscalerSpec{MinReplicas: ptr.To[int32](3), MaxReplicas: 20},
	}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "vk-auth", Generation: 2},
		Status:     appsv1.DeploymentStatus{ObservedGeneration: 2, ReadyReplicas: 3, AvailableReplicas: 3, UpdatedReplicas: 3},
	}
	cases := []struct {
		name   string
		old    client.Object
		change func(client.Object)
		read   func(client.Object) any
		wake   bool
	}{
		{"HPA current metrics", hpa, func(o client.Object) {
			o.(*autoscalingv2.HorizontalPodAutoscaler).Status.CurrentMetrics = []autoscalingv2.MetricStatus{{Type: autoscalingv2.ResourceMetricSourceType}}
		}, hpaSpecRead, false},
		{"HPA maxReplicas edited by hand", hpa, func(o client.Object) { o.(*autoscalingv2.HorizontalPodAutoscaler).Spec.MaxReplicas = 5 }, hpaSpecRead, true},
		{"HPA label removed by hand", hpa, func(o client.Object) { o.SetLabels(nil) }, hpaSpecRead, true},
		{"Deployment condition timestamps", dep, func(o client.Object) {
			o.(*appsv1.Deployment).Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing,
				Status: corev1.ConditionTrue, LastUpdateTime: metav1.NewTime(time.Now())}}
		}, deploymentStatusRead, false},
		{"Deployment ready replicas", dep, func(o client.Object) { o.(*appsv1.Deployment).Status.ReadyReplicas = 2 }, deploymentStatusRead, true},
		{"Deployment stalled", dep, func(o client.Object) {
			o.(*appsv1.Deployment).Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Reason: "ProgressDeadlineExceeded"}}
		}, deploymentStatusRead, true},
		{"Deployment spec (new generation)", dep, func(o client.Object) { o.SetGeneration(3) }, deploymentStatusRead, true},
		{"Deployment being deleted", dep, func(o client.Object) { o.SetDeletionTimestamp(ptr.To(metav1.Now())) }, deploymentStatusRead, true},
	}
	for _, tc := range cases {
		cur := tc.old.DeepCopyObject().(client.Object)
		tc.change(cur)
		if got := statusChurnFilter(tc.read).Update(event.UpdateEvent{ObjectOld: tc.old, ObjectNew: cur}); got != tc.wake {
			t.Errorf("%s: wakes a reconcile = %v, want %v", tc.name, got, tc.wake)
		}
	}
}
