package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	apiresource "k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ParserPlatform declares a whole VK parser platform. The operator creates and
// keeps adjusting every child object (Deployments, StatefulSets, Services,
// HPAs, ConfigMaps, Secrets, PDBs, NetworkPolicies) until the cluster matches.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=pp,categories=all
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Shards",type=integer,JSONPath=`.spec.database.shards`
// +kubebuilder:printcolumn:name="Cache",type=integer,JSONPath=`.spec.cache.masters`,description="Redis Cluster masters"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 45",messageExpression="'metadata.name must be a DNS-1035 label of at most 45 characters (this one has %d): lower-case letters, digits and hyphens, starting with a letter and ending with a letter or digit; it prefixes the names of Services and StatefulSets'.format([size(self.metadata.name)])",message="metadata.name must be a DNS-1035 label of at most 45 characters (lower-case letters, digits and '-', starting with a letter): it prefixes the names of Services and StatefulSets"
// Names longer than 63 characters are cut and end in "-" and 8 hex digits
// of a hash (resource.ChildName). A service or queue whose own name ends
// that way could then give two children one name, and the two would
// overwrite each other on every reconcile: refused while any name of the
// same list is long enough to be cut.
// +kubebuilder:validation:XValidation:rule="!self.spec.services.exists(s, size(self.metadata.name) + 1 + size(s.name) > 63) || !self.spec.services.exists(s, s.name.matches('-[0-9a-f]{8}$'))",messageExpression="'services[].name: %s end in a hyphen and 8 hex digits, the suffix the operator gives child names it shortens, and %s is long enough to be shortened (%s-<service> over 63 characters): two children could get one name; rename the service'.format([self.spec.services.filter(s, s.name.matches('-[0-9a-f]{8}$')).map(s, s.name), self.spec.services.filter(s, size(self.metadata.name) + 1 + size(s.name) > 63).map(s, s.name), self.metadata.name])",message="services[].name must not end in a hyphen and 8 hex digits while another service name is long enough to be shortened: two children could get one name",fieldPath=".spec.services"
// +kubebuilder:validation:XValidation:rule="!has(self.spec.queues) || !has(self.spec.queues.queues) || !self.spec.queues.queues.exists(q, size(self.metadata.name) + 8 + size(q.name) > 63) || !self.spec.queues.queues.exists(q, q.name.matches('-[0-9a-f]{8}$'))",messageExpression="'queues.queues[].name: %s end in a hyphen and 8 hex digits, the suffix the operator gives child names it shortens, and %s is long enough to be shortened (%s-worker-<queue> over 63 characters): two workers could get one name; rename the queue'.format([self.spec.queues.queues.filter(q, q.name.matches('-[0-9a-f]{8}$')).map(q, q.name), self.spec.queues.queues.filter(q, size(self.metadata.name) + 8 + size(q.name) > 63).map(q, q.name), self.metadata.name])",message="queues.queues[].name must not end in a hyphen and 8 hex digits while another queue name is long enough to be shortened: two workers could get one name",fieldPath=".spec.queues.queues"
type ParserPlatform struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is the platform's name, namespace, labels and annotations.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec declares the desired platform.
	// +required
	Spec ParserPlatformSpec `json:"spec,omitzero"`

	// status is what the operator observed of the platform's children.
	// +optional
	Status ParserPlatformStatus `json:"status,omitempty"`
}

// ParserPlatformList is a list of ParserPlatforms.
//
// +kubebuilder:object:root=true
type ParserPlatformList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ParserPlatform `json:"items"`
}

// DeletionPolicy says what happens to the platform's data volumes when the
// ParserPlatform is deleted.
// +kubebuilder:validation:Enum=Retain;Delete
type DeletionPolicy string

const (
	// DeletionPolicyRetain keeps every PersistentVolumeClaim of shards, cache
	// and broker after the platform is deleted, so its data can be recovered.
	DeletionPolicyRetain DeletionPolicy = "Retain"
	// DeletionPolicyDelete deletes the data volumes with the platform.
	DeletionPolicyDelete DeletionPolicy = "Delete"
)

// ParserPlatformSpec declares every part of the platform.
//
// +kubebuilder:validation:XValidation:rule="self.services.all(s, !has(s.autoscaling) || (has(s.autoscaling.minReplicas) && has(s.autoscaling.maxReplicas)) || (has(s.autoscaling.minReplicas) ? s.autoscaling.minReplicas : self.autoscaling.minReplicas) <= (has(s.autoscaling.maxReplicas) ? s.autoscaling.maxReplicas : self.autoscaling.maxReplicas))",messageExpression="'services[].autoscaling: minReplicas must be <= maxReplicas once merged with spec.autoscaling (minReplicas %d, maxReplicas %d), which fills in the bound an override leaves out: %s'.format([self.autoscaling.minReplicas, self.autoscaling.maxReplicas, self.services.filter(s, has(s.autoscaling) && !(has(s.autoscaling.minReplicas) && has(s.autoscaling.maxReplicas)) && (has(s.autoscaling.minReplicas) ? s.autoscaling.minReplicas : self.autoscaling.minReplicas) > (has(s.autoscaling.maxReplicas) ? s.autoscaling.maxReplicas : self.autoscaling.maxReplicas)).map(s, '%s gets minReplicas %d > maxReplicas %d'.format([s.name, (has(s.autoscaling.minReplicas) ? s.autoscaling.minReplicas : self.autoscaling.minReplicas), (has(s.autoscaling.maxReplicas) ? s.autoscaling.maxReplicas : self.autoscaling.maxReplicas)]))])",message="services[].autoscaling: minReplicas must be <= maxReplicas once merged with spec.autoscaling, which fills in the bound an override leaves out",fieldPath=".services"
// +kubebuilder:validation:XValidation:rule="!has(self.queues) || !has(self.queues.queues) || self.queues.queues.all(s, !has(s.autoscaling) || (has(s.autoscaling.minReplicas) && has(s.autoscaling.maxReplicas)) || (has(s.autoscaling.minReplicas) ? s.autoscaling.minReplicas : self.autoscaling.minReplicas) <= (has(s.autoscaling.maxReplicas) ? s.autoscaling.maxReplicas : self.autoscaling.maxReplicas))",messageExpression="'queues.queues[].autoscaling: minReplicas must be <= maxReplicas once merged with spec.autoscaling (minReplicas %d, maxReplicas %d), which fills in the bound an override leaves out: %s'.format([self.autoscaling.minReplicas, self.autoscaling.maxReplicas, self.queues.queues.filter(s, has(s.autoscaling) && !(has(s.autoscaling.minReplicas) && has(s.autoscaling.maxReplicas)) && (has(s.autoscaling.minReplicas) ? s.autoscaling.minReplicas : self.autoscaling.minReplicas) > (has(s.autoscaling.maxReplicas) ? s.autoscaling.maxReplicas : self.autoscaling.maxReplicas)).map(s, '%s gets minReplicas %d > maxReplicas %d'.format([s.name, (has(s.autoscaling.minReplicas) ? s.autoscaling.minReplicas : self.autoscaling.minReplicas), (has(s.autoscaling.maxReplicas) ? s.autoscaling.maxReplicas : self.autoscaling.maxReplicas)]))])",message="queues.queues[].autoscaling: minReplicas must be <= maxReplicas once merged with spec.autoscaling, which fills in the bound an override leaves out",fieldPath=".queues.queues"
// +kubebuilder:validation:XValidation:rule="self.services.all(s, s.port != self.monitoring.metricsPort)",messageExpression="'services[].port must differ from monitoring.metricsPort (%d), on which every pod also serves metrics: change the port of %s or monitoring.metricsPort'.format([self.monitoring.metricsPort, self.services.filter(s, s.port == self.monitoring.metricsPort).map(s, s.name)])",message="services[].port must differ from monitoring.metricsPort, on which every pod also serves metrics",fieldPath=".services"
// +kubebuilder:validation:XValidation:rule="!(self.monitoring.metricsPort in [5432, 6379, 16379, 5672, 15672, 15692, 4369, 25672, 8080])",messageExpression="'monitoring.metricsPort (%d) must differ from the ports the platform serves data on (PostgreSQL 5432, Redis 6379 and its cluster bus 16379, AMQP 5672, RabbitMQ management 15672 and metrics 15692, epmd 4369, Erlang distribution 25672, nginx 8080): the monitoring namespace is let in on the metrics port of the pods that serve metrics; choose another port, such as 9090'.format([self.monitoring.metricsPort])",message="monitoring.metricsPort must differ from the platform's data ports (5432, 6379, 16379, 5672, 15672, 15692, 4369, 25672, 8080)",fieldPath=".monitoring.metricsPort"
// +kubebuilder:validation:XValidation:rule="self.services.all(s, !has(s.calls) || s.calls.all(c, self.services.exists(t, t.name == c)))",messageExpression="'services[].calls must name services of spec.services; %s call a service that is not there'.format([self.services.filter(s, has(s.calls) && s.calls.exists(c, !self.services.exists(t, t.name == c))).map(s, s.name)])",message="services[].calls must name services of spec.services",fieldPath=".services"
// +kubebuilder:validation:XValidation:rule="!has(self.gateway.port) || self.gateway.port != self.monitoring.metricsPort",messageExpression="'gateway.port must differ from monitoring.metricsPort (%d), on which the gateway pod also serves metrics'.format([self.monitoring.metricsPort])",message="gateway.port must differ from monitoring.metricsPort, on which the gateway pod also serves metrics",fieldPath=".gateway.port"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.queues) || !has(oldSelf.queues.queues) || size(oldSelf.queues.queues) == 0 || (has(self.queues) && has(self.queues.queues) && size(self.queues.queues) > 0)",message="queues.queues cannot go from some queues to none: the broker would be removed with the messages still queued in it; keep at least one queue, or delete the platform",fieldPath=".queues"
type ParserPlatformSpec struct {
	// paused stops all changes to the platform's children; status is still
	// reported, with a Paused condition. Use it for manual maintenance.
	// +optional
	Paused bool `json:"paused,omitempty"`

	// deletionPolicy says what happens to the data volumes (shards, cache,
	// broker) when the platform is deleted: Retain (default) keeps them,
	// Delete removes them.
	// +default="Retain"
	// +optional
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`

	// autoscaling holds the HorizontalPodAutoscaler defaults for services,
	// the gateway and queue workers; each may override them.
	// +default={}
	// +optional
	Autoscaling AutoscalingSpec `json:"autoscaling,omitempty"`

	// services are the platform's microservices (auth, comments, parser,
	// analytics, ...). Each gets a Deployment, a Service, an HPA and a PDB
	// named <platform>-<service>, and an entry in the service registry.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.all(s, self.exists_one(t, t.port == s.port))",messageExpression="'services[].port must be unique among services; these share a port: %s'.format([self.filter(s, !self.exists_one(t, t.port == s.port)).map(s, '%s (%d)'.format([s.name, s.port]))])",message="services[].port must be unique among services"
	// +required
	Services []ServiceSpec `json:"services,omitempty"`

	// gateway is the API gateway that proxies /{service}/{path} to the
	// services found in the registry.
	// +required
	Gateway GatewaySpec `json:"gateway,omitzero"`

	// loadBalancer is the nginx in front of the gateway.
	// +default={}
	// +optional
	LoadBalancer LoadBalancerSpec `json:"loadBalancer,omitempty"`

	// database is the PostgreSQL tier, sharded by md5(key) mod shards.
	// +default={}
	// +optional
	Database DatabaseSpec `json:"database,omitempty"`

	// cache is the Redis Cluster cache.
	// +default={}
	// +optional
	Cache CacheSpec `json:"cache,omitempty"`

	// queues are the Celery broker, its queues and one worker Deployment
	// per queue.
	// +optional
	Queues *QueuesSpec `json:"queues,omitempty"`

	// monitoring says how the platform is scraped by Prometheus.
	// +default={}
	// +optional
	Monitoring MonitoringSpec `json:"monitoring,omitempty"`

	// networkPolicy narrows the egress of the application pods (the
	// platform's NetworkPolicies isolate every pod in any case).
	// +optional
	NetworkPolicy *NetworkPolicySpec `json:"networkPolicy,omitempty"`

	// backup backs the database shards up to an S3-compatible object store
	// on a schedule (a ParserPlatformBackup per run), keeping the newest
	// retain complete sets.
	// +optional
	Backup *BackupSpec `json:"backup,omitempty"`
}

// AutoscalingSpec are the platform-wide HorizontalPodAutoscaler settings. The
// defaults: 3 to 20 replicas, CPU 70 %, memory 80 %.
//
// +kubebuilder:validation:XValidation:rule="!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",messageExpression="'minReplicas (%d) must be <= maxReplicas (%d)'.format([self.minReplicas, self.maxReplicas])",message="minReplicas must be <= maxReplicas",fieldPath=".minReplicas"
type AutoscalingSpec struct {
	// enabled creates an HPA for every service, the gateway and every worker
	// that does not turn it off; their replicas then belong to the HPA.
	// +default=true
	// +optional
	Enabled *bool `json:"enabled,omitempty"`

	// minReplicas is the HPA's lower bound.
	// +default=3
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +optional
	MinReplicas int32 `json:"minReplicas,omitempty"`

	// maxReplicas is the HPA's upper bound.
	// +default=20
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +optional
	MaxReplicas int32 `json:"maxReplicas,omitempty"`

	// targetCPUUtilizationPercentage is the average CPU use, as a percentage
	// of the CPU request, that the HPA aims for.
	// +default=70
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	TargetCPUUtilizationPercentage int32 `json:"targetCPUUtilizationPercentage,omitempty"`

	// targetMemoryUtilizationPercentage is the average memory use, as a
	// percentage of the memory request, that the HPA aims for; 0 turns the
	// memory metric off.
	// +default=80
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	TargetMemoryUtilizationPercentage *int32 `json:"targetMemoryUtilizationPercentage,omitempty"`

	// scaleDownStabilizationSeconds is how long the HPA waits for load to stay
	// low before it removes replicas, so short dips do not cause flapping.
	// +default=300
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=3600
	// +optional
	ScaleDownStabilizationSeconds *int32 `json:"scaleDownStabilizationSeconds,omitempty"`
}

// AutoscalingOverride has the shape of AutoscalingSpec; every field left out
// is taken from spec.autoscaling.
//
// +kubebuilder:validation:XValidation:rule="!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",messageExpression="'minReplicas (%d) must be <= maxReplicas (%d)'.format([self.minReplicas, self.maxReplicas])",message="minReplicas must be <= maxReplicas",fieldPath=".minReplicas"
type AutoscalingOverride struct {
	// enabled overrides spec.autoscaling.enabled.
	// +optional
	Enabled *bool `json:"enabled,omitempty"`

	// minReplicas overrides spec.autoscaling.minReplicas.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +optional
	MinReplicas *int32 `json:"minReplicas,omitempty"`

	// maxReplicas overrides spec.autoscaling.maxReplicas.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +optional
	MaxReplicas *int32 `json:"maxReplicas,omitempty"`

	// targetCPUUtilizationPercentage overrides the platform's CPU target.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	TargetCPUUtilizationPercentage *int32 `json:"targetCPUUtilizationPercentage,omitempty"`

	// targetMemoryUtilizationPercentage overrides the platform's memory
	// target; 0 turns the memory metric off.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	TargetMemoryUtilizationPercentage *int32 `json:"targetMemoryUtilizationPercentage,omitempty"`

	// scaleDownStabilizationSeconds overrides the platform's scale-down
	// stabilisation window.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=3600
	// +optional
	ScaleDownStabilizationSeconds *int32 `json:"scaleDownStabilizationSeconds,omitempty"`
}

// ServiceSpec is one microservice of the platform.
//
// +kubebuilder:validation:XValidation:rule="!(self.name in ['gateway', 'lb', 'lb-config', 'registry', 'cache', 'cache-headless', 'broker', 'broker-headless', 'shard-map']) && !self.name.startsWith('db-') && !self.name.startsWith('worker-')",message="services[].name must not be gateway, lb, lb-config, registry, cache, cache-headless, broker, broker-headless, shard-map, db-* or worker-*: those names belong to the platform's own children",fieldPath=".name"
type ServiceSpec struct {
	// name of the service, a DNS-1035 label; children are named
	// <platform>-<name> and the registry lists it under this name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=30
	// +kubebuilder:validation:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?$`
	// +required
	Name string `json:"name,omitempty"`

	// image of the service's container.
	// +kubebuilder:validation:MinLength=1
	// +required
	Image string `json:"image,omitempty"`

	// port the service listens on (in config/samples: auth :8001, comments :8002, ...).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +required
	Port int32 `json:"port,omitempty"`

	// replicas is used only when autoscaling is off for this service.
	// +default=2
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// resources of the container. CPU and memory requests are defaulted
	// (100m, 128Mi) when left out, so HPA utilisation targets work.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// env are extra environment variables for the container, after the ones
	// the operator injects.
	// +listType=atomic
	// +optional
	Env []corev1.EnvVar `json:"env,omitempty"`

	// autoscaling overrides spec.autoscaling for this service.
	// +optional
	Autoscaling *AutoscalingOverride `json:"autoscaling,omitempty"`

	// calls are the services this one calls through the registry: its pods
	// may open the listed services' ports and no other service's. Left out,
	// it may call every service of the platform (the registry's default);
	// an empty list calls none. Each entry names a service of spec.services.
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=30
	// +optional
	Calls []string `json:"calls,omitempty"`
}

// NetworkPolicySpec narrows what the platform's NetworkPolicies let out.
type NetworkPolicySpec struct {
	// egress lists the CIDRs (for example 203.0.113.0/24, or 0.0.0.0/0 with
	// the cloud metadata range left out by a narrower list) that the
	// application pods (services, gateway, load balancer, workers, backup
	// and restore Jobs) may reach beyond the platform itself and DNS. Left
	// out, their egress stays open: the parser reaches the internet. Backup
	// Jobs upload to the object store: list its addresses when this is set.
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=43
	// +kubebuilder:validation:XValidation:rule="self.all(c, isCIDR(c))",messageExpression="'networkPolicy.egress: %s is not a CIDR (address/prefix, as 10.0.0.0/8 or 2001:db8::/32)'.format([self.filter(c, !isCIDR(c))])",message="networkPolicy.egress entries must be CIDRs (address/prefix, as 10.0.0.0/8)"
	// +optional
	Egress []string `json:"egress,omitempty"`
}

// GatewaySpec is the API gateway.
type GatewaySpec struct {
	// image of the gateway container.
	// +kubebuilder:validation:MinLength=1
	// +required
	Image string `json:"image,omitempty"`

	// port the gateway listens on.
	// +default=8080
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port int32 `json:"port,omitempty"`

	// replicas is used only when autoscaling is off for the gateway.
	// +default=2
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// resources of the gateway container; CPU and memory requests defaulted.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// env are extra environment variables for the gateway container.
	// +listType=atomic
	// +optional
	Env []corev1.EnvVar `json:"env,omitempty"`

	// autoscaling overrides spec.autoscaling for the gateway.
	// +optional
	Autoscaling *AutoscalingOverride `json:"autoscaling,omitempty"`
}

// LoadBalancerServiceType is the type of the load balancer's Service.
// +kubebuilder:validation:Enum=ClusterIP;NodePort;LoadBalancer
type LoadBalancerServiceType string

// LoadBalancerSpec is the nginx load balancer in front of the gateway.
type LoadBalancerSpec struct {
	// image of nginx. It must run as a non-root user and listen on an
	// unprivileged port, as nginxinc/nginx-unprivileged does.
	// +default="nginxinc/nginx-unprivileged:1.27-alpine"
	// +kubebuilder:validation:MinLength=1
	// +optional
	Image string `json:"image,omitempty"`

	// replicas of nginx.
	// +default=2
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	Replicas int32 `json:"replicas,omitempty"`

	// port of the load balancer's Service.
	// +default=80
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port int32 `json:"port,omitempty"`

	// serviceType of the load balancer's Service: ClusterIP, NodePort or
	// LoadBalancer.
	// +default="LoadBalancer"
	// +optional
	ServiceType LoadBalancerServiceType `json:"serviceType,omitempty"`

	// resources of the nginx container; CPU and memory requests defaulted.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`
}

// StorageSpec describes a PersistentVolumeClaim template.
type StorageSpec struct {
	// size of each volume.
	// +optional
	Size *apiresource.Quantity `json:"size,omitempty"`

	// storageClassName of each volume; left out, the cluster's default class.
	// +optional
	StorageClassName *string `json:"storageClassName,omitempty"`
}

// DatabaseSpec is the sharded PostgreSQL tier. Keys are routed to shard
// md5(key) mod shards, as the services' DatabaseSharding does
// (docs/architecture.md, "Database shards").
//
// +kubebuilder:validation:XValidation:rule="has(self.restore) == has(oldSelf.restore) && (!has(self.restore) || self.restore == oldSelf.restore)",message="database.restore is set at creation only and cannot be added, changed or removed later: the shards are filled from the backup once, before anything else of the platform starts",fieldPath=".restore"
type DatabaseSpec struct {
	// shards is the number of PostgreSQL StatefulSets. It cannot change after
	// creation: keys are routed by md5(key) mod shards, so another count would
	// strand the data already written.
	// +default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=64
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",messageExpression="'database.shards cannot change after creation (from %d to %d): keys are routed by md5(key) mod shards, so a new count would strand data on the old shards%s; keep %d'.format([oldSelf, self, self < oldSelf ? ', and lowering it would leave shards %d..%d unreachable'.format([self, oldSelf - 1]) : '', oldSelf])",message="database.shards cannot change after creation: keys are routed by md5(key) mod shards, so a new count would strand data on the old shards"
	// +optional
	Shards int32 `json:"shards,omitempty"`

	// image of PostgreSQL.
	// +default="postgres:16-alpine"
	// +kubebuilder:validation:MinLength=1
	// +optional
	Image string `json:"image,omitempty"`

	// storage of each shard's data volume (default 10Gi).
	// +optional
	Storage StorageSpec `json:"storage,omitempty"`

	// resources of each PostgreSQL container; requests defaulted.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// restore fills every shard from a backup set when the platform is
	// created, before any service, gateway or worker starts. Set at creation
	// only; the set must have exactly database.shards shards.
	// +optional
	Restore *RestoreSpec `json:"restore,omitempty"`
}

// CacheSpec is the Redis Cluster cache.
type CacheSpec struct {
	// masters is the number of Redis Cluster masters (at least 3, as Redis
	// Cluster needs a majority of masters to fail over).
	// +default=3
	// +kubebuilder:validation:Minimum=3
	// +kubebuilder:validation:Maximum=100
	// +optional
	Masters int32 `json:"masters,omitempty"`

	// replicasPerMaster is the number of replicas each master gets.
	// +default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=5
	// +optional
	ReplicasPerMaster *int32 `json:"replicasPerMaster,omitempty"`

	// image of Redis (7.x).
	// +default="redis:7.2-alpine"
	// +kubebuilder:validation:MinLength=1
	// +optional
	Image string `json:"image,omitempty"`

	// storage of each cache node's volume (default 2Gi).
	// +optional
	Storage StorageSpec `json:"storage,omitempty"`

	// resources of each Redis container; requests defaulted.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`
}

// BrokerType is the kind of Celery broker.
// +kubebuilder:validation:Enum=rabbitmq;redis
type BrokerType string

const (
	// BrokerRabbitMQ runs RabbitMQ, with queues declared from spec.queues.
	BrokerRabbitMQ BrokerType = "rabbitmq"
	// BrokerRedis runs a standalone Redis as the broker.
	BrokerRedis BrokerType = "redis"
)

// QueuesSpec is the Celery tier: a broker, its queues, and the workers.
//
// +kubebuilder:validation:XValidation:rule="!has(self.queues) || size(self.queues) == 0 || (has(self.workers) && has(self.workers.image))",message="queues.workers.image is required when queues are declared: every queue gets a worker Deployment running it",fieldPath=".workers.image",reason=FieldValueRequired
type QueuesSpec struct {
	// broker is the message broker the workers read from.
	// +default={}
	// +optional
	Broker BrokerSpec `json:"broker,omitempty"`

	// workers is what every queue's worker Deployment runs.
	// +optional
	Workers WorkersSpec `json:"workers,omitempty"`

	// queues are the Celery queues, each with its routing key, the tasks
	// routed to it and its own worker Deployment.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=32
	// +optional
	Queues []QueueSpec `json:"queues,omitempty"`
}

// BrokerSpec is the Celery broker.
type BrokerSpec struct {
	// type is rabbitmq (default) or redis. It cannot change after
	// creation: a broker of the other type would start on the same volumes
	// and the tasks queued in the old one would be abandoned.
	// +default="rabbitmq"
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",messageExpression="'queues.broker.type cannot change after creation (from %s to %s): the new broker would start on the volumes of the old one and the tasks queued in it would be lost; drain the queues and create a new platform for the other type'.format([oldSelf, self])",message="queues.broker.type cannot change after creation: the tasks queued in the old broker would be lost"
	// +optional
	Type BrokerType `json:"type,omitempty"`

	// image of the broker; left out, the default of its type
	// (rabbitmq:3.13-management-alpine or redis:7.2-alpine).
	// +optional
	Image string `json:"image,omitempty"`

	// replicas of the broker StatefulSet. It can grow but not shrink:
	// RabbitMQ keeps each classic queue on one node, so removing nodes would
	// strand the queues (and their messages) hosted on them.
	// +default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=7
	// +kubebuilder:validation:XValidation:rule="self >= oldSelf",messageExpression="'queues.broker.replicas cannot be lowered (from %d to %d): RabbitMQ keeps each queue on one node, and the queues and messages of the removed nodes would be stranded; keep %d'.format([oldSelf, self, oldSelf])",message="queues.broker.replicas cannot be lowered: the queues and messages of the removed nodes would be stranded"
	// +optional
	Replicas int32 `json:"replicas,omitempty"`

	// storage of each broker node's volume (default 2Gi).
	// +optional
	Storage StorageSpec `json:"storage,omitempty"`

	// resources of the broker container; requests defaulted.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`
}

// WorkersSpec is what the Celery workers run.
type WorkersSpec struct {
	// image of the worker container.
	// +kubebuilder:validation:MinLength=1
	// +optional
	Image string `json:"image,omitempty"`

	// app is the Celery application: workers run celery -A <app> worker.
	// +default="vk_parser"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:Pattern=`^[A-Za-z_][A-Za-z0-9_.:]*$`
	// +optional
	App string `json:"app,omitempty"`

	// resources of each worker container; requests defaulted.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// env are extra environment variables for every worker container.
	// +listType=atomic
	// +optional
	Env []corev1.EnvVar `json:"env,omitempty"`
}

// QueueSpec is one Celery queue and its workers.
type QueueSpec struct {
	// name of the queue; its worker Deployment is <platform>-worker-<name>.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=30
	// +kubebuilder:validation:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?$`
	// +required
	Name string `json:"name,omitempty"`

	// routingKey binds the queue to the exchange; defaults to the name.
	// +kubebuilder:validation:MaxLength=255
	// +optional
	RoutingKey string `json:"routingKey,omitempty"`

	// tasks are the Celery task names routed to this queue.
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +optional
	Tasks []string `json:"tasks,omitempty"`

	// concurrency is the number of worker processes per pod.
	// +default=4
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=256
	// +optional
	Concurrency int32 `json:"concurrency,omitempty"`

	// replicas is used only when autoscaling is off for this queue.
	// +default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// autoscaling overrides spec.autoscaling for this queue's workers and
	// may add a backlog target (targetQueueLength) that KEDA scales on.
	// +optional
	Autoscaling *QueueAutoscaling `json:"autoscaling,omitempty"`
}

// ServiceMonitorMode says whether a Prometheus Operator ServiceMonitor is made.
// +kubebuilder:validation:Enum=auto;enabled;disabled
type ServiceMonitorMode string

const (
	// ServiceMonitorAuto creates the ServiceMonitor when its CRD exists.
	ServiceMonitorAuto ServiceMonitorMode = "auto"
	// ServiceMonitorEnabled asks for the ServiceMonitor; a missing CRD is
	// reported in a condition.
	ServiceMonitorEnabled ServiceMonitorMode = "enabled"
	// ServiceMonitorDisabled never creates it.
	ServiceMonitorDisabled ServiceMonitorMode = "disabled"
)

// MonitoringSpec says how Prometheus scrapes the platform.
type MonitoringSpec struct {
	// serviceMonitor is the mode of the Prometheus Operator objects: auto
	// (default) creates a ServiceMonitor when the monitoring.coreos.com CRD
	// exists, enabled asks for one, disabled never.
	// The same mode governs the PodMonitors and the PrometheusRule, each
	// made while its own CRD exists.
	// +default="auto"
	// +optional
	ServiceMonitor ServiceMonitorMode `json:"serviceMonitor,omitempty"`

	// metricsPort is the port on which every service, the gateway and the
	// workers serve Prometheus metrics. It must differ from every service
	// port and from the platform's data ports (5432, 6379, 16379, 5672,
	// 15672, 15692, 4369, 25672, 8080).
	// +default=9090
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	MetricsPort int32 `json:"metricsPort,omitempty"`

	// namespace is where Prometheus runs: the platform's NetworkPolicies let
	// pods of this namespace, and only them, reach the metrics port.
	// +default="monitoring"
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +optional
	Namespace string `json:"namespace,omitempty"`

	// exporters are the Prometheus exporters that run beside the shards, the
	// cache and the load balancer (on by default).
	// +default={}
	// +optional
	Exporters ExportersSpec `json:"exporters,omitempty"`

	// alerts are the thresholds of the platform's PrometheusRule.
	// +default={}
	// +optional
	Alerts AlertsSpec `json:"alerts,omitempty"`

	// dashboard makes a ConfigMap with the platform's Grafana dashboard,
	// labelled grafana_dashboard: "1" for Grafana's dashboard sidecar.
	// +default=true
	// +optional
	Dashboard *bool `json:"dashboard,omitempty"`
}

// ComponentStatus is the observed replica count of one workload.
type ComponentStatus struct {
	// name of the component: a service name, gateway, lb, db-<i>, cache,
	// broker or worker-<queue>.
	// +required
	Name string `json:"name"`
	// kind of the workload: Deployment or StatefulSet.
	// +required
	Kind string `json:"kind"`
	// desiredReplicas is the replica count the workload asks for (the HPA's
	// choice when an HPA owns it).
	// +required
	DesiredReplicas int32 `json:"desiredReplicas"`
	// readyReplicas is the number of ready pods.
	// +required
	ReadyReplicas int32 `json:"readyReplicas"`
}

// ParserPlatformStatus is what the operator observed.
type ParserPlatformStatus struct {
	// conditions are Ready, Progressing, Degraded, Paused and one per area
	// (ServicesReady, LoadBalancerReady, DatabaseReady, CacheReady, QueuesReady).
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// components are the ready/desired replicas of every workload.
	// +listType=map
	// +listMapKey=name
	// +optional
	Components []ComponentStatus `json:"components,omitempty"`

	// shards is the number of database shards the shard map routes to.
	// +optional
	Shards int32 `json:"shards,omitempty"`

	// loadBalancerAddress is where clients reach the platform, once the load
	// balancer's Service has an address.
	// +optional
	LoadBalancerAddress string `json:"loadBalancerAddress,omitempty"`

	// cache is the Redis Cluster as the operator last saw it.
	// +optional
	Cache *CacheClusterStatus `json:"cache,omitempty"`

	// backup is the state of the scheduled backups.
	// +optional
	Backup *BackupStatus `json:"backup,omitempty"`

	// restore is the state of the restore at creation (spec.database.restore);
	// once completedAt is set the platform is never restored again.
	// +optional
	Restore *RestoreStatus `json:"restore,omitempty"`

	// childrenDigest is a digest of the children (their UIDs and contents as
	// stored) as the operator last found them all matching the spec. An
	// operator that restarts and finds them in that state again takes them
	// as verified instead of reading each one from the API server. Written
	// by the operator only.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	ChildrenDigest string `json:"childrenDigest,omitempty"`
}

// CacheClusterStatus is the Redis Cluster's topology: CacheReady is True
// only with every slot assigned, none open and every node answering.
type CacheClusterStatus struct {
	// nodes that answered.
	// +required
	Nodes int32 `json:"nodes"`
	// masters holding slots.
	// +required
	Masters int32 `json:"masters"`
	// slotsAssigned of the 16384.
	// +required
	SlotsAssigned int32 `json:"slotsAssigned"`
	// openSlots left migrating or importing (a migration in progress or
	// interrupted; the operator finishes it first).
	// +required
	OpenSlots int32 `json:"openSlots"`
}

func init() {
	register(&ParserPlatform{}, &ParserPlatformList{})
}
