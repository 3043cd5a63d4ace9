package sharding

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// Where the shard map lives: the operator writes it, the services and the
// CLI read it.
const (
	// ConfigMapSuffix makes the shard map ConfigMap's name "<platform>-shard-map".
	ConfigMapSuffix = "shard-map"
	// ConfigMapKey is the ConfigMap key that holds the rendered Map.
	ConfigMapKey = "shards.json"
)

// Version is the only shard map format this package reads and writes. A
// change that would make an older reader misroute bumps it, so old readers
// fail loudly instead. Fields added without such a change stay at version 1,
// which is why Parse ignores fields it does not know.
const Version = 1

// Map is the shard map document (ConfigMap "<platform>-shard-map", key
// "shards.json"): everything a service needs to route a key and reach its
// shard, in one versioned JSON file that any language can read.
type Map struct {
	// Version is the document format; see the Version constant.
	Version int `json:"version"`
	// Algorithm is always Algorithm ("md5-mod-n").
	Algorithm string `json:"algorithm"`
	// KeyFormats says which key a user's or a group's rows are hashed under.
	KeyFormats KeyFormats `json:"keyFormats"`
	// Shards lists every shard; Shards[i].Index == i in a rendered map.
	Shards []Shard `json:"shards"`
}

// KeyFormats documents the key builders inside the map, so a reader in
// another language hashes the same bytes as UserKey and GroupKey.
type KeyFormats struct {
	// User is UserKeyFormat.
	User string `json:"user"`
	// Group is GroupKeyFormat.
	Group string `json:"group"`
}

// Shard is one PostgreSQL shard: where to connect and which Secret holds
// its credentials (never the credentials themselves, since ConfigMaps are
// readable more widely than Secrets).
type Shard struct {
	// Index is the routing result that selects this shard (0-based).
	Index int `json:"index"`
	// Host is the DNS name of the shard's Service.
	Host string `json:"host"`
	// Port is the PostgreSQL port.
	Port int `json:"port"`
	// Database is the database name on the shard.
	Database string `json:"database"`
	// SecretName is the Secret with the shard's credentials, in the
	// platform's namespace.
	SecretName string `json:"secretName"`
}

// NewMap fills in the fixed fields (version, algorithm, key formats) so that
// a builder supplies only the shards and cannot get the constants wrong.
func NewMap(shards ...Shard) *Map {
	return &Map{
		Version:    Version,
		Algorithm:  Algorithm,
		KeyFormats: KeyFormats{User: UserKeyFormat, Group: GroupKeyFormat},
		Shards:     shards,
	}
}

// Validate reports the first reason m cannot route keys the way the services
// do. Parse and Render call it, so a bad map is refused both when it is read
// and before it is ever written.
func (m *Map) Validate() error {
	if m == nil {
		return errors.New("shard map is missing")
	}
	if m.Version != Version {
		return fmt.Errorf("version: unsupported shard map version %d (this build reads %d)", m.Version, Version)
	}
	if m.Algorithm != Algorithm {
		return fmt.Errorf("algorithm: unsupported routing %q (this build routes %q)", m.Algorithm, Algorithm)
	}
	if err := m.KeyFormats.validate(); err != nil {
		return err
	}
	return validateShards(m.Shards)
}

func (k KeyFormats) validate() error {
	if k.User != UserKeyFormat {
		return fmt.Errorf("keyFormats.user: got %q, this build hashes %q", k.User, UserKeyFormat)
	}
	if k.Group != GroupKeyFormat {
		return fmt.Errorf("keyFormats.group: got %q, this build hashes %q", k.Group, GroupKeyFormat)
	}
	return nil
}

func validateShards(shards []Shard) error {
	if len(shards) == 0 {
		return errors.New("shards: at least one shard is required")
	}
	seen := make([]bool, len(shards))
	for i, s := range shards {
		if s.Index < 0 || s.Index >= len(shards) {
			return fmt.Errorf("shards[%d].index: %d is outside 0..%d", i, s.Index, len(shards)-1)
		}
		if seen[s.Index] {
			return fmt.Errorf("shards[%d].index: %d appears more than once", i, s.Index)
		}
		seen[s.Index] = true
		if err := s.validate(); err != nil {
			return fmt.Errorf("shards[%d].%w", i, err)
		}
	}
	return nil
}

func (s Shard) validate() error {
	switch {
	case s.Host == "":
		return errors.New("host: must not be empty")
	case s.Port < 1 || s.Port > 65535:
		return fmt.Errorf("port: %d is outside 1..65535", s.Port)
	case s.Database == "":
		return errors.New("database: must not be empty")
	}
	return nil
}

// Parse reads a shard map and refuses one that would misroute (see
// Validate). The shards come back ordered by index, so Shards[i] is shard i.
func Parse(data []byte) (*Map, error) {
	var m Map
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("decoding shard map: %w", err)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("invalid shard map: %w", err)
	}
	m.Shards = sortedByIndex(m.Shards)
	return &m, nil
}

// Render writes m as the operator stores it: validated, shards ordered by
// index, two-space indent, a trailing newline and "<" ">" "&" left as they
// are. The bytes depend only on m, so their hash can roll the pods that read
// the map exactly when it changes.
func Render(m *Map) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("invalid shard map: %w", err)
	}
	out := *m
	out.Shards = sortedByIndex(m.Shards)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep "user_<id>" readable instead of "user_\u003cid\u003e"
	enc.SetIndent("", "  ")
	if err := enc.Encode(&out); err != nil {
		return nil, fmt.Errorf("encoding shard map: %w", err)
	}
	return buf.Bytes(), nil
}

// ShardFor returns the shard that holds key. m must be valid (from Parse, or
// passing Validate); for an invalid map it returns a Shard with Index -1
// rather than panicking.
func (m *Map) ShardFor(key string) Shard {
	if m == nil {
		return Shard{Index: -1}
	}
	i := ShardFor(key, len(m.Shards))
	if i < 0 {
		return Shard{Index: -1}
	}
	if m.Shards[i].Index == i {
		return m.Shards[i]
	}
	for _, s := range m.Shards { // a hand-built map need not be ordered
		if s.Index == i {
			return s
		}
	}
	return Shard{Index: -1}
}

func sortedByIndex(shards []Shard) []Shard {
	out := slices.Clone(shards)
	slices.SortFunc(out, func(a, b Shard) int { return a.Index - b.Index })
	return out
}
