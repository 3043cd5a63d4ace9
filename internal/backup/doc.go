// Package backup is the data plane of disaster recovery: it writes a
// platform's PostgreSQL shards to an S3-compatible object store as one
// backup set, proves the set whole before calling it complete, reads it back
// verified before anything is restored, and prunes old sets.
//
// # Layout
//
// A backup set lives under <prefix>/<namespace>/<platform>/<setID>/:
//
//	shard-<i>.dump   pg_dump -Fc of shard i, streamed (never held in memory)
//	shard-<i>.json   the ShardRecord of that dump: size, sha256, snapshot position
//	manifest.json    the Manifest, written LAST, after every dump is checked
//
// A set is complete only when its manifest exists, validates, and every
// object it lists exists with the listed size; everything else (a crashed
// Job, a set being written) is incomplete, is never restored, and is pruned
// once a newer complete set exists. Set IDs (NewSetID) sort by start time.
//
// # Integrity
//
// An upload is streamed as a multipart upload, one part (ObjectStore.PartSize,
// 64 MiB by default) in memory at a time; minio-go sends a CRC32C of every
// part, which the server checks, so the bytes are verified in transit. The
// sha256 and size are computed on the way; afterwards the object is stat'ed
// and its size compared. The dump is not re-read by default: that would
// double the backup's time and egress to catch only a store that
// acknowledges a part it then stores wrongly, and the restore's sha256
// check catches that (and later bit rot) anyway. `backup manifest --deep`
// (ManifestInput.Deep) re-reads and hashes every dump before the set is
// declared complete, for those who want the proof at backup time.
// Download checks size and sha256 against the manifest before a restore
// sees a byte (two passes, pinned to one ETag), or writes to a file that
// appears only when it matched (DownloadFile); a mismatch is an
// *ObjectError naming the key.
//
// # The Jobs
//
// The shard's PostgreSQL image has pg_dump and psql but not this operator;
// the operator's image (distroless/static) has the binary but no shell and
// no pg_dump. A backup Job per shard therefore has
//
//   - an emptyDir volume mounted at BinaryDir in both containers;
//   - init container "install-binary", image: the operator's, command
//     /parser-operator + Install(): copies the static binary to Binary;
//   - container "dump", image: the shard's PostgreSQL image, command
//     Binary + Commands.DumpShard(setID, i), env PGHOST (the shard's
//     Service), PGPORT, PGDATABASE, PGUSER and PGPASSWORD (secretKeyRef to
//     the shard's Secret); it runs psql and pg_dump itself, in one exported
//     snapshot, so the record carries the LSN and time it is consistent at;
//   - volume of the objectStore's secretRef Secret mounted read-only at
//     CredentialsDir (and caSecretRef's at CADir when set): credentials
//     never appear in the Job's arguments or env values;
//   - restartPolicy Never, backoffLimit 0 or small, activeDeadlineSeconds,
//     memory limit above PartSize plus pg_dump's own; runAsNonRoot works
//     (the binary needs no privileges).
//
// When every shard's Job succeeded, one Job (the operator's image alone,
// with the shard map ConfigMap mounted) runs Commands.Manifest and then
// Commands.Prune(retain); its stdout is the Manifest as JSON, the status'
// shards[] (object, size, checksum) are in it. A restore Job per shard has
// the same shape with the container running, under bash -o pipefail,
// Binary + Commands.Download(set, i, "") piped into pg_restore
// --exit-on-error --no-owner -d <database> (or Download to a file on a
// scratch volume, then pg_restore -j N on it); ResolveSet turns "latest"
// into an ID first, so every shard restores from the same set. The
// alternative pipe `pg_dump -Fc | parser-operator backup upload` also
// works, but only the shell sees pg_dump's exit status: its Job must run
// under pipefail, and the manifest must wait for the Jobs' success, since
// a dump cut short at a block boundary cannot be told from a whole one.
//
// The package talks to the store through minio-go (SigV4, multipart, TLS);
// nothing here signs requests by hand. Credentials come from the Job's
// environment or a mounted Secret (LoadCredentials), never from flags, and
// Credentials prints as <redacted>.
package backup
