package controller

import (
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// managedKind is one kind of child: the operator watches it, restores it
// when it drifts and deletes the ones the spec no longer asks for.
type managedKind struct {
	object client.Object
	list   client.ObjectList
}

// managedKinds is the one list of child kinds: the watches, the cache filter
// and pruning follow it (RBAC markers in parserplatform_controller.go too).
var managedKinds = []managedKind{
	{&corev1.ServiceAccount{}, &corev1.ServiceAccountList{}},
	{&corev1.ConfigMap{}, &corev1.ConfigMapList{}},
	{&corev1.Service{}, &corev1.ServiceList{}},
	{&appsv1.Deployment{}, &appsv1.DeploymentList{}},
	{&autoscalingv2.HorizontalPodAutoscaler{}, &autoscalingv2.HorizontalPodAutoscalerList{}},
	{&policyv1.PodDisruptionBudget{}, &policyv1.PodDisruptionBudgetList{}},
}

// ManagedObjects are the child types, for the manager's cache configuration.
func ManagedObjects() []client.Object {
	out := make([]client.Object, 0, len(managedKinds))
	for _, k := range managedKinds {
		out = append(out, k.object)
	}
	return out
}
