package resource

import (
	"slices"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	platformv1 "github.com/vkparser/parser-operator/api/v1alpha1"
	"github.com/vkparser/parser-operator/internal/backup"
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
