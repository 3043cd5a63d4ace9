package backup

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vkparser/parser-operator/internal/sharding"
)

// ManifestVersion is the manifest format this package writes and reads. A
// change an older reader would misread bumps it, so old readers refuse the
// set instead of restoring it wrongly.
const ManifestVersion = 1

// Manifest describes a complete backup set: which platform, how it was
// sharded, and per shard the object that holds it with the size and sha256
// a restore must see before it restores anything.
type Manifest struct {
	FormatVersion int       `json:"formatVersion"`
	SetID         string    `json:"setID"`
	Namespace     string    `json:"namespace"`
	Platform      string    `json:"platform"`
	CreatedAt     time.Time `json:"createdAt"`
	ShardCount    int       `json:"shardCount"`
	// ShardMap is the platform's shard map document (shards.json) as it was
	// when the set was made, byte for byte: a restore routes with it.
	ShardMap json.RawMessage `json:"shardMap"`
	Shards   []ShardRecord   `json:"shards"`
	Versions Versions        `json:"versions"`
}

// Versions are the programs that made the set, for a restore to judge
// compatibility (pg_restore reads dumps of its own and older versions).
type Versions struct {
	Operator string `json:"operator"`
	PgDump   string `json:"pgDump"`
}

// ShardRecord is one shard's dump: written next to the dump as
// shard-<i>.json by the Job that made it, gathered into the manifest.
type ShardRecord struct {
	Index int `json:"index"`
	// Object is the dump's full key in the bucket.
	Object string `json:"object"`
	Size   int64  `json:"size"`
	// SHA256 is the hex sha256 of the dump as it was streamed out of pg_dump.
	SHA256 string `json:"sha256"`
	// Position is where the dump is consistent, when the dump was taken by
	// DumpShard (nil for a dump piped in from elsewhere).
	Position      *Position `json:"position,omitempty"`
	PgDumpVersion string    `json:"pgDumpVersion,omitempty"`
	StartedAt     time.Time `json:"startedAt"`
	FinishedAt    time.Time `json:"finishedAt"`
}

// Position is the point in a shard's history its dump shows: the dump holds
// exactly the transactions committed before Snapshot was taken. LSN (the
// WAL insert position) and Time (the server's clock) are read in the
// statement that takes the snapshot, just after it: no transaction in the
// dump committed after them, and only one committing in that instant can be
// before them yet missing from the dump.
type Position struct {
	LSN      string    `json:"lsn"`
	Time     time.Time `json:"time"`
	Snapshot string    `json:"snapshot,omitempty"`
	// ServerVersion is the PostgreSQL server's version (server_version).
	ServerVersion string `json:"serverVersion,omitempty"`
}

// Validate reports the first reason m cannot be restored from as written.
// It is pure: whether the listed objects exist is the store's question.
func (m *Manifest) Validate() error {
	if m.FormatVersion != ManifestVersion {
		return fmt.Errorf("manifest format version %d, this operator reads %d", m.FormatVersion, ManifestVersion)
	}
	if _, err := ParseSetID(m.SetID); err != nil {
		return err
	}
	if err := (Platform{Namespace: m.Namespace, Name: m.Platform}).validate(); err != nil {
		return err
	}
	if m.ShardCount < 1 {
		return fmt.Errorf("manifest: shard count %d, want at least 1", m.ShardCount)
	}
	if len(m.Shards) != m.ShardCount {
		return fmt.Errorf("manifest: %d shard records for %d shards", len(m.Shards), m.ShardCount)
	}
	if err := validateShardMap(m.ShardMap, m.ShardCount); err != nil {
		return err
	}
	for i := range m.Shards {
		if err := m.Shards[i].validate(i, m.SetID); err != nil {
			return fmt.Errorf("manifest: shard %d: %w", i, err)
		}
	}
	return nil
}

func validateShardMap(doc json.RawMessage, shards int) error {
	if len(doc) == 0 {
		return errors.New("manifest: no shard map")
	}
	sm, err := sharding.Parse(doc)
	if err != nil {
		return fmt.Errorf("manifest: shard map: %w", err)
	}
	if len(sm.Shards) != shards {
		return fmt.Errorf("manifest: the shard map has %d shards, the set %d", len(sm.Shards), shards)
	}
	return nil
}

// validate checks one record as shard i of set setID.
func (r *ShardRecord) validate(i int, setID string) error {
	if r.Index != i {
		return fmt.Errorf("record says index %d", r.Index)
	}
	if want := "/" + setID + "/" + ShardDumpObject(i); !strings.HasSuffix("/"+r.Object, want) {
		return fmt.Errorf("object %q is not %s of set %s", r.Object, ShardDumpObject(i), setID)
	}
	if r.Size <= 0 {
		return fmt.Errorf("object %s: size %d (a pg_dump archive is never empty)", r.Object, r.Size)
	}
	if b, err := hex.DecodeString(r.SHA256); err != nil || len(b) != 32 {
		return fmt.Errorf("object %s: sha256 %q is not 64 hex digits", r.Object, r.SHA256)
	}
	return nil
}
