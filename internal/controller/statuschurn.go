package controller

import (
	"maps"
	"reflect"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
)

// In a live cluster the children's statuses change all the time: an HPA
// controller with metrics rewrites every HPA's status every 15 s, a PDB's
// status follows every pod's readiness, the Deployment controller moves
// its conditions' timestamps. A reconcile for each would cost the
// operator a full pass per event for nothing. The kinds that have such a
// status say in managedKinds which part of it the operator reads (the
// workloads' replicas and generation, for the platform's status); an
// update that changes nothing else (no new generation, which every spec
// change of these kinds brings, the HPA's aside; no label, annotation,
// owner, finalizer or deletion) and not that part is dropped before it
// reaches the work queue.
// The cache still holds the object as it is now.

// statusChurnFilter passes the events of kind k that may matter.
func statusChurnFilter(statusRead func(client.Object) any) predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		return metadataMoved(e.ObjectOld, e.ObjectNew) || !reflect.DeepEqual(statusRead(e.ObjectOld), statusRead(e.ObjectNew))
	}}
}

// metadataMoved: what a spec change or a hand edit of a child's metadata
// changes (the operator restores labels and annotations it sets).
func metadataMoved(old, cur client.Object) bool {
	return old.GetGeneration() != cur.GetGeneration() ||
		!maps.Equal(old.GetLabels(), cur.GetLabels()) ||
		!maps.Equal(old.GetAnnotations(), cur.GetAnnotations()) ||
		!reflect.DeepEqual(old.GetOwnerReferences(), cur.GetOwnerReferences()) ||
		!slices.Equal(old.GetFinalizers(), cur.GetFinalizers()) ||
		!old.GetDeletionTimestamp().Equal(cur.GetDeletionTimestamp())
}

// workloadStatus is what observe.go reads of a workload's status.
type workloadStatus struct {
	observedGeneration                int64
	updated, ready, available, stalls int32
}

func deploymentStatusRead(o client.Object) any {
	d, ok := o.(*appsv1.Deployment)
	if !ok {
		return nil
	}
	st := workloadStatus{observedGeneration: d.Status.ObservedGeneration,
		updated: d.Status.UpdatedReplicas, ready: d.Status.ReadyReplicas, available: d.Status.AvailableReplicas}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" {
			st.stalls = 1
		}
	}
	return st
}

func statefulSetStatusRead(o client.Object) any {
	s, ok := o.(*appsv1.StatefulSet)
	if !ok {
		return nil
	}
	return workloadStatus{observedGeneration: s.Status.ObservedGeneration,
		updated: s.Status.UpdatedReplicas, ready: s.Status.ReadyReplicas, available: s.Status.AvailableReplicas}
}

// noStatusRead: the operator reads nothing of the kind's status.
func noStatusRead(client.Object) any { return nil }

// hpaSpecRead: the operator reads nothing of an HPA's status, but an HPA's
// generation moves with its spec only behind a feature gate
// (HPAGeneration), so its spec stands in for the generation.
func hpaSpecRead(o client.Object) any {
	if h, ok := o.(*autoscalingv2.HorizontalPodAutoscaler); ok {
		return h.Spec
	}
	return nil
}
