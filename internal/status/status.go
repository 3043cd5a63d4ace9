// Package status computes a ParserPlatform's status as pure functions of what
// the operator observed of its children, so every condition is unit-testable
// and one place says what "ready" means.
package status

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
)

// Condition types (README.md, "Status").
const (
	TypeReady             = "Ready"
	TypeProgressing       = "Progressing"
	TypeDegraded          = "Degraded"
	TypePaused            = "Paused"
	TypeServicesReady     = "ServicesReady"
	TypeLoadBalancerReady = "LoadBalancerReady"
	TypeDatabaseReady     = "DatabaseReady"
	TypeCacheReady        = "CacheReady"
	TypeQueuesReady       = "QueuesReady"
	TypeMonitoring        = "Monitoring"
	TypeQueueScaling      = "QueueScaling"
)

// Workload is what the status needs of one Deployment or StatefulSet.
type Workload struct {
	Name string // component name: "auth", "gateway", "lb", ...
	Kind string
	// Found is false while the workload does not exist yet.
	Found bool
	// Generation and ObservedGeneration of the workload: equal once its
	// controller has seen the latest spec.
	Generation, ObservedGeneration     int64
	Desired, Updated, Ready, Available int32
	// Stalled is true when the rollout exceeded its progress deadline.
	Stalled bool
}

// RolledOut is true when every desired pod runs the latest template and is ready.
func (w Workload) RolledOut() bool {
	return w.Found && w.ObservedGeneration >= w.Generation &&
		w.Updated >= w.Desired && w.Ready >= w.Desired && w.Available >= w.Desired
}

func (w Workload) summary() string {
	if !w.Found {
		return w.Name + " not created yet"
	}
	return fmt.Sprintf("%s %d/%d ready", w.Name, w.Ready, w.Desired)
}

// Observed is everything the operator saw in one reconcile.
type Observed struct {
	Generation          int64
	Paused              bool
	Services            []Workload // the spec's services and the gateway
	LoadBalancer        Workload
	LoadBalancerAddress string
	Shards              []Workload // one StatefulSet per shard, in index order
	Cache               Workload
	// CacheFormed is true once the Redis Cluster has every slot assigned and
	// none open; CacheDetail says what is missing when it is not.
	CacheFormed bool
	CacheDetail string
	// CacheCluster is the cluster's topology, when the operator reached it.
	CacheCluster *platformv1.CacheClusterStatus
	// Queues is false when the spec declares no queues (no broker, no workers).
	Queues  bool
	Broker  Workload
	Workers []Workload
	// BrokerQueues is whether the broker holds spec.queues, when the
	// operator looked (RabbitMQ only); nil leaves QueuesReady to the
	// workloads.
	BrokerQueues *BrokerQueues
	// Monitoring is the ServiceMonitor's state, computed by the controller
	// (it depends on API discovery): nil leaves the condition unset.
	Monitoring *metav1.Condition
	// QueueScaling says how the workers of queues with a backlog target
	// are scaled (KEDA, or their HPA and why); nil: no queue has one, and
	// the condition goes.
	QueueScaling *metav1.Condition
	// MissingCredentials are generated values gone while the data they open
	// exists: each makes its component's area condition False.
	MissingCredentials []MissingCredential
	// Problems are reconcile failures and refused operations, one line each
	// ("Deployment vk-auth is not owned by this platform"); any makes the
	// platform Degraded and not Ready.
	Problems []string
}

// Apply writes the conditions and component replicas of o into st. Conditions
// keep their LastTransitionTime unless their status flips (meta.SetStatusCondition).
func Apply(st *platformv1.ParserPlatformStatus, o Observed) {
	areas := []metav1.Condition{
		area(TypeServicesReady, o.Services, "ServicesAvailable"),
		loadBalancerCondition(o),
		withCredentials(area(TypeDatabaseReady, o.Shards, "ShardsAvailable"), o.MissingCredentials),
		withCredentials(cacheCondition(o), o.MissingCredentials),
		withCredentials(queuesCondition(o), o.MissingCredentials),
	}
	for _, c := range areas {
		set(st, o.Generation, c)
	}
	set(st, o.Generation, pausedCondition(o))
	set(st, o.Generation, degradedCondition(o))
	set(st, o.Generation, progressingCondition(o, areas))
	set(st, o.Generation, readyCondition(o, areas))
	if o.Monitoring != nil {
		set(st, o.Generation, *o.Monitoring)
	}
	if o.QueueScaling != nil {
		set(st, o.Generation, *o.QueueScaling)
	} else {
		meta.RemoveStatusCondition(&st.Conditions, TypeQueueScaling)
	}
	st.Components = components(o)
	st.LoadBalancerAddress = o.LoadBalancerAddress
	st.Shards = int32(len(o.Shards)) //nolint:gosec // G115: one entry a shard, bounded by spec.database.shards (an int32).
	if o.CacheCluster != nil {
		st.Cache = o.CacheCluster
	}
}

func set(st *platformv1.ParserPlatformStatus, generation int64, c metav1.Condition) {
	c.ObservedGeneration = generation
	meta.SetStatusCondition(&st.Conditions, c)
}

// area is True when every workload of an area has rolled out; the message
// names the ones that have not.
func area(conditionType string, workloads []Workload, readyReason string) metav1.Condition {
	var waiting []string
	for _, w := range workloads {
		if !w.RolledOut() {
			waiting = append(waiting, w.summary())
		}
	}
	if len(waiting) == 0 {
		return metav1.Condition{Type: conditionType, Status: metav1.ConditionTrue, Reason: readyReason,
			Message: fmt.Sprintf("%d of %d workloads ready", len(workloads), len(workloads))}
	}
	return metav1.Condition{Type: conditionType, Status: metav1.ConditionFalse, Reason: "WorkloadsNotReady",
		Message: "waiting for " + strings.Join(waiting, ", ")}
}

func loadBalancerCondition(o Observed) metav1.Condition {
	c := area(TypeLoadBalancerReady, []Workload{o.LoadBalancer}, "LoadBalancerAvailable")
	if c.Status == metav1.ConditionTrue {
		c.Message = "nginx ready"
		if o.LoadBalancerAddress != "" {
			c.Message += ", reachable at " + o.LoadBalancerAddress
		} else {
			c.Message += ", its Service has no external address yet"
		}
	}
	return c
}

// cacheCondition is True only when the pods are ready and the Redis Cluster
// serves every slot: ready pods alone are not a working cache.
func cacheCondition(o Observed) metav1.Condition {
	c := area(TypeCacheReady, []Workload{o.Cache}, "ClusterServing")
	if c.Status != metav1.ConditionTrue {
		return c
	}
	if o.CacheFormed {
		c.Message = "Redis Cluster serving every slot: " + o.CacheDetail
		return c
	}
	return metav1.Condition{Type: TypeCacheReady, Status: metav1.ConditionFalse, Reason: "ClusterNotFormed",
		Message: "cache pods are ready but the Redis Cluster is not formed: " + o.CacheDetail}
}

func queuesCondition(o Observed) metav1.Condition {
	if !o.Queues {
		return metav1.Condition{Type: TypeQueuesReady, Status: metav1.ConditionTrue, Reason: "NoQueues",
			Message: "spec.queues declares no queue: no broker and no workers run"}
	}
	c := area(TypeQueuesReady, append([]Workload{o.Broker}, o.Workers...), "QueuesAvailable")
	if c.Status != metav1.ConditionTrue || o.BrokerQueues == nil {
		return c
	}
	if !o.BrokerQueues.InLine {
		return metav1.Condition{Type: TypeQueuesReady, Status: metav1.ConditionFalse, Reason: o.BrokerQueues.Reason,
			Message: "broker and workers are ready, but the broker's queues are not spec.queues: " + o.BrokerQueues.Message}
	}
	c.Message += "; " + o.BrokerQueues.Message
	return c
}

// BrokerQueues is the broker's queues as the operator found and left them.
type BrokerQueues struct {
	// InLine: every queue and binding of the spec is on the broker, and no
	// removed queue is held back.
	InLine  bool
	Reason  string
	Message string
}

func pausedCondition(o Observed) metav1.Condition {
	if o.Paused {
		return metav1.Condition{Type: TypePaused, Status: metav1.ConditionTrue, Reason: "Paused",
			Message: "spec.paused is true: the operator changes no child until it is false"}
	}
	return metav1.Condition{Type: TypePaused, Status: metav1.ConditionFalse, Reason: "Reconciling",
		Message: "the operator keeps the children matching the spec"}
}

func degradedCondition(o Observed) metav1.Condition {
	problems := slices.Clone(o.Problems)
	for _, w := range o.Workloads() {
		if w.Stalled {
			problems = append(problems, w.Kind+" "+w.Name+" exceeded its rollout progress deadline")
		}
	}
	if len(problems) == 0 {
		return metav1.Condition{Type: TypeDegraded, Status: metav1.ConditionFalse, Reason: "AsExpected",
			Message: "no reconcile problem"}
	}
	return metav1.Condition{Type: TypeDegraded, Status: metav1.ConditionTrue, Reason: "ReconcileProblems",
		Message: strings.Join(problems, "; ")}
}

func progressingCondition(o Observed, areas []metav1.Condition) metav1.Condition {
	switch {
	case o.Paused:
		return metav1.Condition{Type: TypeProgressing, Status: metav1.ConditionFalse, Reason: "Paused",
			Message: "reconciliation is paused"}
	case allTrue(areas):
		return metav1.Condition{Type: TypeProgressing, Status: metav1.ConditionFalse, Reason: "RolloutComplete",
			Message: "every workload runs the current spec"}
	default:
		return metav1.Condition{Type: TypeProgressing, Status: metav1.ConditionTrue, Reason: "RollingOut",
			Message: "workloads are being created or updated"}
	}
}

// readyCondition is True only when every area is ready and nothing is wrong.
func readyCondition(o Observed, areas []metav1.Condition) metav1.Condition {
	var notReady []string
	for _, c := range areas {
		if c.Status != metav1.ConditionTrue {
			notReady = append(notReady, c.Type)
		}
	}
	switch {
	case len(o.Problems) > 0:
		return metav1.Condition{Type: TypeReady, Status: metav1.ConditionFalse, Reason: "Degraded",
			Message: strings.Join(o.Problems, "; ")}
	case len(notReady) > 0:
		return metav1.Condition{Type: TypeReady, Status: metav1.ConditionFalse, Reason: "NotReady",
			Message: "not ready: " + strings.Join(notReady, ", ")}
	default:
		return metav1.Condition{Type: TypeReady, Status: metav1.ConditionTrue, Reason: "AllComponentsReady",
			Message: "every component of the platform is ready"}
	}
}

func allTrue(conditions []metav1.Condition) bool {
	for _, c := range conditions {
		if c.Status != metav1.ConditionTrue {
			return false
		}
	}
	return true
}

// Add puts a workload observed in the status area named by its condition
// type (resource.Workloads says which); the services', shards' and workers'
// lists keep the order they are added in.
func (o *Observed) Add(area string, w Workload) error {
	switch area {
	case TypeServicesReady:
		o.Services = append(o.Services, w)
	case TypeLoadBalancerReady:
		o.LoadBalancer = w
	case TypeDatabaseReady:
		o.Shards = append(o.Shards, w)
	case TypeCacheReady:
		o.Cache = w
	case TypeQueuesReady:
		o.Queues = true
		if w.Kind == "StatefulSet" {
			o.Broker = w
		} else {
			o.Workers = append(o.Workers, w)
		}
	default:
		return fmt.Errorf("workload %s: no status area %q", w.Name, area)
	}
	return nil
}

// Workloads are every workload the status counts.
func (o Observed) Workloads() []Workload {
	all := slices.Concat(o.Services, []Workload{o.LoadBalancer}, o.Shards, []Workload{o.Cache})
	if o.Queues {
		all = slices.Concat(all, []Workload{o.Broker}, o.Workers)
	}
	return all
}

// components lists every workload's replicas, sorted by name so the status
// is the same bytes whenever nothing changed.
func components(o Observed) []platformv1.ComponentStatus {
	var out []platformv1.ComponentStatus
	for _, w := range o.Workloads() {
		out = append(out, platformv1.ComponentStatus{
			Name: w.Name, Kind: w.Kind, DesiredReplicas: w.Desired, ReadyReplicas: w.Ready,
		})
	}
	slices.SortFunc(out, func(a, b platformv1.ComponentStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// MissingCredential is a credential of a component that the operator will
// not generate again, because the component's data exists.
type MissingCredential struct {
	// Condition is the area condition of the component: DatabaseReady,
	// CacheReady or QueuesReady.
	Condition string
	Message   string
}

// withCredentials turns an area's condition False when a credential of its
// component is missing: its pods may still run (on the old value), but
// nothing restarted or added will open the data.
func withCredentials(c metav1.Condition, missing []MissingCredential) metav1.Condition {
	var msgs []string
	for _, m := range missing {
		if m.Condition == c.Type {
			msgs = append(msgs, m.Message)
		}
	}
	if len(msgs) == 0 {
		return c
	}
	return metav1.Condition{Type: c.Type, Status: metav1.ConditionFalse, Reason: "CredentialsMissing", Message: strings.Join(msgs, "; ")}
}
