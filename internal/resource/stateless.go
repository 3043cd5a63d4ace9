package resource

import (
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
)

// ServiceAccountName is the account every pod of the platform runs as. It
// gets no API token: the platform's apps do not talk to Kubernetes.
func ServiceAccountName(p *platformv1.ParserPlatform) string { return Name(p.Name) }

// ServiceAccount is the platform pods' identity.
func ServiceAccount(p *platformv1.ParserPlatform) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{
		TypeMeta:                     metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta:                   objectMeta(p, ServiceAccountName(p), "platform", "platform"),
		AutomountServiceAccountToken: ptr.To(false),
	}
}

// gatewayName is the gateway's name among the platform's children.
const gatewayName = "gateway"

// serviceWorkloads are the spec's services followed by the gateway: both read
// the platform's configuration and are scaled the same way.
func serviceWorkloads(p *platformv1.ParserPlatform, cfg appConfig) []*appWorkload {
	var out []*appWorkload
	for i := range p.Spec.Services {
		s := &p.Spec.Services[i]
		out = append(out, &appWorkload{
			platform: p, name: s.Name, component: ComponentService,
			image: s.Image, port: s.Port, env: s.Env, resources: s.Resources, replicas: s.Replicas,
			autoscaling: p.Spec.AutoscalingFor(s.Autoscaling), config: cfg,
		})
	}
	g := &p.Spec.Gateway
	return append(out, &appWorkload{
		platform: p, name: gatewayName, component: ComponentGateway,
		image: g.Image, port: p.Spec.GatewayPort(), env: g.Env, resources: g.Resources, replicas: g.Replicas,
		autoscaling: p.Spec.AutoscalingFor(g.Autoscaling), config: cfg,
	})
}

// appChildren are the children of app workloads: Service, Deployment, HPA, PDB.
func appChildren(workloads []*appWorkload) []client.Object {
	var out []client.Object
	for _, w := range workloads {
		if w.port != 0 {
			out = append(out, w.Service())
		}
		out = append(out, w.Deployment())
		if w.autoscaling.Enabled {
			out = append(out, w.HPA())
		}
		out = append(out, w.PDB())
	}
	return out
}

// ChildKind is one kind of child in ChildKinds.
type ChildKind struct {
	Kind string
	// Configuration kinds are written first, and all of them before
	// anything that reads them (the controller's first write phase).
	Configuration bool
}

// ChildKinds is the one table of the kinds of children, in the order they
// are created, dependencies first (as rabbitmq's ResourceBuilders):
// identity, secrets and configuration before the Services that reach
// workloads; the NetworkPolicies before the pods they isolate, so no pod
// ever runs open; the workloads, then what acts on them. The controller's
// write phases follow it, and its table of watched kinds must name the same
// kinds (a test there says so).
var ChildKinds = []ChildKind{
	{Kind: "ServiceAccount", Configuration: true},
	{Kind: "Secret", Configuration: true},
	{Kind: "ConfigMap", Configuration: true},
	{Kind: "Service"},
	{Kind: "NetworkPolicy"},
	{Kind: "StatefulSet"},
	{Kind: "Deployment"},
	{Kind: "HorizontalPodAutoscaler"},
	{Kind: "PodDisruptionBudget"},
}

// kindRank is a kind's place in ChildKinds (-1: not a child kind).
func kindRank(kind string) int {
	return slices.IndexFunc(ChildKinds, func(k ChildKind) bool { return k.Kind == kind })
}

// IsConfiguration tells whether children of kind are written in the first
// phase.
func IsConfiguration(kind string) bool {
	i := kindRank(kind)
	return i >= 0 && ChildKinds[i].Configuration
}

// Children is every child of the platform in creation order (ChildKinds).
// The Prometheus Operator's and KEDA's objects are not among them: they
// exist only while their CRDs do, which the controller finds out. opts say what the
// builders cannot read from the platform (the operator's namespace).
func Children(p *platformv1.ParserPlatform, creds Credentials, opts ...Option) []client.Object {
	cfg := newAppConfig(p, creds)
	all := slices.Concat(
		[]client.Object{ServiceAccount(p), RegistryConfigMap(p), LoadBalancerConfigMap(p)},
		appChildren(serviceWorkloads(p, cfg)),
		loadBalancerChildren(p),
		databaseChildren(p, creds),
		cacheChildren(p, creds),
		brokerChildren(p, creds),
		appChildren(workerWorkloads(p, cfg)),
	)
	for _, np := range NetworkPolicies(p, opts...) {
		all = append(all, np)
	}
	if p.Spec.Monitoring.DashboardOn() {
		all = append(all, DashboardConfigMap(p))
	}
	slices.SortStableFunc(all, func(a, b client.Object) int {
		return kindRank(kindName(a)) - kindRank(kindName(b))
	})
	return all
}

// GeneratedKeys lists every value the operator generates for a platform; the
// controller resolves exactly these into Credentials before Children.
func GeneratedKeys(p *platformv1.ParserPlatform) []SecretKey {
	return slices.Concat(databaseGeneratedKeys(p), cacheGeneratedKeys(p), brokerGeneratedKeys(p))
}

func kindName(obj client.Object) string { return obj.GetObjectKind().GroupVersionKind().Kind }

func itoa(i int32) string { return strconv.Itoa(int(i)) }

func slicesClone[T any](s []T) []T { return slices.Clone(s) }
