package resource

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/crd"
	"github.com/vkparser/parser-operator/internal/status"
)

// registryVariants are platforms whose children differ: the sample, one
// without queues, one with a Redis broker and one queue, one with one shard
// and no dashboard.
func registryVariants() map[string]*platformv1.ParserPlatform {
	noQueues := samplePlatform()
	noQueues.Spec.Queues = nil
	redisBroker := samplePlatform()
	redisBroker.Spec.Queues.Broker.Type = platformv1.BrokerRedis
	redisBroker.Spec.Queues.Queues = redisBroker.Spec.Queues.Queues[:1]
	oneShard := samplePlatform()
	oneShard.Spec.Database.Shards = 1
	oneShard.Spec.Monitoring.Dashboard = ptr.To(false)
	return map[string]*platformv1.ParserPlatform{
		"sample": samplePlatform(), "no queues": noQueues, "redis broker": redisBroker, "one shard, no dashboard": oneShard,
	}
}

// TestWorkloadsAreTheChildrenWorkloads: the registry lists exactly the
// Deployments and StatefulSets the builders make, each in an area the
// status knows; a workload added to one and not the other fails here.
func TestWorkloadsAreTheChildrenWorkloads(t *testing.T) {
	for name, p := range registryVariants() {
		t.Run(name, func(t *testing.T) {
			var built []string
			for _, obj := range Children(p, testCredentials) {
				if k := kindOf(obj); k == "Deployment" || k == "StatefulSet" {
					built = append(built, k+"/"+obj.GetName())
				}
			}
			var registered []string
			var o status.Observed
			for _, w := range Workloads(p) {
				registered = append(registered, w.Kind+"/"+w.Name)
				if err := o.Add(w.Area, status.Workload{Name: w.Component, Kind: w.Kind}); err != nil {
					t.Errorf("%s: %v", w.Name, err)
				}
			}
			slices.Sort(built)
			slices.Sort(registered)
			if !slices.Equal(built, registered) {
				t.Errorf("the builders make %v, the registry lists %v", built, registered)
			}
			if got := len(o.Workloads()); got != len(registered) {
				t.Errorf("the status counts %d workloads, the registry lists %d", got, len(registered))
			}
		})
	}
}

// TestServiceNamesCannotTakeAChildsName: for every name part of a child
// the platform makes itself, a service of that name would make a second
// object of the same kind and name, or it would not; when it would, the
// CRD refuses the service's name. A new child the CEL rule on
// services[].name does not know fails here.
func TestServiceNamesCannotTakeAChildsName(t *testing.T) {
	schema, err := crd.Load()
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for variant, base := range registryVariants() {
		for _, part := range ownNameParts(base) {
			p := base.DeepCopy()
			p.Spec.Services = append(p.Spec.Services, platformv1.ServiceSpec{Name: part, Image: "registry.example.com/x:1", Port: 9999})
			dup := duplicate(Children(p, testCredentials))
			if dup == "" {
				continue
			}
			checked++
			obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(p)
			if err != nil {
				t.Fatal(err)
			}
			schema.Default(obj)
			errs := schema.Validate(t.Context(), obj)
			if !strings.Contains(errs.ToAggregate().Error(), "services[") {
				t.Errorf("%s: a service named %q makes a second %s, and the CRD accepts it (errors: %v)", variant, part, dup, errs)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no name part collides: the test checks nothing")
	}
	t.Logf("%d colliding service names refused by the CRD", checked)
}

// ownNameParts are the parts after "<platform>-" of the names of the
// children that no service of the spec made.
func ownNameParts(p *platformv1.ParserPlatform) []string {
	var parts []string
	for _, obj := range Children(p, testCredentials) {
		part, ok := strings.CutPrefix(obj.GetName(), p.Name+"-")
		if !ok || slices.ContainsFunc(p.Spec.Services, func(s platformv1.ServiceSpec) bool {
			return part == s.Name || strings.HasPrefix(part, s.Name+"-")
		}) {
			continue
		}
		if !slices.Contains(parts, part) {
			parts = append(parts, part)
		}
	}
	return parts
}

// duplicate names an object that appears twice among objs ("Kind name").
func duplicate(objs []client.Object) string {
	seen := map[string]bool{}
	for _, obj := range objs {
		key := fmt.Sprintf("%s %s", kindOf(obj), obj.GetName())
		if seen[key] {
			return key
		}
		seen[key] = true
	}
	return ""
}

// TestEveryChildIsOfAChildKind: a builder that makes an object of a kind
// ChildKinds does not list would have it created out of order, and neither
// watched nor pruned.
func TestEveryChildIsOfAChildKind(t *testing.T) {
	for name, p := range registryVariants() {
		for _, obj := range Children(p, testCredentials) {
			if kindRank(kindOf(obj)) < 0 {
				t.Errorf("%s: %s %s is of a kind ChildKinds does not list", name, kindOf(obj), obj.GetName())
			}
		}
	}
}
