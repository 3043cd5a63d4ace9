package resource

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiresource "k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
)

// Broker settings.
const (
	brokerName = "broker"
	// BrokerUser is the one user workers and services connect as
	// (broker_users.go: its rights).
	BrokerUser = "parser"
	// CeleryExchange is the direct exchange Celery routes to by default
	// (task_default_exchange): declaring it and the bindings exactly as
	// Celery would keeps Celery's own declarations from conflicting.
	CeleryExchange = "celery"

	KeyErlangCookie             = "erlang-cookie"
	KeyBrokerURL                = "url"
	QueueDefinitionsKey         = "queues.json"
	UserDefinitionsKey          = "users.json"
	RabbitConfKey               = "rabbitmq.conf"
	EnabledPluginsKey           = "enabled_plugins"
	rabbitDefinitions           = "/etc/rabbitmq/definitions"
	rabbitConfigDir             = "/etc/rabbitmq"
	rabbitHomeDir               = "/var/lib/rabbitmq"
	rabbitDataDir               = rabbitHomeDir + "/mnesia"
	rabbitCookieSecretDir       = "/etc/rabbitmq/erlang-cookie" //nolint:gosec // G101: a mount path, not a credential.
	rabbitCookieFile            = ".erlang.cookie"
	defaultBrokerSize           = "2Gi"
	rabbitUID             int64 = 100 // the rabbitmq user of the official Alpine images
	rabbitGrace           int64 = 120
)

// hasQueues is true when the spec declares queues: only then is there a broker.
func hasQueues(p *platformv1.ParserPlatform) bool {
	return p.Spec.Queues != nil && len(p.Spec.Queues.Queues) > 0
}

func isRedisBroker(p *platformv1.ParserPlatform) bool {
	return p.Spec.Queues.Broker.Type == platformv1.BrokerRedis
}

// BrokerName is the broker's StatefulSet, Service, ConfigMap and Secret.
func BrokerName(p *platformv1.ParserPlatform) string { return StatefulSetName(p.Name, brokerName) }

// BrokerPodSelector selects the broker's pods (the operator reaches their
// management API at their IPs).
func BrokerPodSelector(p *platformv1.ParserPlatform) map[string]string {
	return SelectorLabels(p, brokerName)
}

// IsRabbitMQBroker is true when the spec declares queues on a RabbitMQ
// broker: only then does the operator manage queues on it (a Redis broker's
// queues are lists Celery creates on its own).
func IsRabbitMQBroker(p *platformv1.ParserPlatform) bool {
	return hasQueues(p) && !isRedisBroker(p)
}

// BrokerHeadlessName is the broker's governing Service.
func BrokerHeadlessName(p *platformv1.ParserPlatform) string {
	return Name(p.Name, brokerName, "headless")
}

func brokerGeneratedKeys(p *platformv1.ParserPlatform) []SecretKey {
	if !hasQueues(p) {
		return nil
	}
	keys := []SecretKey{{Secret: BrokerName(p), Key: KeyPassword}}
	if !isRedisBroker(p) {
		keys = append(keys, SecretKey{Secret: BrokerName(p), Key: KeyErlangCookie},
			SecretKey{Secret: BrokerUsersSecretName(p), Key: KeyOperatorPassword})
	}
	return keys
}

// BrokerURL is the Celery broker URL, with the password: it lives only in the
// broker's Secret, and workers read it from there. The credentials are
// percent-escaped, so a password with URL delimiters (@ : / ? #) still
// parses; kombu unescapes them.
func BrokerURL(p *platformv1.ParserPlatform, password string) string {
	host := fmt.Sprintf("%s.%s.svc", BrokerName(p), p.Namespace)
	if isRedisBroker(p) {
		u := url.URL{Scheme: "redis", User: url.UserPassword("", password), Host: fmt.Sprintf("%s:%d", host, RedisPort), Path: "/0"}
		return u.String()
	}
	// The path "/" is the virtual host "/", escaped: amqp://...:5672//.
	u := url.URL{Scheme: "amqp", User: url.UserPassword(BrokerUser, password), Host: fmt.Sprintf("%s:%d", host, AMQPPort), Path: "//"}
	return u.String()
}

func brokerChildren(p *platformv1.ParserPlatform, creds Credentials) []client.Object {
	if !hasQueues(p) {
		return nil
	}
	if isRedisBroker(p) {
		return redisBrokerChildren(p, creds)
	}
	return rabbitBrokerChildren(p, creds)
}

// rabbitBrokerChildren: RabbitMQ with the queues of the spec declared at
// boot from a definitions file (queues in the ConfigMap, the user, whose
// password hash is a secret, in the Secret). Queues of a running broker
// are kept in line with the spec by the operator over the management API
// (internal/rabbitmq), not by restarts.
func rabbitBrokerChildren(p *platformv1.ParserPlatform, creds Credentials) []client.Object {
	password := creds.Get(BrokerName(p), KeyPassword)
	cookie := creds.Get(BrokerName(p), KeyErlangCookie)
	operatorPassword := creds.Get(BrokerUsersSecretName(p), KeyOperatorPassword)
	users, err := RenderUserDefinitions(password, operatorPassword)
	if err != nil {
		panic(err) // plain strings always marshal
	}
	config := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: objectMeta(p, BrokerName(p), brokerName, ComponentBroker),
		Data: map[string]string{
			QueueDefinitionsKey:   RenderQueueDefinitions(p),
			RabbitConfKey:         RenderRabbitConf(rabbitDefinitions, AMQPPort, rabbitNodes(p)...),
			EnabledPluginsKey:     "[rabbitmq_management,rabbitmq_prometheus].\n",
			RabbitAdvancedConfKey: RabbitAdvancedConfig,
		},
	}
	sec := secret(p, BrokerName(p), brokerName, ComponentBroker, map[string]string{
		KeyUsername:     BrokerUser,
		KeyPassword:     password,
		KeyErlangCookie: cookie,
		KeyBrokerURL:    BrokerURL(p, password),
	})
	sts := rabbitWorkload(p, rabbitConfigHash(config.Data, users, cookie)).StatefulSet()
	sts.Spec.Template.Spec.InitContainers = []corev1.Container{rabbitCookieInitContainer(p)}
	objs := brokerObjects(p, config, sec, sts,
		servicePort("amqp", AMQPPort), servicePort("management", RabbitManagement))
	return append([]client.Object{brokerUsersSecret(p, users, operatorPassword)}, objs...)
}

// rabbitConfigHash is the hash of everything a broker pod reads at boot and
// only then: rabbitmq.conf, enabled_plugins, the user definitions (a new
// password) and the Erlang cookie (a node with another cookie cannot talk
// to its peers or to the CLI the probes run). Secret values enter only
// through the hash, never in plain. queues.json is left out on purpose: a
// queue edit must not restart the broker; the operator applies it live
// (reconcile_broker.go) and the boot import only seeds a fresh node.
func rabbitConfigHash(config map[string]string, users, cookie string) string {
	read := map[string]string{}
	for k, v := range config {
		if k != QueueDefinitionsKey {
			read[k] = v
		}
	}
	return ConfigHash(read, map[string]string{UserDefinitionsKey: users, KeyErlangCookie: cookie})
}

func redisBrokerChildren(p *platformv1.ParserPlatform, creds Credentials) []client.Object {
	password := creds.Get(BrokerName(p), KeyPassword)
	config := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: objectMeta(p, BrokerName(p), brokerName, ComponentBroker),
		Data: map[string]string{RedisConfKey: "# Celery broker for " + p.Namespace + "/" + p.Name + ", generated by parser-operator.\n" +
			"port 6379\nbind * -::*\ndir /data\nappendonly yes\nmaxmemory-policy noeviction\ninclude " + redisAuthDir + "/" + RedisAuthConfKey + "\n"},
	}
	sec := secret(p, BrokerName(p), brokerName, ComponentBroker, map[string]string{
		KeyPassword: password, KeyBrokerURL: BrokerURL(p, password), RedisAuthConfKey: RenderRedisAuthConf(password),
	})
	// Redis reads its password (the auth include) only at start: a new one
	// must restart it, as for the cache.
	hash := ConfigHash(config.Data, creds.Digest(SecretKey{Secret: BrokerName(p), Key: KeyPassword}))
	return brokerObjects(p, config, sec, redisBrokerWorkload(p, hash).StatefulSet(), servicePort("redis", RedisPort))
}

func brokerObjects(p *platformv1.ParserPlatform, config *corev1.ConfigMap, sec *corev1.Secret, sts *appsv1.StatefulSet, ports ...corev1.ServicePort) []client.Object {
	clientService := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: objectMeta(p, BrokerName(p), brokerName, ComponentBroker),
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Selector: SelectorLabels(p, brokerName), Ports: ports},
	}
	return []client.Object{
		config, sec,
		headlessService(p, BrokerHeadlessName(p), brokerName, ComponentBroker, ports...),
		clientService,
		sts,
		podDisruptionBudget(objectMeta(p, BrokerName(p), brokerName, ComponentBroker), SelectorLabels(p, brokerName)),
	}
}

// rabbitNodes are the Erlang node names of every broker pod, the members
// the classic_config peer discovery joins into one cluster.
func rabbitNodes(p *platformv1.ParserPlatform) []string {
	replicas := int(orInt32(p.Spec.Queues.Broker.Replicas, 1))
	nodes := make([]string, 0, replicas)
	for i := range replicas {
		nodes = append(nodes, fmt.Sprintf("rabbit@%s-%d.%s.%s.svc", BrokerName(p), i, BrokerHeadlessName(p), p.Namespace))
	}
	return nodes
}

// RenderRabbitConf: listeners, the definitions directory imported at boot,
// and the cluster's members (nodes), so several replicas form one broker.
func RenderRabbitConf(definitionsDir string, port int32, nodes ...string) string {
	var members strings.Builder
	for i, node := range nodes {
		fmt.Fprintf(&members, "cluster_formation.classic_config.nodes.%d = %s\n", i+1, node)
	}
	return fmt.Sprintf(`# rabbitmq.conf, generated by parser-operator: edits are overwritten.
listeners.tcp.default = %d
# Every file of this directory is imported at boot, in name order: the
# queues of the spec (queues.json, ConfigMap) and the user (users.json,
# Secret). The import only adds: a running broker gets queue changes from
# the operator, over the management API, without a restart.
load_definitions = %s
loopback_users = none
# Logs go to the container's output, and only there: the root file system
# is read-only, and the image's conf.d is not what this file relies on.
log.console = true
log.file = false
cluster_formation.peer_discovery_backend = classic_config
`, port, definitionsDir) + members.String()
}

// definitions is the subset of RabbitMQ's definitions format the operator writes.
type definitions struct {
	Users       []map[string]any `json:"users,omitempty"`
	Vhosts      []map[string]any `json:"vhosts,omitempty"`
	Permissions []map[string]any `json:"permissions,omitempty"`
	Queues      []map[string]any `json:"queues,omitempty"`
	Exchanges   []map[string]any `json:"exchanges,omitempty"`
	Bindings    []map[string]any `json:"bindings,omitempty"`
}

// QueueBinding is one queue of the spec as the broker holds it: a durable
// queue on the virtual host "/", bound to the exchange "celery" with its
// routing key. The boot definitions (RenderQueueDefinitions) and the
// operator's live changes (reconcile_broker.go) both come from it.
type QueueBinding struct {
	Queue      string
	RoutingKey string
}

// QueueBindings are the queues of the spec, in spec order.
func QueueBindings(p *platformv1.ParserPlatform) []QueueBinding {
	if !hasQueues(p) {
		return nil
	}
	out := make([]QueueBinding, 0, len(p.Spec.Queues.Queues))
	for _, q := range p.Spec.Queues.Queues {
		out = append(out, QueueBinding{Queue: q.Name, RoutingKey: q.RoutingKeyOf()})
	}
	return out
}

// RabbitVhost is the virtual host the Celery queues live on (the broker
// URL's "//").
const RabbitVhost = "/"

// RenderQueueDefinitions declares what the services' Celery configuration
// declares: the direct exchange "celery", one durable queue per spec queue,
// bound with its routing key.
func RenderQueueDefinitions(p *platformv1.ParserPlatform) string {
	d := definitions{
		Vhosts:    []map[string]any{{"name": RabbitVhost}},
		Exchanges: []map[string]any{{"name": CeleryExchange, "vhost": RabbitVhost, "type": "direct", "durable": true, "auto_delete": false, "internal": false, "arguments": map[string]any{}}},
	}
	for _, q := range QueueBindings(p) {
		d.Queues = append(d.Queues, map[string]any{"name": q.Queue, "vhost": RabbitVhost, "durable": true, "auto_delete": false, "arguments": map[string]any{}})
		d.Bindings = append(d.Bindings, map[string]any{
			"source": CeleryExchange, "vhost": RabbitVhost, "destination": q.Queue, "destination_type": "queue",
			"routing_key": q.RoutingKey, "arguments": map[string]any{},
		})
	}
	return mustJSON(d)
}

// RabbitPasswordHash is RabbitMQ's rabbit_password_hashing_sha256:
// base64(salt ++ sha256(salt ++ password)) with a 4-byte salt. The salt is
// derived from the password so the Secret is a pure function of it (and is
// not rewritten on every reconcile); it still differs for every password.
func RabbitPasswordHash(password string) string {
	seed := sha256.Sum256([]byte("parser-operator/rabbitmq/" + password))
	salt := seed[:4]
	sum := sha256.Sum256(append(append([]byte{}, salt...), password...))
	return base64.StdEncoding.EncodeToString(append(append([]byte{}, salt...), sum[:]...))
}

func mustJSON(v any) string {
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		panic(err)
	}
	return string(out) + "\n"
}

func rabbitWorkload(p *platformv1.ParserPlatform, configHash string) *statefulWorkload {
	b := p.Spec.Queues.Broker
	probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{
		Command: []string{"rabbitmq-diagnostics", "-q", "check_port_connectivity"},
	}}, PeriodSeconds: 30, TimeoutSeconds: 20, InitialDelaySeconds: 10}
	return &statefulWorkload{
		platform: p, name: brokerName, component: ComponentBroker, replicas: orInt32(b.Replicas, 1),
		serviceName: BrokerHeadlessName(p), storage: b.Storage, defaultSize: defaultBrokerSize,
		uid: rabbitUID, gracePeriod: rabbitGrace, configHash: configHash,
		container: corev1.Container{
			Name:  "rabbitmq",
			Image: b.BrokerImage(),
			Env: []corev1.EnvVar{
				fieldEnv("POD_NAME", "metadata.name"),
				{Name: "RABBITMQ_USE_LONGNAME", Value: "true"},
				{Name: "RABBITMQ_NODENAME", Value: fmt.Sprintf("rabbit@$(POD_NAME).%s.%s.svc", BrokerHeadlessName(p), p.Namespace)},
				// The node and the CLI the probes run read the cookie from
				// $HOME/.erlang.cookie, which the init container writes.
				{Name: "HOME", Value: rabbitHomeDir},
				{Name: "RABBITMQ_MNESIA_BASE", Value: rabbitMnesiaBase},
				// The upgrade log is a file of its own whatever log.file
				// says, and rabbitmq.conf can only name another file for it
				// (log.upgrade.file): "-" sends it to the console too, so
				// nothing writes to the read-only /var/log/rabbitmq.
				{Name: "RABBITMQ_UPGRADE_LOG", Value: "-"},
				{Name: "RABBITMQ_CONFIG_FILE", Value: rabbitConfigDir + "/config/rabbitmq"},
				{Name: "RABBITMQ_ENABLED_PLUGINS_FILE", Value: rabbitConfigDir + "/config/" + EnabledPluginsKey},
				{Name: "RABBITMQ_ADVANCED_CONFIG_FILE", Value: rabbitConfigDir + "/config/" + RabbitAdvancedConfKey},
			},
			Ports: []corev1.ContainerPort{
				{Name: "amqp", ContainerPort: AMQPPort, Protocol: corev1.ProtocolTCP},
				{Name: "management", ContainerPort: RabbitManagement, Protocol: corev1.ProtocolTCP},
				{Name: "epmd", ContainerPort: ErlangPortMapper, Protocol: corev1.ProtocolTCP},
				{Name: "dist", ContainerPort: RabbitDistribution, Protocol: corev1.ProtocolTCP},
				{Name: RabbitPrometheusPortName, ContainerPort: RabbitPrometheusPort, Protocol: corev1.ProtocolTCP},
			},
			Resources:      withDefaultRequests(b.Resources),
			ReadinessProbe: probe,
			LivenessProbe:  withInitialDelay(probe.DeepCopy(), 60),
			// RabbitMQ imports every entry of the definitions directory and
			// stops at the first it cannot read, so the directory must hold
			// the two files and nothing else. A ConfigMap, Secret or
			// projected volume mounted there also holds the kubelet's
			// "..data" link and timestamped directory: the import fails on
			// them (eisdir) and the node boots with no vhost and no user.
			// Each file is therefore mounted on its own (subPath) into a
			// directory the runtime creates. Definitions are read only at
			// boot, so subPath's missing live updates cost nothing.
			VolumeMounts: []corev1.VolumeMount{
				{Name: rabbitHomeVolume, MountPath: rabbitHomeDir},
				{Name: dataVolumeName, MountPath: rabbitDataDir},
				{Name: "config", MountPath: rabbitConfigDir + "/config", ReadOnly: true},
				{Name: "queue-definitions", MountPath: rabbitDefinitions + "/" + QueueDefinitionsKey, SubPath: QueueDefinitionsKey, ReadOnly: true},
				{Name: "user-definitions", MountPath: rabbitDefinitions + "/" + UserDefinitionsKey, SubPath: UserDefinitionsKey, ReadOnly: true},
			},
		},
		volumes: []corev1.Volume{
			{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: BrokerName(p)},
				Items:                []corev1.KeyToPath{{Key: RabbitConfKey, Path: RabbitConfKey}, {Key: EnabledPluginsKey, Path: EnabledPluginsKey}, {Key: RabbitAdvancedConfKey, Path: RabbitAdvancedConfKey}},
			}}},
			{Name: "queue-definitions", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: BrokerName(p)},
				Items:                []corev1.KeyToPath{{Key: QueueDefinitionsKey, Path: QueueDefinitionsKey}},
			}}},
			{Name: "user-definitions", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
				SecretName: BrokerUsersSecretName(p), DefaultMode: ptr.To[int32](0o400),
				Items: []corev1.KeyToPath{{Key: UserDefinitionsKey, Path: UserDefinitionsKey}},
			}}},
			{Name: rabbitHomeVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
				SizeLimit: ptr.To(apiresource.MustParse("64Mi")),
			}}},
			{Name: rabbitCookieVolume, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
				SecretName: BrokerName(p), DefaultMode: ptr.To[int32](0o400),
				Items: []corev1.KeyToPath{{Key: KeyErlangCookie, Path: rabbitCookieFile}},
			}}},
		},
	}
}

// The Erlang cookie and the data, laid out as rabbitmq/cluster-operator
// lays them out:
//
//	/var/lib/rabbitmq          HOME, an emptyDir: .erlang.cookie, 0600
//	/var/lib/rabbitmq/mnesia   the PVC
//
// Erlang refuses a cookie file that its group or others may read, and the
// kubelet gives every volume of a pod with an fsGroup group rw on each
// mount: a cookie kept on the PVC (HOME was the PVC) turned 0660 at the next
// mount, and every restarted pod crash-looped. The cookie Secret mounted
// as the file would get the same group bits, and RABBITMQ_ERLANG_COOKIE is
// deprecated by RabbitMQ, while $HOME/.erlang.cookie is what the node and
// every CLI (the probes) read by default. So an init container copies the
// cookie from the Secret into HOME, a fresh emptyDir, and makes it 0600,
// after the kubelet is done with the mounts.
const (
	rabbitHomeVolume   = "home"
	rabbitCookieVolume = "erlang-cookie"
	// rabbitMnesiaBase keeps the node's database where the earlier layout
	// (the PVC at HOME, the image's default base HOME/mnesia) put it on the
	// volume: <PVC>/mnesia/rabbit@<host>. A broker upgraded to this layout
	// finds its queues, messages and users where it left them; a new one
	// creates the directory. Nothing is moved, so nothing can be half-moved.
	rabbitMnesiaBase = rabbitDataDir + "/mnesia"
)

// rabbitCookieInitContainer writes $HOME/.erlang.cookie, owner-only, from
// the broker's Secret. It runs as the pod's user (the broker's own) under
// the same restricted security context, so the file is the node's.
func rabbitCookieInitContainer(p *platformv1.ParserPlatform) corev1.Container {
	cookie := rabbitHomeDir + "/" + rabbitCookieFile
	return corev1.Container{
		Name:  "erlang-cookie",
		Image: p.Spec.Queues.Broker.BrokerImage(),
		Command: []string{"sh", "-c", fmt.Sprintf("set -e; rm -f %[2]s; cp %[1]s %[2]s; chmod 0600 %[2]s",
			rabbitCookieSecretDir+"/"+rabbitCookieFile, cookie)},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: apiresource.MustParse("10m"), corev1.ResourceMemory: apiresource.MustParse("16Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: apiresource.MustParse("64Mi")},
		},
		SecurityContext: restrictedContainerSecurityContext(),
		VolumeMounts: []corev1.VolumeMount{
			{Name: rabbitHomeVolume, MountPath: rabbitHomeDir},
			{Name: rabbitCookieVolume, MountPath: rabbitCookieSecretDir, ReadOnly: true},
		},
	}
}

func redisBrokerWorkload(p *platformv1.ParserPlatform, configHash string) *statefulWorkload {
	b := p.Spec.Queues.Broker
	ping := redisPingProbe()
	return &statefulWorkload{
		platform: p, name: brokerName, component: ComponentBroker, replicas: 1,
		serviceName: BrokerHeadlessName(p), storage: b.Storage, defaultSize: defaultBrokerSize,
		uid: redisUID, gracePeriod: redisGrace, configHash: configHash,
		container: corev1.Container{
			Name: "redis", Image: b.BrokerImage(),
			Command:        []string{"redis-server", redisConfigDir + "/" + RedisConfKey},
			Env:            []corev1.EnvVar{secretEnv("REDISCLI_AUTH", BrokerName(p), KeyPassword)},
			Ports:          []corev1.ContainerPort{{Name: "redis", ContainerPort: RedisPort, Protocol: corev1.ProtocolTCP}},
			Resources:      withDefaultRequests(b.Resources),
			ReadinessProbe: ping,
			LivenessProbe:  withInitialDelay(ping.DeepCopy(), 15),
			VolumeMounts:   redisMounts(),
		},
		volumes: redisVolumes(BrokerName(p)),
	}
}
