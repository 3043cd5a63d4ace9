// Package v1alpha1 holds the ParserPlatform API: one resource that declares the
// whole VK parser platform (services, gateway, load balancer, sharded database,
// Redis Cluster cache, Celery queues and monitoring).
// +kubebuilder:object:generate=true
// +groupName=platform.vkparser.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the API group and version of every type in this package.
	GroupVersion = schema.GroupVersion{Group: "platform.vkparser.io", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this package with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this package to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
