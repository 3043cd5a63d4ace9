package controller

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vkparser/parser-operator/internal/resource"
)

// managedKind is one kind of child: the operator watches it, restores it
// when it drifts and deletes the ones the spec no longer asks for.
type managedKind struct {
	object client.Object
	list   client.ObjectList
	// statusRead, for a kind with a status that others rewrite all the
	// time, is the part of the status the operator reads (nil: none); an
	// update that changes no more than the rest of the status wakes no
	// reconcile (statuschurn.go). Nil statusRead: every update does.
	statusRead func(client.Object) any
}

// managedKinds is the one list of child kinds: the watches, the cache filter
// and pruning follow it (RBAC markers in parserplatform_controller.go too).
var managedKinds = []managedKind{
	{&corev1.ServiceAccount{}, &corev1.ServiceAccountList{}, nil},
	{&corev1.Secret{}, &corev1.SecretList{}, nil},
	{&corev1.ConfigMap{}, &corev1.ConfigMapList{}, nil},
	{&corev1.Service{}, &corev1.ServiceList{}, nil},
	{&appsv1.StatefulSet{}, &appsv1.StatefulSetList{}, statefulSetStatusRead},
	{&appsv1.Deployment{}, &appsv1.DeploymentList{}, deploymentStatusRead},
	{&autoscalingv2.HorizontalPodAutoscaler{}, &autoscalingv2.HorizontalPodAutoscalerList{}, hpaSpecRead},
	{&policyv1.PodDisruptionBudget{}, &policyv1.PodDisruptionBudgetList{}, noStatusRead},
	{&networkingv1.NetworkPolicy{}, &networkingv1.NetworkPolicyList{}, nil},
}

// CacheOptions cache only the operator's own children (label-selected
// informers) and drop managedFields, which the operator never reads, so the
// operator's memory follows the number of platforms, not the cluster's size.
// Children are cached slim, with a fingerprint (slim.go).
// A child whose label was removed by hand drops out of this cache; the
// childWriter finds it through the API reader. With namespaces, only
// those namespaces are watched (and need RBAC); cluster-scoped objects, the
// ServiceMonitor CRD, are watched cluster-wide either way.
func CacheOptions(namespaces ...string) cache.Options {
	ours := labels.SelectorFromSet(labels.Set{resource.LabelManagedBy: resource.ManagedBy})
	byObject := map[client.Object]cache.ByObject{}
	// Children read from the cache are never modified in place (updates
	// start from the desired object and a copy of the live one), so reads
	// can skip the deep copy: a reconcile that changes nothing reads ~70.
	noCopy := ptr.To(true)
	// slimChild (slim.go) fingerprints every child and drops the content
	// of the heavy kinds; it replaces the default transform, so it drops
	// managedFields too.
	for _, k := range managedKinds {
		byObject[k.object] = cache.ByObject{Label: ours, UnsafeDisableDeepCopy: noCopy, Transform: slimChild}
	}
	// Pods: only the cache's and the broker's, whose IPs the operator dials.
	dialed, err := labels.Parse(fmt.Sprintf("%s=%s,%s in (%s,%s)", resource.LabelManagedBy, resource.ManagedBy,
		resource.LabelComponent, resource.ComponentCache, resource.ComponentBroker))
	if err != nil {
		panic(err) // constant labels always parse
	}
	byObject[&corev1.Pod{}] = cache.ByObject{UnsafeDisableDeepCopy: noCopy, Label: dialed}
	// CRDs: metadata only, every one (a field selector takes one name, the
	// operator watches several; a CRD's metadata is small).
	byObject[crdMetadata()] = cache.ByObject{}
	opts := cache.Options{ByObject: byObject, DefaultTransform: cache.TransformStripManagedFields()}
	if len(namespaces) > 0 {
		opts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return opts
}
