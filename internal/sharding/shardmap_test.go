package sharding

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testMap is a map of n shards named as the operator names them.
func testMap(n int) *Map {
	shards := make([]Shard, n)
	for i := range shards {
		shards[i] = Shard{
			Index:      i,
			Host:       fmt.Sprintf("vk-db-%d.parser.svc", i),
			Port:       5432,
			Database:   "parser",
			SecretName: fmt.Sprintf("vk-db-%d-credentials", i),
		}
	}
	return NewMap(shards...)
}

func TestRenderGolden(t *testing.T) {
	got, err := Render(testMap(4))
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "shards.golden.json")
	if os.Getenv("UPDATE_GOLDEN") != "" {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (UPDATE_GOLDEN=1 go test ./internal/sharding -run Golden writes it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Render differs from %s (UPDATE_GOLDEN=1 to accept):\n%s", golden, got)
	}
	for _, must := range []string{`"algorithm": "md5-mod-n"`, `"user": "user_<id>"`, `"group": "group_<id>"`, "\n  \"shards\": [\n"} {
		if !strings.Contains(string(got), must) {
			t.Errorf("rendered map lacks %q", must)
		}
	}
	if !strings.HasSuffix(string(got), "}\n") {
		t.Errorf("rendered map must end in a newline")
	}
}

func TestRenderIsStableAndRoundTrips(t *testing.T) {
	m := testMap(3)
	m.Shards[0], m.Shards[2] = m.Shards[2], m.Shards[0] // built out of order
	first, err := Render(m)
	if err != nil {
		t.Fatal(err)
	}
	if m.Shards[0].Index != 2 {
		t.Fatal("Render must not reorder the caller's slice")
	}
	parsed, err := Parse(first)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range parsed.Shards {
		if s.Index != i {
			t.Fatalf("Parse returned shard %d at position %d", s.Index, i)
		}
	}
	again, err := Render(parsed)
	if err != nil {
		t.Fatal(err)
	}
	ordered, _ := Render(testMap(3))
	if !bytes.Equal(first, again) || !bytes.Equal(first, ordered) {
		t.Errorf("Render is not stable:\n%s\n%s\n%s", first, again, ordered)
	}
}

func TestParseRefusesMapsThatWouldMisroute(t *testing.T) {
	valid, err := Render(testMap(2))
	if err != nil {
		t.Fatal(err)
	}
	edit := func(old, replacement string) string {
		if !strings.Contains(string(valid), old) {
			t.Fatalf("test edit %q does not apply", old)
		}
		return strings.Replace(string(valid), old, replacement, 1)
	}
	cases := map[string]struct{ doc, want string }{
		"not JSON":           {"shards: 4", "decoding shard map"},
		"trailing data":      {string(valid) + "{}", "decoding shard map"},
		"unknown version":    {edit(`"version": 1`, `"version": 2`), "version: unsupported shard map version 2"},
		"missing version":    {edit(`"version": 1,`, ``), "version: unsupported shard map version 0"},
		"other algorithm":    {edit(`"md5-mod-n"`, `"crc32-mod-n"`), `algorithm: unsupported routing "crc32-mod-n"`},
		"other user key":     {edit(`"user_<id>"`, `"u<id>"`), "keyFormats.user"},
		"other group key":    {edit(`"group_<id>"`, `"g<id>"`), "keyFormats.group"},
		"no shards":          {`{"version":1,"algorithm":"md5-mod-n","keyFormats":{"user":"user_<id>","group":"group_<id>"},"shards":[]}`, "shards: at least one shard"},
		"duplicate index":    {edit(`"index": 1`, `"index": 0`), "shards[1].index: 0 appears more than once"},
		"index out of range": {edit(`"index": 1`, `"index": 2`), "shards[1].index: 2 is outside 0..1"},
		"negative index":     {edit(`"index": 1`, `"index": -1`), "shards[1].index: -1 is outside 0..1"},
		"empty host":         {edit(`"vk-db-1.parser.svc"`, `""`), "shards[1].host: must not be empty"},
		"bad port":           {edit(`"port": 5432`, `"port": 0`), "shards[0].port: 0 is outside 1..65535"},
		"empty database":     {edit(`"database": "parser"`, `"database": ""`), "shards[0].database: must not be empty"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			m, err := Parse([]byte(c.doc))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Parse = %v, %v; want an error containing %q", m, err, c.want)
			}
		})
	}
	if _, err := Parse(valid); err != nil {
		t.Fatalf("the unedited map must parse: %v", err)
	}
}

func TestRenderRefusesInvalidMaps(t *testing.T) {
	if _, err := Render(nil); err == nil {
		t.Error("Render(nil) must fail")
	}
	if _, err := Render(NewMap()); err == nil || !strings.Contains(err.Error(), "at least one shard") {
		t.Errorf("Render of a map without shards = %v", err)
	}
}

func TestParseIgnoresFieldsAddedLater(t *testing.T) {
	valid, _ := Render(testMap(1))
	doc := strings.Replace(string(valid), `"version": 1,`, `"version": 1, "comment": "added by a newer operator",`, 1)
	if _, err := Parse([]byte(doc)); err != nil {
		t.Fatalf("an additive field must not break older readers: %v", err)
	}
}

func TestMapShardForMatchesPythonVectors(t *testing.T) {
	v := loadVectors(t)
	for i, n := range v.ShardCounts {
		if n > 64 {
			continue // the CRD allows 1..64 shards
		}
		m, err := Parse(mustRender(t, testMap(int(n))))
		if err != nil {
			t.Fatal(err)
		}
		for _, vec := range v.Vectors {
			want := fmt.Sprintf("vk-db-%d.parser.svc", vec.Shards[i])
			if got := m.ShardFor(vec.Key); uint64(got.Index) != vec.Shards[i] || got.Host != want {
				t.Errorf("%d shards: ShardFor(%q) = %+v, Python says shard %d", n, vec.Key, got, vec.Shards[i])
			}
		}
	}
}

func TestMapShardForUnorderedAndInvalidMaps(t *testing.T) {
	m := testMap(8)
	for i, j := 0, len(m.Shards)-1; i < j; i, j = i+1, j-1 {
		m.Shards[i], m.Shards[j] = m.Shards[j], m.Shards[i]
	}
	key := UserKey(42)
	if got, want := m.ShardFor(key).Index, ShardFor(key, 8); got != want {
		t.Errorf("reversed map: ShardFor = shard %d, want %d", got, want)
	}
	var nilMap *Map
	for name, bad := range map[string]*Map{"nil": nilMap, "empty": NewMap(), "gap": NewMap(Shard{Index: 5}, Shard{Index: 6})} {
		if got := bad.ShardFor(key); got.Index != -1 {
			t.Errorf("%s map: ShardFor = %+v, want Index -1", name, got)
		}
	}
}

func mustRender(t *testing.T, m *Map) []byte {
	t.Helper()
	b, err := Render(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
