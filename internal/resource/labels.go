package resource

import (
	"maps"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
)

// Label keys and values every child carries (docs/architecture.md, "Children").
const (
	LabelName      = "app.kubernetes.io/name"
	LabelInstance  = "app.kubernetes.io/instance"
	LabelComponent = "app.kubernetes.io/component"
	LabelPartOf    = "app.kubernetes.io/part-of"
	LabelManagedBy = "app.kubernetes.io/managed-by"

	PartOf    = "parser-platform"
	ManagedBy = "parser-operator"
)

// Annotation keys the operator sets.
const (
	// AnnotationConfigHash on a pod template is a hash of the configuration
	// its pods read; it changes only when that configuration does, which
	// rolls the pods.
	AnnotationConfigHash = "platform.vkparser.io/config-hash"
)

// Components: the app.kubernetes.io/component values.
const (
	ComponentService      = "service"
	ComponentGateway      = "gateway"
	ComponentRegistry     = "registry"
	ComponentLoadBalancer = "load-balancer"
)

// Labels are the five labels of a child (docs/architecture.md, "Children"):
// name is the child's identity inside the platform (a service name,
// "gateway", "lb", ...), component its role.
func Labels(p *platformv1.ParserPlatform, name, component string) map[string]string {
	l := SelectorLabels(p, name)
	l[LabelComponent] = component
	l[LabelPartOf] = PartOf
	l[LabelManagedBy] = ManagedBy
	return l
}

// SelectorLabels are the stable subset used in selectors, which are immutable
// on Deployments and StatefulSets: they must never change for a child.
func SelectorLabels(p *platformv1.ParserPlatform, name string) map[string]string {
	return map[string]string{
		LabelName:     Truncate(name),
		LabelInstance: p.Name,
	}
}

// InstanceSelector selects every child of a platform.
func InstanceSelector(p *platformv1.ParserPlatform) map[string]string {
	return map[string]string{LabelInstance: p.Name, LabelManagedBy: ManagedBy}
}

// Truncate fits a label value into 63 characters the same way names are.
func Truncate(value string) string {
	return ChildName(MaxNameLength, value)
}

// objectMeta is the metadata every child starts from: name, namespace,
// labels and the controller owner reference to the platform.
func objectMeta(p *platformv1.ParserPlatform, childName, name, component string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:            childName,
		Namespace:       p.Namespace,
		Labels:          Labels(p, name, component),
		OwnerReferences: []metav1.OwnerReference{OwnerReference(p)},
	}
}

// OwnerReference is the controller reference every child carries, so the
// garbage collector removes children with the platform.
func OwnerReference(p *platformv1.ParserPlatform) metav1.OwnerReference {
	return metav1.OwnerReference{
		APIVersion:         platformv1.GroupVersion.String(),
		Kind:               "ParserPlatform",
		Name:               p.Name,
		UID:                p.UID,
		Controller:         ptr.To(true),
		BlockOwnerDeletion: ptr.To(true),
	}
}

func mergeMaps(a, b map[string]string) map[string]string {
	out := maps.Clone(a)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, b)
	return out
}
