package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ParserPlatformBackup is one backup of a platform's database shards to its
// object store (spec.backup.objectStore): a pg_dump per shard, taken in one
// snapshot per shard, gathered into a backup set that is complete only once
// its manifest is written. The platform's schedule creates one per run;
// create one yourself for an on-demand backup. Deleting it leaves the set in
// the store (retention prunes sets there).
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ppbackup,categories=all
// +kubebuilder:printcolumn:name="Platform",type=string,JSONPath=`.spec.platform`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Set",type=string,JSONPath=`.status.backupSet`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ParserPlatformBackup struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is the backup's name, namespace, labels and annotations.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec names the platform to back up.
	// +required
	Spec ParserPlatformBackupSpec `json:"spec,omitzero"`

	// status is the backup's progress and, once Completed, its set.
	// +optional
	Status ParserPlatformBackupStatus `json:"status,omitempty"`
}

// ParserPlatformBackupList is a list of ParserPlatformBackups.
//
// +kubebuilder:object:root=true
type ParserPlatformBackupList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ParserPlatformBackup `json:"items"`
}

// ParserPlatformBackupSpec names the platform a backup is of.
type ParserPlatformBackupSpec struct {
	// platform is the name of the ParserPlatform, in this namespace, whose
	// shards are backed up to its spec.backup.objectStore. It cannot change:
	// a backup is of one platform.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.platform cannot change: a backup is of one platform; create another ParserPlatformBackup"
	// +required
	Platform string `json:"platform,omitempty"`
}

// BackupPhase is where a ParserPlatformBackup is.
// +kubebuilder:validation:Enum=Pending;Running;Completed;Failed
type BackupPhase string

const (
	// BackupPending: not started yet (another backup of the platform runs).
	BackupPending BackupPhase = "Pending"
	// BackupRunning: the shard Jobs or the finishing Job run.
	BackupRunning BackupPhase = "Running"
	// BackupCompleted: the set's manifest is written and verified.
	BackupCompleted BackupPhase = "Completed"
	// BackupFailed: a Job failed; message names the shard and the reason.
	BackupFailed BackupPhase = "Failed"
)

// ParserPlatformBackupStatus is what the operator did and found.
type ParserPlatformBackupStatus struct {
	// phase is Pending, Running, Completed or Failed.
	// +optional
	Phase BackupPhase `json:"phase,omitempty"`

	// backupSet is the ID of the set in the object store
	// (20261201T203000Z-1a2b3c), chosen when the backup starts.
	// +optional
	BackupSet string `json:"backupSet,omitempty"`

	// startedAt is when the backup left Pending.
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`

	// completedAt is when it became Completed or Failed.
	// +optional
	CompletedAt *metav1.Time `json:"completedAt,omitempty"`

	// shards are the set's dumps as its manifest lists them.
	// +listType=map
	// +listMapKey=index
	// +optional
	Shards []BackupShardStatus `json:"shards,omitempty"`

	// message says what the backup waits for, or which shard failed and why.
	// +optional
	Message string `json:"message,omitempty"`
}

// BackupShardStatus is one shard's dump in a complete set.
type BackupShardStatus struct {
	// index of the shard.
	// +required
	Index int32 `json:"index"`
	// object is the dump's key in the bucket.
	// +required
	Object string `json:"object"`
	// size of the dump in bytes.
	// +required
	Size int64 `json:"size"`
	// checksum of the dump: "sha256:<hex>".
	// +required
	Checksum string `json:"checksum"`
	// lsn is the WAL position the dump is consistent at.
	// +optional
	LSN string `json:"lsn,omitempty"`
	// consistentAt is the shard server's clock when the dump's snapshot was
	// taken: the dump holds the transactions committed before it.
	// +optional
	ConsistentAt *metav1.Time `json:"consistentAt,omitempty"`
}

// BackupSpec schedules backups of the platform's shards.
type BackupSpec struct {
	// schedule is a cron expression (minute hour day-of-month month
	// day-of-week, or @hourly, @daily, @every 6h; CRON_TZ=Area/City first for
	// a time zone other than UTC). Each run creates a ParserPlatformBackup.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self.matches('^(CRON_TZ=[^ ]+ +)?(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|@every +[0-9][0-9a-z.]*|[^ @]+( +[^ ]+){4})$')",message="backup.schedule must be a cron expression of five fields (minute hour day-of-month month day-of-week, e.g. \"0 3 * * *\"), or @hourly, @daily, @weekly, @monthly, @yearly, @every <duration>"
	// +required
	Schedule string `json:"schedule,omitempty"`

	// retain is the number of complete backup sets kept in the object store;
	// older sets (and incomplete ones older than the newest complete set)
	// are deleted after each backup.
	// +default=7
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +optional
	Retain int32 `json:"retain,omitempty"`

	// objectStore is where the sets are written.
	// +required
	ObjectStore ObjectStoreSpec `json:"objectStore,omitzero"`
}

// ObjectStoreSpec is an S3-compatible bucket. Sets live under
// <prefix>/<namespace>/<platform>/<set>/.
//
// +kubebuilder:validation:XValidation:rule="!(has(self.insecureSkipTLSVerify) && self.insecureSkipTLSVerify && has(self.caSecretRef))",message="objectStore: insecureSkipTLSVerify and caSecretRef contradict each other (trust any certificate, or only this CA): set one",fieldPath=".insecureSkipTLSVerify"
type ObjectStoreSpec struct {
	// endpoint is the store's URL: https://s3.example.com[:port] (http:// only
	// for a store inside a trusted network). No path: bucket and prefix are
	// separate fields.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="self.matches('^(https?://)?[^/?#@ ]+/?$')",message="objectStore.endpoint must be scheme://host[:port] (https:// or http://) with no path, query or credentials: the bucket and prefix are separate fields"
	// +required
	Endpoint string `json:"endpoint,omitempty"`

	// bucket must exist; the operator never creates buckets.
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9][a-z0-9.-]*[a-z0-9]$`
	// +required
	Bucket string `json:"bucket,omitempty"`

	// prefix is prepended to every key.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Prefix string `json:"prefix,omitempty"`

	// region is sent in request signatures; left out, it is discovered.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	Region string `json:"region,omitempty"`

	// secretRef names a Secret in the platform's namespace with the keys
	// accessKeyId and secretAccessKey. Jobs mount it read-only; its values
	// never appear in a command line or an environment literal.
	// +required
	SecretRef SecretRef `json:"secretRef,omitzero"`

	// insecureSkipTLSVerify accepts any certificate from the endpoint: for
	// test stores only.
	// +optional
	InsecureSkipTLSVerify bool `json:"insecureSkipTLSVerify,omitempty"`

	// caSecretRef names a Secret with ca.crt, the only CA trusted for the
	// endpoint's certificate.
	// +optional
	CASecretRef *SecretRef `json:"caSecretRef,omitempty"`
}

// SecretRef names a Secret in the platform's namespace.
type SecretRef struct {
	// name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name,omitempty"`
}

// RestoreSpec says which backup set fills the shards at creation.
type RestoreSpec struct {
	// objectStore holds the set (the same shape as spec.backup.objectStore;
	// sets are looked up under <prefix>/<namespace>/<sourcePlatform>/).
	// +required
	ObjectStore ObjectStoreSpec `json:"objectStore,omitzero"`

	// backupSet is a set ID (20261201T203000Z-1a2b3c) or latest, the newest
	// complete set. It is resolved once; every shard restores from that set.
	// +kubebuilder:validation:XValidation:rule="self == 'latest' || self.matches('^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$')",message="database.restore.backupSet must be latest or a set ID such as 20261201T203000Z-1a2b3c (UTC start time, 6 hex digits), as ParserPlatformBackup status.backupSet shows"
	// +required
	BackupSet string `json:"backupSet"`

	// sourcePlatform is the platform whose sets are read, in sourceNamespace;
	// left out, this platform's own name (and namespace): a platform
	// re-created from its own backups.
	// +kubebuilder:validation:MaxLength=63
	// +optional
	SourcePlatform string `json:"sourcePlatform,omitempty"`

	// sourceNamespace is the namespace sourcePlatform lived in; left out,
	// this platform's.
	// +kubebuilder:validation:MaxLength=63
	// +optional
	SourceNamespace string `json:"sourceNamespace,omitempty"`
}

// BackupStatus is the platform's view of its backups.
type BackupStatus struct {
	// lastCompleted is when the newest Completed backup finished.
	// +optional
	LastCompleted *metav1.Time `json:"lastCompleted,omitempty"`

	// lastCompletedSet is that backup's set ID.
	// +optional
	LastCompletedSet string `json:"lastCompletedSet,omitempty"`

	// lastScheduled is the schedule time of the newest run the schedule
	// created a ParserPlatformBackup for.
	// +optional
	LastScheduled *metav1.Time `json:"lastScheduled,omitempty"`
}

// RestoreStatus records the restore at creation.
type RestoreStatus struct {
	// backupSet is the set restored from ("latest" resolved to its ID).
	// +optional
	BackupSet string `json:"backupSet,omitempty"`

	// shards is the set's shard count, which equals database.shards.
	// +optional
	Shards int32 `json:"shards,omitempty"`

	// startedAt is when the set was resolved and the restore began.
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`

	// completedAt is when every shard's restore Job succeeded. Once set, the
	// platform is never restored again and its apps may start.
	// +optional
	CompletedAt *metav1.Time `json:"completedAt,omitempty"`
}

func init() {
	register(&ParserPlatformBackup{}, &ParserPlatformBackupList{})
}
