// Package backup is the data plane of disaster recovery: it writes a
// platform's PostgreSQL shards to an S3-compatible object store as one
// backup set, proves the set whole before calling it complete, reads it back
// verified before anything is restored, and prunes old sets.
//
// A backup set lives under <prefix>/<namespace>/<platform>/<setID>/:
//
//	shard-<i>.dump   pg_dump -Fc of shard i, streamed (never held in memory)
//	shard-<i>.json   the ShardRecord of that dump: size, sha256, snapshot position
//	manifest.json    the Manifest, written LAST, after every dump is verified
//
// A set is complete only when its manifest exists, validates, and every
// object it lists exists with the listed size; everything else (a crashed
// Job, a set being written) is incomplete, is never restored, and is pruned
// once a newer complete set exists.
//
// The package talks to the store through minio-go (SigV4, multipart, TLS);
// nothing here signs requests by hand. Credentials come from the Job's
// environment or a mounted Secret (LoadCredentials), never from flags, and
// no type here prints them.
package backup
