package resource

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/backup"
	"github.com/vkparser/parser-operator/internal/backup/pgtest"
	"github.com/vkparser/parser-operator/internal/backup/s3test"
)

const testOperatorImage = "ghcr.io/vkparser/parser-operator:v1.2.3"

func backedUpPlatform() *platformv1.ParserPlatform {
	p := samplePlatform()
	p.Spec.Database.Shards = 3
	store := platformv1.ObjectStoreSpec{
		Endpoint: "https://s3.example.com", Bucket: "backups", Prefix: "prod", Region: "eu-1",
		SecretRef: platformv1.SecretRef{Name: "s3"}, CASecretRef: &platformv1.SecretRef{Name: "s3-ca"},
	}
	p.Spec.Backup = &platformv1.BackupSpec{Schedule: "0 3 * * *", Retain: 5, ObjectStore: store}
	p.Spec.Database.Restore = &platformv1.RestoreSpec{ObjectStore: store, BackupSet: backup.Latest}
	return p
}

func sampleBackup() *platformv1.ParserPlatformBackup {
	return &platformv1.ParserPlatformBackup{
		ObjectMeta: metav1.ObjectMeta{Name: "vk-nightly", Namespace: "parser", UID: types.UID("b-uid")},
		Spec:       platformv1.ParserPlatformBackupSpec{Platform: "vk"},
		Status:     platformv1.ParserPlatformBackupStatus{BackupSet: "20261201T030000Z-1a2b3c"},
	}
}

// allJobs are one of each Job the controller builds.
func allJobs() map[string]*batchv1.Job {
	p, b := backedUpPlatform(), sampleBackup()
	return map[string]*batchv1.Job{
		"dump":    ShardBackupJob(p, b, testOperatorImage, 2),
		"finish":  FinishBackupJob(p, b, testOperatorImage),
		"restore": ShardRestoreJob(p, testOperatorImage, "20261201T030000Z-1a2b3c", 1),
	}
}

func TestBackupJobsMeetPodSecurityRestricted(t *testing.T) {
	for name, job := range allJobs() {
		t.Run(name, func(t *testing.T) {
			if v := violations(t, &job.Spec.Template); len(v) > 0 {
				t.Errorf("violates Pod Security restricted:\n  %s", strings.Join(v, "\n  "))
			}
			spec := job.Spec.Template.Spec
			for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
				if !ptr.Deref(c.SecurityContext.ReadOnlyRootFilesystem, false) {
					t.Errorf("container %s: root file system is writable", c.Name)
				}
			}
			if spec.RestartPolicy != corev1.RestartPolicyNever || ptr.Deref(spec.AutomountServiceAccountToken, true) {
				t.Errorf("restartPolicy %q, automountServiceAccountToken %v", spec.RestartPolicy, spec.AutomountServiceAccountToken)
			}
			if job.Spec.ActiveDeadlineSeconds == nil || job.Spec.TTLSecondsAfterFinished == nil || ptr.Deref(job.Spec.BackoffLimit, 6) > 1 {
				t.Errorf("deadline %v, ttl %v, backoffLimit %v", job.Spec.ActiveDeadlineSeconds, job.Spec.TTLSecondsAfterFinished, job.Spec.BackoffLimit)
			}
		})
	}
	// The control: the same evaluator refuses one of them made unsafe.
	unsafe := allJobs()["dump"]
	unsafe.Spec.Template.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = ptr.To(true)
	if len(violations(t, &unsafe.Spec.Template)) == 0 {
		t.Fatal("the evaluator accepts a container allowed to escalate privileges")
	}
}

// TestBackupJobsCarryNoSecretValue: credentials reach the pods only as a
// mounted Secret or a secretKeyRef, never as an argument or env literal.
func TestBackupJobsCarryNoSecretValue(t *testing.T) {
	for name, job := range allJobs() {
		spec := job.Spec.Template.Spec
		for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
			for _, arg := range slices.Concat(c.Command, c.Args) {
				lower := strings.ToLower(arg)
				if strings.Contains(lower, "secret") && !strings.HasPrefix(arg, "/etc/parser-backup/") || strings.Contains(lower, "password") {
					t.Errorf("%s/%s: argument %q names a secret", name, c.Name, arg)
				}
			}
			for _, e := range c.Env {
				if strings.Contains(e.Name, "PASSWORD") || strings.Contains(e.Name, "SECRET") || strings.Contains(e.Name, "AWS_") {
					if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
						t.Errorf("%s/%s: env %s is not a secretKeyRef", name, c.Name, e.Name)
					}
				}
			}
		}
		var mounted bool
		for _, v := range spec.Volumes {
			if v.Secret != nil && v.Secret.SecretName == "s3" {
				mounted = true
			}
		}
		if !mounted {
			t.Errorf("%s: the object store Secret is not mounted", name)
		}
	}
}

func TestShardBackupJobShape(t *testing.T) {
	p, b := backedUpPlatform(), sampleBackup()
	job := ShardBackupJob(p, b, testOperatorImage, 2)
	if job.Name != "vk-nightly-db-2" {
		t.Errorf("name %q", job.Name)
	}
	if ref := metav1.GetControllerOf(job); ref == nil || ref.Kind != "ParserPlatformBackup" || ref.UID != b.UID {
		t.Errorf("controller %+v, want the ParserPlatformBackup", ref)
	}
	spec := job.Spec.Template.Spec
	install, dump := spec.InitContainers[0], spec.Containers[0]
	if install.Image != testOperatorImage || !slices.Equal(install.Command, append([]string{"/parser-operator"}, backup.Install()...)) {
		t.Errorf("install container %s %v", install.Image, install.Command)
	}
	if dump.Image != "postgres:16-alpine" || dump.Command[0] != backup.Binary {
		t.Errorf("dump container %s %v", dump.Image, dump.Command)
	}
	want := BackupCommands(p.Spec.Backup.ObjectStore, "parser", "vk").DumpShard("20261201T030000Z-1a2b3c", 2)
	if !slices.Equal(dump.Command[1:], want) {
		t.Errorf("dump command %v, want %v", dump.Command[1:], want)
	}
	if !slices.Contains(dump.Command, "--ca-file") {
		t.Errorf("caSecretRef is set but the command has no --ca-file: %v", dump.Command)
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range dump.Env {
		env[e.Name] = e
	}
	if env["PGHOST"].Value != ShardHost(p, 2) || env["PGPASSWORD"].ValueFrom.SecretKeyRef.Name != ShardSecretName(p, 2) {
		t.Errorf("env %+v", dump.Env)
	}
	mounts := map[string]string{}
	for _, m := range dump.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	for _, path := range []string{backup.BinaryDir, backup.CredentialsDir, backup.CADir, "/tmp"} {
		if mounts[path] == "" {
			t.Errorf("nothing mounted at %s: %v", path, mounts)
		}
	}
	if job.Spec.Template.Labels[LabelComponent] != ComponentBackup || job.Labels[LabelBackup] != b.Name {
		t.Errorf("labels %v / %v", job.Labels, job.Spec.Template.Labels)
	}
}

func TestFinishBackupJobWritesTheManifestBeforePruning(t *testing.T) {
	p, b := backedUpPlatform(), sampleBackup()
	spec := FinishBackupJob(p, b, testOperatorImage).Spec.Template.Spec
	if len(spec.InitContainers) != 1 || len(spec.Containers) != 1 {
		t.Fatalf("want manifest as the init container and prune as the container, got %d + %d", len(spec.InitContainers), len(spec.Containers))
	}
	cmds := BackupCommands(p.Spec.Backup.ObjectStore, "parser", "vk")
	manifest := append([]string{"/parser-operator"}, cmds.Manifest(b.Status.BackupSet, 3, ShardMapMountDir+"/"+ShardMapKey)...)
	prune := append([]string{"/parser-operator"}, cmds.Prune(5)...)
	if !slices.Equal(spec.InitContainers[0].Command, manifest) || !slices.Equal(spec.Containers[0].Command, prune) {
		t.Errorf("commands %v then %v", spec.InitContainers[0].Command, spec.Containers[0].Command)
	}
	if *spec.SecurityContext.RunAsUser != OperatorUID {
		t.Errorf("runs as %d", *spec.SecurityContext.RunAsUser)
	}
}

func TestShardRestoreJobPipesTheVerifiedDownloadUnderPipefail(t *testing.T) {
	p := backedUpPlatform()
	p.Spec.Database.Restore.SourcePlatform = "old-vk"
	job := ShardRestoreJob(p, testOperatorImage, "20261201T030000Z-1a2b3c", 1)
	c := job.Spec.Template.Spec.Containers[0]
	if !slices.Equal(c.Command[:3], []string{"bash", "-o", "pipefail"}) || !strings.Contains(c.Command[4], "pg_restore --exit-on-error --single-transaction") {
		t.Errorf("command %v", c.Command)
	}
	want := BackupCommands(p.Spec.Database.Restore.ObjectStore, "parser", "old-vk").Download("20261201T030000Z-1a2b3c", 1, "")
	if c.Command[5] != backup.Binary || !slices.Equal(c.Command[6:], want) {
		t.Errorf("download %v, want %v", c.Command[5:], want)
	}
	if ref := metav1.GetControllerOf(job); ref == nil || ref.Kind != "ParserPlatform" {
		t.Errorf("controller %+v", ref)
	}
	if job.Name != "vk-restore-db-1" || *job.Spec.BackoffLimit != 0 {
		t.Errorf("name %s, backoffLimit %d", job.Name, *job.Spec.BackoffLimit)
	}
}

// jobRun runs a Job container's command on this machine the way its pod
// would: the copied binary is the one built here, mounted paths are
// directories of the test, secretKeyRefs resolve to the shard's real values
// and PGHOST/PGPORT point at a real PostgreSQL.
type jobRun struct {
	t        *testing.T
	bin      string
	paths    map[string]string // path in the pod -> path here
	secrets  map[string]string // shard Secret key -> value
	pg       *pgtest.Server
	database string
}

func (r jobRun) run(c corev1.Container) (string, error) {
	args := slices.Clone(c.Command)
	for i, a := range args {
		for in, here := range r.paths {
			if a == in || strings.HasPrefix(a, in+"/") {
				args[i] = here + strings.TrimPrefix(a, in)
			}
		}
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = r.pg.Env(r.database)
	for _, e := range c.Env {
		switch {
		case e.Name == "PGHOST" || e.Name == "PGPORT" || e.Name == "HOME":
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			cmd.Env = append(cmd.Env, e.Name+"="+r.secrets[e.ValueFrom.SecretKeyRef.Key])
		default:
			cmd.Env = append(cmd.Env, e.Name+"="+e.Value)
		}
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestJobCommandsBackUpAndRestoreARealShard runs the exact command lines of
// the dump, finishing and restore Jobs against a real PostgreSQL and a real
// S3 server: the rows of one database come back in a fresh one, and a dump
// corrupted in the store is refused before pg_restore sees a byte.
func TestJobCommandsBackUpAndRestoreARealShard(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the operator and starts PostgreSQL and versitygw")
	}
	pg := pgtest.Start(t)
	srv := s3test.Start(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "parser-operator")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	creds := filepath.Join(dir, "credentials")
	must(t, os.MkdirAll(creds, 0o700))
	must(t, os.WriteFile(filepath.Join(creds, backup.AccessKeyIDKey), []byte(s3test.AccessKeyID), 0o600))
	must(t, os.WriteFile(filepath.Join(creds, backup.SecretAccessKeyKey), []byte(s3test.SecretAccessKey), 0o600))

	p := samplePlatform()
	p.Namespace, p.Spec.Database.Shards = "parser", 1
	store := platformv1.ObjectStoreSpec{Endpoint: srv.Endpoint, Bucket: srv.Bucket, Prefix: "jobs", SecretRef: platformv1.SecretRef{Name: "s3"}}
	p.Spec.Backup = &platformv1.BackupSpec{Schedule: "@daily", Retain: 1, ObjectStore: store}
	p.Spec.Database.Restore = &platformv1.RestoreSpec{ObjectStore: store, BackupSet: backup.Latest}
	shardMap := filepath.Join(dir, "shard-map")
	must(t, os.MkdirAll(shardMap, 0o755))
	must(t, os.WriteFile(filepath.Join(shardMap, ShardMapKey), []byte(ShardMapConfigMap(p).Data[ShardMapKey]), 0o644))
	b := sampleBackup()
	b.Status.BackupSet = backup.NewSetID(time.Now())

	for _, db := range []string{"parser", "fresh", "corrupt"} {
		pg.SQL(t, "postgres", "CREATE DATABASE "+db)
	}
	pg.SQL(t, "parser", "CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users SELECT g, 'user_' || g FROM generate_series(1, 500) g;")
	r := jobRun{t: t, bin: bin, pg: pg, database: "parser",
		paths:   map[string]string{backup.Binary: bin, "/parser-operator": bin, backup.CredentialsDir: creds, ShardMapMountDir: shardMap},
		secrets: map[string]string{KeyUsername: "postgres", KeyPassword: "", KeyDatabase: "parser"},
	}
	if out, err := r.run(ShardBackupJob(p, b, testOperatorImage, 0).Spec.Template.Spec.Containers[0]); err != nil {
		t.Fatalf("dump container: %v\n%s", err, out)
	}
	finish := FinishBackupJob(p, b, testOperatorImage).Spec.Template.Spec
	for _, c := range slices.Concat(finish.InitContainers, finish.Containers) {
		if out, err := r.run(c); err != nil {
			t.Fatalf("%s container: %v\n%s", c.Name, err, out)
		}
	}

	r.database, r.secrets[KeyDatabase] = "fresh", "fresh"
	restore := ShardRestoreJob(p, testOperatorImage, b.Status.BackupSet, 0).Spec.Template.Spec.Containers[0]
	if out, err := r.run(restore); err != nil {
		t.Fatalf("restore container: %v\n%s", err, out)
	}
	if got := pg.SQL(t, "fresh", "SELECT count(*), max(name) FROM users"); got != "500|user_99" {
		t.Errorf("restored rows: %q, want 500|user_99", got)
	}
	// Restoring again over the restored tables is refused, in one
	// transaction: nothing is mixed in.
	if out, err := r.run(restore); err == nil {
		t.Errorf("a second restore into the same database succeeded:\n%s", out)
	}

	key := "jobs/parser/vk/" + b.Status.BackupSet + "/" + backup.ShardDumpObject(0)
	data, err := os.ReadFile(srv.ObjectPath(key))
	must(t, err)
	data[len(data)/2] ^= 0xff
	must(t, os.WriteFile(srv.ObjectPath(key), data, 0o644))
	r.database, r.secrets[KeyDatabase] = "corrupt", "corrupt"
	out, err := r.run(restore)
	if err == nil || !strings.Contains(out, "sha256 differs") || !strings.Contains(out, key) {
		t.Errorf("restore of a corrupted dump: err %v, output:\n%s", err, out)
	}
	if got := pg.SQL(t, "corrupt", "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"); got != "0" {
		t.Errorf("the corrupted dump left %s tables behind", got)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
