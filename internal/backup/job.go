package backup

import "strconv"

// Paths of the Job shape the operator's backup and restore Jobs use (see
// the package documentation); the controller mounts volumes at them and the
// commands below read from them.
const (
	// BinaryDir is an emptyDir: an init container running the operator's
	// image copies the (static) binary there with `backup install`, and the
	// PostgreSQL container, which has pg_dump but not this binary, runs it.
	BinaryDir = "/backup-bin"
	// Binary is the copied binary's path.
	Binary = BinaryDir + "/parser-operator"
	// CredentialsDir is where the objectStore's secretRef Secret is mounted
	// (files accessKeyId, secretAccessKey).
	CredentialsDir = "/etc/parser-backup/credentials" //nolint:gosec // G101: a mount path, not a credential.
	// CADir is where caSecretRef is mounted; CAFile is its ca.crt.
	CADir  = "/etc/parser-backup/ca"
	CAFile = CADir + "/ca.crt"
)

// JobStore is the non-secret half of an object store as a Job's command
// line carries it; the secret half is a mounted Secret at CredentialsDir.
type JobStore struct {
	Endpoint, Bucket, Prefix, Region string
	InsecureSkipTLSVerify            bool
	// HasCA says caSecretRef is mounted at CADir.
	HasCA bool
}

// Commands builds the argument lists of `parser-operator backup` for one
// platform's Jobs, so the controller never spells a flag by hand; the cmd
// tests parse every one of them with the real flag set.
type Commands struct {
	Store    JobStore
	Platform Platform
}

func (c Commands) common(command string) []string {
	args := []string{"backup", command,
		"--endpoint", c.Store.Endpoint, "--bucket", c.Store.Bucket,
		"--credentials-dir", CredentialsDir,
		"--namespace", c.Platform.Namespace, "--platform", c.Platform.Name}
	if c.Store.Prefix != "" {
		args = append(args, "--prefix", c.Store.Prefix)
	}
	if c.Store.Region != "" {
		args = append(args, "--region", c.Store.Region)
	}
	if c.Store.InsecureSkipTLSVerify {
		args = append(args, "--insecure-skip-tls-verify")
	}
	if c.Store.HasCA {
		args = append(args, "--ca-file", CAFile)
	}
	return args
}

// DumpShard is the backup container's command (after Binary): psql and
// pg_dump come from the PostgreSQL image, the connection from PG* env.
func (c Commands) DumpShard(setID string, shard int) []string {
	return append(c.common("dump-shard"), "--set", setID, "--shard", strconv.Itoa(shard))
}

// Manifest completes a set once every DumpShard Job succeeded; shardMap is
// the path of the platform's shard map ConfigMap, mounted.
func (c Commands) Manifest(setID string, shards int, shardMap string) []string {
	return append(c.common("manifest"), "--set", setID, "--shards", strconv.Itoa(shards), "--shard-map", shardMap)
}

// Download writes a shard's verified dump to out ("" for stdout, to pipe
// into pg_restore under pipefail).
func (c Commands) Download(setID string, shard int, out string) []string {
	args := append(c.common("download"), "--set", setID, "--shard", strconv.Itoa(shard))
	if out != "" {
		args = append(args, "--out", out)
	}
	return args
}

// Prune deletes the sets beyond the newest retain complete ones.
func (c Commands) Prune(retain int) []string {
	return append(c.common("prune"), "--retain", strconv.Itoa(retain))
}

// List prints the platform's sets as JSON ([]SetInfo).
func (c Commands) List() []string { return append(c.common("list"), "-o", "json") }

// Install is the init container's command, run from the operator's image.
func Install() []string { return []string{"backup", "install", Binary} }
