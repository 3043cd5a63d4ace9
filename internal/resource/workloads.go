package resource

import (
	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/status"
)

// WorkloadRef is one of the platform's workloads as the registry lists it.
type WorkloadRef struct {
	// Area is the status condition the workload counts in
	// (status.TypeServicesReady, ...).
	Area string
	// Component is its name in the status: a service's name, "gateway",
	// "lb", "db-<i>", "cache", "broker", "worker-<queue>".
	Component string
	// Kind is Deployment or StatefulSet; Name the object's name.
	Kind, Name string
}

// Workloads is the one registry of the platform's Deployments and
// StatefulSets, in the order the status lists them: the controller observes
// these and the status counts them by area. The builders (Children) make
// exactly these, which TestWorkloadsAreTheChildrenWorkloads holds them to,
// and the CRD keeps services from taking their names
// (TestServiceNamesCannotTakeAChildsName).
func Workloads(p *platformv1.ParserPlatform) []WorkloadRef {
	var out []WorkloadRef
	deployment := func(area, component string) {
		out = append(out, WorkloadRef{Area: area, Component: component, Kind: "Deployment", Name: Name(p.Name, component)})
	}
	statefulSet := func(area, component, name string) {
		out = append(out, WorkloadRef{Area: area, Component: component, Kind: "StatefulSet", Name: name})
	}
	for _, s := range p.Spec.Services {
		deployment(status.TypeServicesReady, s.Name)
	}
	deployment(status.TypeServicesReady, gatewayName)
	deployment(status.TypeLoadBalancerReady, lbName)
	for i := range ShardCount(p) {
		statefulSet(status.TypeDatabaseReady, ShardName(i), ShardStatefulSetName(p, i))
	}
	statefulSet(status.TypeCacheReady, cacheName, CacheName(p))
	if hasQueues(p) {
		statefulSet(status.TypeQueuesReady, brokerName, BrokerName(p))
		for _, q := range p.Spec.Queues.Queues {
			deployment(status.TypeQueuesReady, WorkerName(q.Name))
		}
	}
	return out
}
