package resource

import (
	"bytes"
	_ "embed"
	"fmt"
	"text/template"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
)

// Redis Cluster cache settings.
const (
	cacheName              = "cache"
	RedisConfKey           = "redis.conf"
	RedisAuthConfKey       = "auth.conf"
	redisConfigDir         = "/etc/redis"
	redisAuthDir           = "/etc/redis/auth"
	redisDataDir           = "/data"
	defaultCacheSize       = "2Gi"
	redisUID         int64 = 999 // the redis user of the official images
	redisGrace       int64 = 30
	// maxmemoryPercent of the container's memory is left to keys; the rest
	// covers Redis' own overhead and replication buffers.
	maxmemoryPercent = 75
)

//go:embed redis.conf.tmpl
var redisConfTemplateText string

var redisConfTemplate = template.Must(template.New("redis.conf").Parse(redisConfTemplateText))

// CacheName is the StatefulSet, client Service, ConfigMap, Secret and PDB of
// the cache; CacheHeadlessName its headless Service.
func CacheName(p *platformv1.ParserPlatform) string { return StatefulSetName(p.Name, cacheName) }

// CacheHeadlessName is the governing Service that gives cache pods DNS names.
func CacheHeadlessName(p *platformv1.ParserPlatform) string {
	return Name(p.Name, cacheName, "headless")
}

// CacheReplicas is the number of cache pods: every master and its replicas.
func CacheReplicas(p *platformv1.ParserPlatform) int32 {
	return CacheMasters(p) * (1 + CacheReplicasPerMaster(p))
}

// CacheMasters is the number of Redis Cluster masters (the CRD defaults it to 3).
func CacheMasters(p *platformv1.ParserPlatform) int32 { return orInt32(p.Spec.Cache.Masters, 3) }

// CacheReplicasPerMaster is the number of replicas of each master (default 1).
func CacheReplicasPerMaster(p *platformv1.ParserPlatform) int32 {
	return ptr.Deref(p.Spec.Cache.ReplicasPerMaster, 1)
}

// CacheEndpoint is what apps connect to: the client Service; a cluster
// client discovers every node from it.
func CacheEndpoint(p *platformv1.ParserPlatform) string {
	return fmt.Sprintf("%s.%s.svc:%d", CacheName(p), p.Namespace, RedisPort)
}

func cacheGeneratedKeys(p *platformv1.ParserPlatform) []SecretKey {
	return []SecretKey{{Secret: CacheName(p), Key: KeyPassword}}
}

// RedisConfOptions are the inputs of redis.conf. Paths are options so a test
// can run a real redis-server on the rendered file in a temporary directory.
type RedisConfOptions struct {
	Platform, Namespace string
	Port                int32
	DataDir             string
	AuthConf            string
	MaxmemoryBytes      int64 // 0: no limit
}

// RenderRedisConf renders redis.conf for a cluster-mode cache node.
func RenderRedisConf(o RedisConfOptions) string {
	var buf bytes.Buffer
	if err := redisConfTemplate.Execute(&buf, o); err != nil { // fixed template, plain values
		panic(err)
	}
	return buf.String()
}

// RenderRedisAuthConf is the part of the configuration that holds the
// password: it lives in the Secret, and redis.conf includes it.
//
// One password, Redis' default user, for the applications and the operator
// alike: chosen over ACL users for now. Redis 7 would allow an applications'
// user without @admin and @dangerous (CLUSTER, CONFIG, FLUSHALL, DEBUG,
// MIGRATE, ...) beside the operator's full one, with replicas syncing as
// masteruser, without breaking cluster operations. Not done yet, because
// of what it costs: every running cache would roll from requirepass to an
// ACL file (a rolling restart of a Redis Cluster, failovers included, which
// the operator would have to pace), the applications would need a second
// credential and a username in their client configuration, and Redis reads
// users only at start, so each change of either password rolls the cache.
// Until that migration exists, the NetworkPolicies keep every pod but the
// apps, the cache's peers and the operator off the Redis port
// (docs/security.md).
func RenderRedisAuthConf(password string) string {
	q := redisQuote(password)
	return "requirepass " + q + "\nmasterauth " + q + "\n"
}

// redisQuote quotes s as a double-quoted redis.conf argument. Redis reads
// only \xHH, \", \\ and a few C escapes inside quotes, not Go's \u (which
// %q writes for non-printable runes such as U+00A0), so every byte other
// than printable ASCII is written as \xHH.
func redisQuote(s string) string {
	const hex = "0123456789abcdef"
	out := make([]byte, 0, len(s)+2)
	out = append(out, '"')
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case b == '"' || b == '\\':
			out = append(out, '\\', b)
		case b >= 0x20 && b < 0x7f:
			out = append(out, b)
		default:
			out = append(out, '\\', 'x', hex[b>>4], hex[b&0xf])
		}
	}
	return string(append(out, '"'))
}

func cacheConfOptions(p *platformv1.ParserPlatform) RedisConfOptions {
	return RedisConfOptions{
		Platform: p.Name, Namespace: p.Namespace, Port: RedisPort, DataDir: redisDataDir,
		AuthConf:       redisAuthDir + "/" + RedisAuthConfKey,
		MaxmemoryBytes: maxmemory(withDefaultRequests(p.Spec.Cache.Resources)),
	}
}

// maxmemory is a share of the memory limit, or of the request when there is
// no limit, so Redis evicts keys before the kernel kills it.
func maxmemory(r corev1.ResourceRequirements) int64 {
	memory, ok := r.Limits[corev1.ResourceMemory]
	if !ok {
		memory = r.Requests[corev1.ResourceMemory]
	}
	return memory.Value() * maxmemoryPercent / 100
}

func cacheChildren(p *platformv1.ParserPlatform, creds Credentials) []client.Object {
	config := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: objectMeta(p, CacheName(p), cacheName, ComponentCache),
		Data:       map[string]string{RedisConfKey: RenderRedisConf(cacheConfOptions(p))},
	}
	password := creds.Get(CacheName(p), KeyPassword)
	auth := secret(p, CacheName(p), cacheName, ComponentCache, map[string]string{
		KeyPassword: password, RedisAuthConfKey: RenderRedisAuthConf(password),
	})
	clientService := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: objectMeta(p, CacheName(p), cacheName, ComponentCache),
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeClusterIP, Selector: SelectorLabels(p, cacheName),
			Ports: []corev1.ServicePort{servicePort("redis", RedisPort)},
		},
	}
	headless := headlessService(p, CacheHeadlessName(p), cacheName, ComponentCache,
		servicePort("redis", RedisPort), servicePort("cluster-bus", RedisClusterBus))
	return []client.Object{
		config, auth, headless, clientService,
		// auth.conf is read at start only: a new password must restart the nodes.
		cacheWorkload(p, ConfigHash(config.Data, map[string]string{RedisAuthConfKey: RenderRedisAuthConf(password)})).StatefulSet(),
		podDisruptionBudget(objectMeta(p, CacheName(p), cacheName, ComponentCache), SelectorLabels(p, cacheName)),
	}
}

func cacheWorkload(p *platformv1.ParserPlatform, configHash string) *statefulWorkload {
	c := p.Spec.Cache
	ping := redisPingProbe()
	return &statefulWorkload{
		platform: p, name: cacheName, component: ComponentCache, replicas: CacheReplicas(p),
		serviceName: CacheHeadlessName(p), storage: c.Storage, defaultSize: defaultCacheSize,
		uid: redisUID, gracePeriod: redisGrace, configHash: configHash,
		container: corev1.Container{
			Name:  "redis",
			Image: orString(c.Image, platformv1.DefaultRedisImage),
			Command: []string{"redis-server", redisConfigDir + "/" + RedisConfKey,
				// Each node announces its stable DNS name, not its pod IP, so
				// clients' redirects survive pods coming back with new IPs.
				"--cluster-announce-hostname", fmt.Sprintf("$(POD_NAME).%s.%s.svc", CacheHeadlessName(p), p.Namespace)},
			Env: []corev1.EnvVar{
				fieldEnv("POD_NAME", "metadata.name"),
				secretEnv("REDISCLI_AUTH", CacheName(p), KeyPassword),
			},
			Ports: []corev1.ContainerPort{
				{Name: "redis", ContainerPort: RedisPort, Protocol: corev1.ProtocolTCP},
				{Name: "cluster-bus", ContainerPort: RedisClusterBus, Protocol: corev1.ProtocolTCP},
			},
			Resources:      withDefaultRequests(c.Resources),
			ReadinessProbe: ping,
			LivenessProbe:  withInitialDelay(ping.DeepCopy(), 15),
			VolumeMounts:   redisMounts(),
		},
		volumes:  redisVolumes(CacheName(p)),
		sidecars: redisExporter(p),
	}
}

// redisPingProbe is the readiness and liveness check of every Redis; the
// password comes from REDISCLI_AUTH in the environment, never the command line.
func redisPingProbe() *corev1.Probe {
	return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{
		Command: []string{"sh", "-c", "redis-cli -h 127.0.0.1 -p 6379 ping | grep -q PONG"},
	}}, PeriodSeconds: 10, TimeoutSeconds: 5}
}

// redisMounts: the data volume, redis.conf from the ConfigMap and the
// included auth.conf from the Secret, the layout both Redis configs expect.
func redisMounts() []corev1.VolumeMount {
	return []corev1.VolumeMount{
		{Name: dataVolumeName, MountPath: redisDataDir},
		{Name: "config", MountPath: redisConfigDir + "/" + RedisConfKey, SubPath: RedisConfKey, ReadOnly: true},
		{Name: "auth", MountPath: redisAuthDir, ReadOnly: true},
	}
}

// redisVolumes are the ConfigMap and the Secret (only auth.conf, readable by
// the owner alone) named name.
func redisVolumes(name string) []corev1.Volume {
	return []corev1.Volume{
		configMapVolume("config", name),
		{Name: "auth", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: name, DefaultMode: ptr.To[int32](0o400),
			Items: []corev1.KeyToPath{{Key: RedisAuthConfKey, Path: RedisAuthConfKey}},
		}}},
	}
}
