package backup

import (
	"fmt"
	"path"
	"strconv"
	"strings"
)

// Object names inside a set's folder.
const (
	// ManifestObject is written last; its presence starts a set's claim to
	// be complete.
	ManifestObject = "manifest.json"
	shardPrefix    = "shard-"
	dumpSuffix     = ".dump"
	recordSuffix   = ".json"
)

// Platform names the platform a set belongs to; it is the middle of every key.
type Platform struct {
	Namespace string
	Name      string
}

func (p Platform) validate() error {
	for what, v := range map[string]string{"namespace": p.Namespace, "name": p.Name} {
		if v == "" || strings.ContainsAny(v, "/ ") {
			return fmt.Errorf("platform %s %q: want a Kubernetes object name", what, v)
		}
	}
	return nil
}

// platformPrefix is "<prefix>/<namespace>/<name>/": every set of p is below it.
func (s *Store) platformPrefix(p Platform) string {
	return joinKey(s.prefix, p.Namespace, p.Name) + "/"
}

// SetPrefix is the folder of one set, ending in "/".
func (s *Store) SetPrefix(p Platform, setID string) string {
	return s.platformPrefix(p) + setID + "/"
}

// ShardDumpObject is the name, inside a set's folder, of shard i's dump.
func ShardDumpObject(i int) string { return shardPrefix + strconv.Itoa(i) + dumpSuffix }

// shardRecordObject is the name of shard i's ShardRecord.
func shardRecordObject(i int) string { return shardPrefix + strconv.Itoa(i) + recordSuffix }

func joinKey(parts ...string) string {
	var keep []string
	for _, p := range parts {
		if p = strings.Trim(p, "/"); p != "" {
			keep = append(keep, p)
		}
	}
	return path.Join(keep...)
}
