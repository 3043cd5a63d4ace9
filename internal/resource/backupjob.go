package resource

import (
	"maps"
	"strconv"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiresource "k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/backup"
)

// Backup and restore Jobs, shaped as internal/backup's package documentation
// describes: the operator's static binary is copied by an init container (on
// the operator's image) into an emptyDir, and run beside pg_dump / pg_restore
// in a container on the shard's own PostgreSQL image. The object store's
// Secret is a read-only volume: no key is ever in a command line or an
// environment literal.
const (
	// ComponentBackup labels the pods of backup and restore Jobs; the
	// database's NetworkPolicy has to let them reach PostgreSQL.
	ComponentBackup = "backup"
	// LabelBackup on a backup's Jobs names its ParserPlatformBackup.
	LabelBackup = "platform.vkparser.io/backup"
	// LabelRestoreSet on a restore Job names the set it restores.
	LabelRestoreSet = "platform.vkparser.io/restore-set"

	// OperatorUID is the user of the operator's distroless image.
	OperatorUID int64 = 65532
	// operatorBinary is the operator's path in its own image.
	operatorBinary = "/parser-operator"

	// ShardJobDeadline bounds a shard's dump or restore: a hung server or
	// store does not hold a Job (and the platform's one backup slot) forever.
	ShardJobDeadline int64 = 12 * 3600
	// FinishJobDeadline bounds the manifest and the pruning.
	FinishJobDeadline int64 = 3600
	// JobTTL keeps finished Jobs (and their pods' logs) for a day.
	JobTTL int32 = 24 * 3600
	// jobBackoffLimit retries a dump once: it rewrites the same objects,
	// and the set is complete only once the manifest is written.
	jobBackoffLimit int32 = 1
)

// Volume names of the Jobs.
const (
	binVolume         = "backup-bin"
	credentialsVolume = "store-credentials" //nolint:gosec // G101: a volume's name, not a credential.
	caVolume          = "store-ca"
	shardMapVolume    = "shard-map"
	// caKey is the key of caSecretRef's Secret.
	caKey = "ca.crt"
)

// BackupJobName is the Job that dumps shard i for backup b.
func BackupJobName(b *platformv1.ParserPlatformBackup, i int) string {
	return Name(b.Name, ShardName(i))
}

// FinishJobName is the Job that writes b's manifest and prunes old sets.
func FinishJobName(b *platformv1.ParserPlatformBackup) string { return Name(b.Name, "finish") }

// RestoreJobName is the Job that restores shard i of platform p.
func RestoreJobName(p *platformv1.ParserPlatform, i int) string {
	return Name(p.Name, "restore", ShardName(i))
}

// BackupCommands are the `parser-operator backup` argument lists for store
// and the platform whose sets these are.
func BackupCommands(store platformv1.ObjectStoreSpec, namespace, platform string) backup.Commands {
	return backup.Commands{
		Store: backup.JobStore{
			Endpoint: store.Endpoint, Bucket: store.Bucket, Prefix: store.Prefix, Region: store.Region,
			InsecureSkipTLSVerify: store.InsecureSkipTLSVerify, HasCA: store.CASecretRef != nil,
		},
		Platform: backup.Platform{Namespace: namespace, Name: platform},
	}
}

// RestoreSource is the platform whose sets spec.database.restore reads.
func RestoreSource(p *platformv1.ParserPlatform) backup.Platform {
	r := p.Spec.Database.Restore
	src := backup.Platform{Namespace: p.Namespace, Name: p.Name}
	if r != nil && r.SourcePlatform != "" {
		src.Name = r.SourcePlatform
	}
	if r != nil && r.SourceNamespace != "" {
		src.Namespace = r.SourceNamespace
	}
	return src
}

// ShardBackupJob dumps shard i of p into b's set.
func ShardBackupJob(p *platformv1.ParserPlatform, b *platformv1.ParserPlatformBackup, operatorImage string, i int) *batchv1.Job {
	store := p.Spec.Backup.ObjectStore
	cmds := BackupCommands(store, p.Namespace, p.Name)
	c := shardContainer(p, i, "dump", append([]string{backup.Binary}, cmds.DumpShard(b.Status.BackupSet, i)...))
	job := shardJob(store, operatorImage, c)
	job.ObjectMeta = backupJobMeta(p, b, BackupJobName(b, i))
	job.Spec.Template.Labels = maps.Clone(job.Labels)
	return job
}

// FinishBackupJob writes b's manifest once every shard's dump succeeded
// (init container, so the pruning never runs after a failed manifest) and
// then prunes the sets beyond spec.backup.retain. Both run on the
// operator's image alone; the shard map is mounted for the manifest.
func FinishBackupJob(p *platformv1.ParserPlatform, b *platformv1.ParserPlatformBackup, operatorImage string) *batchv1.Job {
	store := p.Spec.Backup.ObjectStore
	cmds := BackupCommands(store, p.Namespace, p.Name)
	shardMap := ShardMapMountDir + "/" + ShardMapKey
	manifest := operatorContainer("manifest", operatorImage, cmds.Manifest(b.Status.BackupSet, ShardCount(p), shardMap))
	manifest.VolumeMounts = append(storeMounts(store), corev1.VolumeMount{Name: shardMapVolume, MountPath: ShardMapMountDir, ReadOnly: true})
	prune := operatorContainer("prune", operatorImage, cmds.Prune(int(max(p.Spec.Backup.Retain, 1))))
	prune.VolumeMounts = storeMounts(store)
	spec := podSpec(OperatorUID, storeVolumes(store))
	spec.Volumes = append(spec.Volumes, configMapVolume(shardMapVolume, ShardMapName(p)))
	spec.InitContainers = []corev1.Container{manifest}
	spec.Containers = []corev1.Container{prune}
	meta := backupJobMeta(p, b, FinishJobName(b))
	return job(meta, spec, FinishJobDeadline)
}

// ShardRestoreJob restores shard i of p from set setID: the verified dump
// (size and sha256 checked against the manifest before a byte is written)
// piped into pg_restore in one transaction, so a failure leaves the shard
// as it was and a shard that already holds the tables refuses the restore
// instead of mixing two histories.
func ShardRestoreJob(p *platformv1.ParserPlatform, operatorImage, setID string, i int) *batchv1.Job {
	r := p.Spec.Database.Restore
	src := RestoreSource(p)
	cmds := BackupCommands(r.ObjectStore, src.Namespace, src.Name)
	download := append([]string{backup.Binary}, cmds.Download(setID, i, "")...)
	// "$0" "$@" is the download command, passed as arguments so no value is
	// ever parsed by the shell.
	script := `"$0" "$@" | pg_restore --exit-on-error --single-transaction --no-owner --no-privileges --dbname="$PGDATABASE"`
	c := shardContainer(p, i, "restore", append([]string{"bash", "-o", "pipefail", "-c", script}, download...))
	job := shardJob(r.ObjectStore, operatorImage, c)
	job.ObjectMeta = objectMeta(p, RestoreJobName(p, i), "restore-"+ShardName(i), ComponentBackup)
	job.Labels[LabelRestoreSet] = setID
	job.Spec.Template.Labels = maps.Clone(job.Labels)
	// One attempt: a retry after a success whose pod was lost would fail on
	// the existing tables anyway; delete the Job to try again.
	job.Spec.BackoffLimit = ptr.To[int32](0)
	return job
}

func backupJobMeta(p *platformv1.ParserPlatform, b *platformv1.ParserPlatformBackup, name string) metav1.ObjectMeta {
	labels := Labels(p, "backup", ComponentBackup)
	labels[LabelBackup] = Truncate(b.Name)
	return metav1.ObjectMeta{
		Name: name, Namespace: b.Namespace, Labels: labels,
		OwnerReferences: []metav1.OwnerReference{{
			APIVersion: platformv1.GroupVersion.String(), Kind: "ParserPlatformBackup",
			Name: b.Name, UID: b.UID, Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
		}},
	}
}

// shardJob is the Job of a container that runs the copied binary on the
// shard's PostgreSQL image.
func shardJob(store platformv1.ObjectStoreSpec, operatorImage string, c corev1.Container) *batchv1.Job {
	volumes := append(storeVolumes(store), corev1.Volume{Name: binVolume, VolumeSource: corev1.VolumeSource{
		EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: ptr.To(apiresource.MustParse("256Mi"))},
	}})
	spec := podSpec(postgresUID, volumes)
	install := operatorContainer("install-binary", operatorImage, backup.Install())
	install.VolumeMounts = []corev1.VolumeMount{{Name: binVolume, MountPath: backup.BinaryDir}}
	c.VolumeMounts = append(storeMounts(store), corev1.VolumeMount{Name: binVolume, MountPath: backup.BinaryDir, ReadOnly: true},
		corev1.VolumeMount{Name: tmpVolumeName, MountPath: "/tmp"})
	spec.InitContainers = []corev1.Container{install}
	spec.Containers = []corev1.Container{c}
	return job(metav1.ObjectMeta{}, spec, ShardJobDeadline)
}

// shardContainer runs command on shard i's image, connected to shard i by
// libpq's environment, the password from the shard's Secret.
func shardContainer(p *platformv1.ParserPlatform, i int, name string, command []string) corev1.Container {
	secretName := ShardSecretName(p, i)
	c := jobContainer(name, orString(p.Spec.Database.Image, "postgres:16-alpine"), command)
	c.Env = []corev1.EnvVar{
		{Name: "PGHOST", Value: ShardHost(p, i)},
		{Name: "PGPORT", Value: strconv.Itoa(int(PostgresPort))},
		secretEnv("PGUSER", secretName, KeyUsername),
		secretEnv("PGPASSWORD", secretName, KeyPassword),
		secretEnv("PGDATABASE", secretName, KeyDatabase),
		{Name: "PGCONNECT_TIMEOUT", Value: "30"},
		// psql looks for ~/.psqlrc; the image's user may have no home here.
		{Name: "HOME", Value: "/tmp"},
	}
	// pg_dump and the upload hold one multipart part (64 MiB) and pg_dump's
	// own buffers.
	c.Resources = corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: apiresource.MustParse("100m"), corev1.ResourceMemory: apiresource.MustParse("256Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: apiresource.MustParse("1Gi")},
	}
	return c
}

// operatorContainer runs `parser-operator <args>` on the operator's image.
func operatorContainer(name, image string, args []string) corev1.Container {
	c := jobContainer(name, image, append([]string{operatorBinary}, args...))
	c.Resources = corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: apiresource.MustParse("50m"), corev1.ResourceMemory: apiresource.MustParse("64Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: apiresource.MustParse("256Mi")},
	}
	return c
}

func jobContainer(name, image string, command []string) corev1.Container {
	return corev1.Container{
		Name: name, Image: image, Command: command,
		SecurityContext: restrictedContainerSecurityContext(),
		// The last lines of a failing container's output land in its pod's
		// status, where the operator reads why a shard failed without
		// pods/log access.
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
}

// podSpec is the restricted pod every Job runs: no API token (nothing in it
// talks to the API server), never restarted in place.
func podSpec(uid int64, volumes []corev1.Volume) corev1.PodSpec {
	return corev1.PodSpec{
		RestartPolicy:                corev1.RestartPolicyNever,
		AutomountServiceAccountToken: ptr.To(false),
		SecurityContext:              restrictedPodSecurityContext(uid),
		Volumes:                      append(volumes, tmpVolume()),
	}
}

func job(meta metav1.ObjectMeta, spec corev1.PodSpec, deadline int64) *batchv1.Job {
	return &batchv1.Job{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: meta,
		Spec: batchv1.JobSpec{
			BackoffLimit:            ptr.To(jobBackoffLimit),
			ActiveDeadlineSeconds:   ptr.To(deadline),
			TTLSecondsAfterFinished: ptr.To(JobTTL),
			Template:                corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: maps.Clone(meta.Labels)}, Spec: spec},
		},
	}
}

// storeVolumes are the object store's Secret (and CA) as read-only files,
// readable by the pod's group only (fsGroup).
func storeVolumes(store platformv1.ObjectStoreSpec) []corev1.Volume {
	out := []corev1.Volume{{Name: credentialsVolume, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
		SecretName: store.SecretRef.Name, DefaultMode: ptr.To[int32](0o440),
	}}}}
	if store.CASecretRef != nil {
		out = append(out, corev1.Volume{Name: caVolume, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: store.CASecretRef.Name, DefaultMode: ptr.To[int32](0o444),
			Items: []corev1.KeyToPath{{Key: caKey, Path: "ca.crt"}},
		}}})
	}
	return out
}

func storeMounts(store platformv1.ObjectStoreSpec) []corev1.VolumeMount {
	out := []corev1.VolumeMount{{Name: credentialsVolume, MountPath: backup.CredentialsDir, ReadOnly: true}}
	if store.CASecretRef != nil {
		out = append(out, corev1.VolumeMount{Name: caVolume, MountPath: backup.CADir, ReadOnly: true})
	}
	return out
}
