package resource

import (
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/sharding"
)

// PostgreSQL settings every shard shares.
const (
	DatabaseName     = "parser"
	DatabaseUser     = "parser"
	ShardMapKey      = "shards.json"
	ShardMapMountDir = "/etc/vk-parser/shard-map"
	// postgresUID is the postgres user of the official Alpine images.
	postgresUID       int64 = 70
	postgresDataDir         = "/var/lib/postgresql/data"
	defaultShardSize        = "10Gi"
	postgresGraceSecs int64 = 60
)

// Keys of a shard's credentials Secret.
const (
	KeyUsername = "username"
	KeyPassword = "password"
	KeyDatabase = "database"
	KeyURI      = "uri"
)

// ShardName is the identity of shard i inside the platform: "db-<i>".
func ShardName(i int) string { return "db-" + strconv.Itoa(i) }

// ShardStatefulSetName is the StatefulSet (and headless Service) of shard i.
func ShardStatefulSetName(p *platformv1.ParserPlatform, i int) string {
	return StatefulSetName(p.Name, ShardName(i))
}

// ShardSecretName is the credentials Secret of shard i.
func ShardSecretName(p *platformv1.ParserPlatform, i int) string {
	return Name(p.Name, ShardName(i), "credentials")
}

// ShardMapName is the shard map ConfigMap.
func ShardMapName(p *platformv1.ParserPlatform) string { return Name(p.Name, "shard-map") }

// ShardHost is the DNS name of shard i's headless Service.
func ShardHost(p *platformv1.ParserPlatform, i int) string {
	return fmt.Sprintf("%s.%s.svc", ShardStatefulSetName(p, i), p.Namespace)
}

// ShardCount is the number of shards (the CRD defaults it to 1).
func ShardCount(p *platformv1.ParserPlatform) int {
	return int(orInt32(p.Spec.Database.Shards, 1))
}

// databaseGeneratedKeys: one password per shard.
func databaseGeneratedKeys(p *platformv1.ParserPlatform) []SecretKey {
	keys := make([]SecretKey, 0, ShardCount(p))
	for i := range ShardCount(p) {
		keys = append(keys, SecretKey{Secret: ShardSecretName(p, i), Key: KeyPassword})
	}
	return keys
}

// databaseChildren: per shard a credentials Secret, a headless Service and a
// StatefulSet; and the shard map every app reads.
func databaseChildren(p *platformv1.ParserPlatform, creds Credentials) []client.Object {
	out := []client.Object{ShardMapConfigMap(p)}
	for i := range ShardCount(p) {
		name := ShardName(i)
		out = append(out,
			shardSecret(p, i, creds.Get(ShardSecretName(p, i), KeyPassword)),
			headlessService(p, ShardStatefulSetName(p, i), name, ComponentDatabase, servicePort("postgres", PostgresPort)),
			shardWorkload(p, i, creds).StatefulSet(),
		)
	}
	return out
}

func shardSecret(p *platformv1.ParserPlatform, i int, password string) *corev1.Secret {
	uri := fmt.Sprintf("postgresql://%s:%s@%s:%d/%s", DatabaseUser, password, ShardHost(p, i), PostgresPort, DatabaseName)
	return secret(p, ShardSecretName(p, i), ShardName(i), ComponentDatabase, map[string]string{
		KeyUsername: DatabaseUser, KeyPassword: password, KeyDatabase: DatabaseName, KeyURI: uri,
	})
}

// Probes of a shard. Readiness logs in as the apps do: over TCP to the pod's
// own IP (the image trusts 127.0.0.1 without a password, so a loopback check
// would pass with any password), with the password of the Secret, so a shard
// whose roles do not take that password is not Ready and DatabaseReady says
// so. Liveness only asks whether the server answers: a wrong password is no
// reason to restart a database.
var (
	shardReadyCommand = []string{"sh", "-c", `export PGPASSWORD="$POSTGRES_PASSWORD"; ` +
		`exec psql "host=$POD_IP port=5432 user=$POSTGRES_USER dbname=$POSTGRES_DB connect_timeout=3" -tAqc "SELECT 1" >/dev/null`}
	shardLiveCommand = []string{"sh", "-c", `exec pg_isready -h 127.0.0.1 -p 5432 -U "$POSTGRES_USER" -d "$POSTGRES_DB"`}
)

func shardWorkload(p *platformv1.ParserPlatform, i int, creds Credentials) *statefulWorkload {
	db := p.Spec.Database
	secretName := ShardSecretName(p, i)
	probe := func(command []string, period int32) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: command}}, PeriodSeconds: period, TimeoutSeconds: 5}
	}
	w := &statefulWorkload{
		platform: p, name: ShardName(i), component: ComponentDatabase, replicas: 1,
		serviceName: ShardStatefulSetName(p, i), storage: db.Storage, defaultSize: defaultShardSize,
		uid: postgresUID, gracePeriod: postgresGraceSecs,
		// The pod reads the password (env, and the readiness probe with it).
		configHash: ConfigHash(creds.Digest(SecretKey{Secret: secretName, Key: KeyPassword})),
		container: corev1.Container{
			Name:  "postgres",
			Image: orString(db.Image, "postgres:16-alpine"),
			Env: []corev1.EnvVar{
				fieldEnv("POD_IP", "status.podIP"),
				secretEnv("POSTGRES_USER", secretName, KeyUsername),
				secretEnv("POSTGRES_PASSWORD", secretName, KeyPassword),
				secretEnv("POSTGRES_DB", secretName, KeyDatabase),
				// A subdirectory: the volume's root may hold lost+found, which initdb refuses.
				{Name: "PGDATA", Value: postgresDataDir + "/pgdata"},
			},
			Ports:          []corev1.ContainerPort{{Name: "postgres", ContainerPort: PostgresPort, Protocol: corev1.ProtocolTCP}},
			Resources:      withDefaultRequests(db.Resources),
			ReadinessProbe: probe(shardReadyCommand, 10),
			LivenessProbe:  withInitialDelay(probe(shardLiveCommand, 20), 30),
			VolumeMounts: []corev1.VolumeMount{
				{Name: dataVolumeName, MountPath: postgresDataDir},
				{Name: "run", MountPath: "/var/run/postgresql"},
			},
		},
		volumes:  []corev1.Volume{{Name: "run", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
		sidecars: postgresExporter(p),
	}
	if len(w.sidecars) > 0 {
		w.container.Lifecycle = monitoringRoleHook()
	}
	return w
}

// ShardMap is the routing document of the platform: md5(key) mod N over the
// shards in index order, as the services' DatabaseSharding does
// (docs/architecture.md, "Database shards").
func ShardMap(p *platformv1.ParserPlatform) *sharding.Map {
	shards := make([]sharding.Shard, 0, ShardCount(p))
	for i := range ShardCount(p) {
		shards = append(shards, sharding.Shard{
			Index: i, Host: ShardHost(p, i), Port: int(PostgresPort), Database: DatabaseName, SecretName: ShardSecretName(p, i),
		})
	}
	return sharding.NewMap(shards...)
}

// ShardMapConfigMap holds shards.json, mounted into every service and worker.
func ShardMapConfigMap(p *platformv1.ParserPlatform) *corev1.ConfigMap {
	data, err := sharding.Render(ShardMap(p))
	if err != nil { // the map is built here from validated spec values
		panic(fmt.Sprintf("rendering the shard map: %v", err))
	}
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: objectMeta(p, ShardMapName(p), "shard-map", ComponentDatabase),
		Data:       map[string]string{ShardMapKey: string(data)},
	}
}

func withInitialDelay(p *corev1.Probe, seconds int32) *corev1.Probe {
	p.InitialDelaySeconds = seconds
	return p
}
