package resource

import (
	"strconv"

	corev1 "k8s.io/api/core/v1"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
)

// Where app containers find what the platform provides them.
const (
	registryVolumeName      = "registry"
	shardMapVolumeName      = "shard-map"
	dbCredentialsVolumeName = "db-credentials"
	// DBCredentialsDir holds shard-<i>/{username,password,database,uri}.
	DBCredentialsDir = "/etc/vk-parser/db" //nolint:gosec // G101: a mount path, not a credential.
)

// appConfig is what every app container (services, gateway, workers) gets
// from the platform: the registry, the shard map and every shard's
// credentials as files, the cache and broker as environment variables
// (secrets by reference, never inline). hash covers the mounted configuration
// and the generated values, so a change of either rolls the pods.
type appConfig struct {
	env     []corev1.EnvVar
	volumes []corev1.Volume
	mounts  []corev1.VolumeMount
	hash    string
}

func newAppConfig(p *platformv1.ParserPlatform, creds Credentials) appConfig {
	env := []corev1.EnvVar{
		{Name: "PLATFORM_NAME", Value: p.Name},
		{Name: "SERVICE_REGISTRY_FILE", Value: RegistryMountPath + "/" + RegistryFileKey},
		{Name: "SHARD_MAP_FILE", Value: ShardMapMountDir + "/" + ShardMapKey},
		{Name: "DB_CREDENTIALS_DIR", Value: DBCredentialsDir},
		{Name: "CACHE_NODES", Value: CacheEndpoint(p)},
		secretEnv("CACHE_PASSWORD", CacheName(p), KeyPassword),
		{Name: "METRICS_PORT", Value: itoa(p.Spec.MetricsPort())},
	}
	if hasQueues(p) {
		env = append(env, secretEnv("CELERY_BROKER_URL", BrokerName(p), KeyBrokerURL))
	}
	return appConfig{
		env: env,
		volumes: []corev1.Volume{
			configMapVolume(registryVolumeName, RegistryName(p)),
			configMapVolume(shardMapVolumeName, ShardMapName(p)),
			dbCredentialsVolume(p),
		},
		mounts: []corev1.VolumeMount{
			{Name: registryVolumeName, MountPath: RegistryMountPath, ReadOnly: true},
			{Name: shardMapVolumeName, MountPath: ShardMapMountDir, ReadOnly: true},
			{Name: dbCredentialsVolumeName, MountPath: DBCredentialsDir, ReadOnly: true},
		},
		hash: ConfigHash(RegistryConfigMap(p).Data, ShardMapConfigMap(p).Data, creds.Digest(appReadKeys(p)...)),
	}
}

// appReadKeys are the generated values apps read: every one but the Erlang
// cookie, which only broker nodes use, and the operator's broker password,
// which only the operator uses.
func appReadKeys(p *platformv1.ParserPlatform) []SecretKey {
	var out []SecretKey
	for _, k := range GeneratedKeys(p) {
		if k.Key != KeyErlangCookie && k.Secret != BrokerUsersSecretName(p) {
			out = append(out, k)
		}
	}
	return out
}

// dbCredentialsVolume projects every shard's credentials Secret into one
// directory: shard-0/, shard-1/, ... as the shard map's indexes.
func dbCredentialsVolume(p *platformv1.ParserPlatform) corev1.Volume {
	var sources []corev1.VolumeProjection
	for i := range ShardCount(p) {
		dir := "shard-" + strconv.Itoa(i) + "/"
		var items []corev1.KeyToPath
		for _, key := range []string{KeyUsername, KeyPassword, KeyDatabase, KeyURI} {
			items = append(items, corev1.KeyToPath{Key: key, Path: dir + key})
		}
		sources = append(sources, corev1.VolumeProjection{Secret: &corev1.SecretProjection{
			LocalObjectReference: corev1.LocalObjectReference{Name: ShardSecretName(p, i)}, Items: items,
		}})
	}
	return corev1.Volume{Name: dbCredentialsVolumeName, VolumeSource: corev1.VolumeSource{
		Projected: &corev1.ProjectedVolumeSource{Sources: sources},
	}}
}
