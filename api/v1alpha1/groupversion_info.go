// Package v1alpha1 holds the ParserPlatform API: one resource that declares the
// whole VK parser platform (services, gateway, load balancer, sharded database,
// Redis Cluster cache, Celery queues and monitoring).
// +kubebuilder:object:generate=true
// +groupName=platform.vkparser.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the API group and version of every type in this package.
	GroupVersion = schema.GroupVersion{Group: "platform.vkparser.io", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this package with a runtime.Scheme.
	// (apimachinery's builder: controller-runtime's scheme.Builder is
	// deprecated for API packages, which should need only apimachinery.)
	SchemeBuilder = runtime.NewSchemeBuilder(func(s *runtime.Scheme) error {
		metav1.AddToGroupVersion(s, GroupVersion)
		return nil
	})

	// AddToScheme adds the types of this package to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// register adds objects to the types SchemeBuilder registers in GroupVersion;
// each *_types.go file calls it from its init.
func register(objects ...runtime.Object) {
	SchemeBuilder.Register(func(s *runtime.Scheme) error {
		s.AddKnownTypes(GroupVersion, objects...)
		return nil
	})
}
