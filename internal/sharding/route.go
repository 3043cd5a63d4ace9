// Package sharding routes keys to database shards exactly as the VK parser
// services do (their DatabaseSharding.get_shard: md5(key) as a 128-bit
// integer, mod the shard count; docs/architecture.md, "Database shards") and
// holds the shard map document that tells those services where each shard
// lives. It is pure: no Kubernetes client, so the operator, the CLI and the
// tests share one implementation.
package sharding

import (
	"crypto/md5" //nolint:gosec // md5 is the services' routing function, not a security boundary.
	"encoding/binary"
	"fmt"
	"math/bits"
	"strconv"
)

// Algorithm names the routing in the shard map, so that a service reading the
// map can refuse one it does not implement instead of silently misrouting.
const Algorithm = "md5-mod-n"

// Key formats as the services' get_shard_for_user/get_shard_for_group build them.
// They are written into the shard map so that services in other languages
// learn the exact key to hash.
const (
	// UserKeyFormat is the key of a VK user's rows: f"user_{user_id}".
	UserKeyFormat = "user_<id>"
	// GroupKeyFormat is the key of a VK group's rows: f"group_{group_id}".
	GroupKeyFormat = "group_<id>"
)

// UserKey is the key the services hash for a user's rows; the id is written
// in decimal with a leading "-" when negative, as Python's f-string does, so
// the Go side and the services agree on the bytes.
func UserKey(id int64) string { return "user_" + strconv.FormatInt(id, 10) }

// GroupKey is the key the services hash for a group's rows (see UserKey).
func GroupKey(id int64) string { return "group_" + strconv.FormatInt(id, 10) }

// Route returns the shard index of key among shards shards, or an error when
// shards < 1, where no shard exists to route to. Use it wherever the shard
// count comes from outside (flags, files, the API) and has not been checked.
//
// The key is hashed as its raw bytes. Python's key.encode() is UTF-8, so for
// every valid UTF-8 string (every Python str without lone surrogates) the
// result equals the services' get_shard.
func Route(key string, shards int) (int, error) {
	if shards < 1 {
		return 0, fmt.Errorf("shard count must be at least 1, got %d", shards)
	}
	return ShardFor(key, shards), nil
}

// ShardFor is Route for callers whose shard count is already known to be at
// least 1 (the CRD bounds spec.database.shards to 1..64). It never panics:
// for shards < 1 it returns -1, which no shard carries.
//
// The 16-byte digest, read big-endian, is the 128-bit number hi*2^64 + lo
// that Python's int(hexdigest, 16) builds; bits.Rem64 returns (hi*2^64 + lo)
// mod n exactly for every n >= 1 (it cannot overflow: only the quotient could,
// and Rem64 does not compute it). So this equals math/big's Mod without
// allocating; FuzzRoute checks the two against each other.
func ShardFor(key string, shards int) int {
	if shards < 1 {
		return -1
	}
	sum := md5.Sum([]byte(key)) //nolint:gosec // see import.
	hi := binary.BigEndian.Uint64(sum[:8])
	lo := binary.BigEndian.Uint64(sum[8:])
	return int(bits.Rem64(hi, lo, uint64(shards))) //nolint:gosec // G115: the remainder is below shards, an int.
}
