package backup

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vkparser/parser-operator/internal/sharding"
)

func TestSetIDsSortByTimeAndAreUnique(t *testing.T) {
	base := time.Date(2026, 12, 1, 20, 30, 0, 0, time.UTC)
	var ids []string
	seen := map[string]bool{}
	for i := range 2000 {
		// Several IDs per second, as a scheduled and an on-demand backup may be.
		id := NewSetID(base.Add(time.Duration(i/4) * time.Second))
		if seen[id] {
			t.Fatalf("duplicate set ID %s", id)
		}
		seen[id] = true
		ids = append(ids, id)
	}
	if got := ids[0][:16]; got != "20261201T203000Z" {
		t.Errorf("first ID %s, want it to start with 20261201T203000Z", ids[0])
	}
	for i := 4; i < len(ids); i += 4 {
		if ids[i-4] >= ids[i] {
			t.Fatalf("%s (later) does not sort after %s", ids[i], ids[i-4])
		}
	}
	for _, id := range ids[:8] {
		got, err := ParseSetID(id)
		if err != nil || got.Sub(base) > 2*time.Second || got.Before(base) {
			t.Errorf("ParseSetID(%s) = %v, %v", id, got, err)
		}
	}
	// Another time zone names the same instant.
	if id := NewSetID(base.In(time.FixedZone("MSK", 3*3600))); !strings.HasPrefix(id, "20261201T203000Z-") {
		t.Errorf("set ID %s is not in UTC", id)
	}
}

func TestParseSetIDRefusesWhatIsNotAnID(t *testing.T) {
	for _, id := range []string{"", "latest", "20261201T203000Z", "20261201T203000Z-ABCDEF", "20261301T203000Z-abcdef",
		"20261201T203000Z-abcdef/..", "x20261201T203000Z-abcdef", "20261201T203000Z-abcde"} {
		if _, err := ParseSetID(id); err == nil {
			t.Errorf("ParseSetID(%q) accepted it", id)
		}
	}
}

// ids makes sets at successive minutes; c marks complete ones.
func setsOf(pattern string) []SetInfo {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var sets []SetInfo
	for i, c := range pattern {
		id := base.Add(time.Duration(i)*time.Minute).Format(setIDTime) + fmt.Sprintf("-%06x", i)
		sets = append(sets, SetInfo{ID: id, Complete: c == 'c'})
	}
	return sets
}

func TestPlanRetention(t *testing.T) {
	// Each case: sets oldest first (c complete, i incomplete), retain, and
	// the positions deleted.
	cases := []struct {
		sets   string
		retain int
		want   []int
	}{
		{"", 3, nil},
		{"c", 1, nil},
		{"ccc", 3, nil},
		{"ccccc", 3, []int{0, 1}},
		{"ccccc", 1, []int{0, 1, 2, 3}},
		{"ccccc", 0, []int{0, 1, 2, 3}},  // 0 means 1: the newest complete set stays
		{"ccccc", -5, []int{0, 1, 2, 3}}, // so does a negative count
		{"iii", 1, nil},                  // no complete set: nothing is judged stale
		{"icici", 1, []int{0, 1, 2}},     // the newest incomplete one may be running
		{"icici", 2, []int{0, 2}},
		{"cciii", 1, []int{0}}, // incomplete sets newer than the newest complete stay
		{"ciccc", 2, []int{0, 1, 2}},
		{"ciccc", 10, []int{1}}, // retain beyond the count keeps all complete sets
	}
	for _, tc := range cases {
		sets := setsOf(tc.sets)
		var want []string
		for _, i := range tc.want {
			want = append(want, sets[i].ID)
		}
		// Order of the input must not matter.
		shuffled := slices.Clone(sets)
		slices.Reverse(shuffled)
		got := PlanRetention(shuffled, tc.retain)
		if !slices.Equal(got, want) {
			t.Errorf("PlanRetention(%q, %d) = %v, want %v", tc.sets, tc.retain, got, want)
		}
		kept := 0
		for _, s := range sets {
			if s.Complete && !slices.Contains(got, s.ID) {
				kept++
			}
		}
		if total := strings.Count(tc.sets, "c"); kept != min(total, max(tc.retain, 1)) {
			t.Errorf("PlanRetention(%q, %d) keeps %d complete sets, want %d", tc.sets, tc.retain, kept, min(total, max(tc.retain, 1)))
		}
	}
}

func validManifest(t *testing.T) *Manifest {
	t.Helper()
	id := NewSetID(time.Now())
	sm := sharding.NewMap(
		sharding.Shard{Index: 0, Host: "vk-db-0.parser", Port: 5432, Database: "parser", SecretName: "vk-db"},
		sharding.Shard{Index: 1, Host: "vk-db-1.parser", Port: 5432, Database: "parser", SecretName: "vk-db"},
	)
	doc, err := json.Marshal(sm)
	if err != nil {
		t.Fatal(err)
	}
	m := &Manifest{FormatVersion: ManifestVersion, SetID: id, Namespace: "parser", Platform: "vk", ShardCount: 2, ShardMap: doc}
	for i := range 2 {
		m.Shards = append(m.Shards, ShardRecord{
			Index: i, Object: "backups/parser/vk/" + id + "/" + ShardDumpObject(i), Size: 1000 + int64(i),
			SHA256: strings.Repeat("ab", 32),
		})
	}
	return m
}

func TestManifestValidate(t *testing.T) {
	if err := validManifest(t).Validate(); err != nil {
		t.Fatalf("a valid manifest is refused: %v", err)
	}
	cases := map[string]struct {
		mutate func(*Manifest)
		want   string
	}{
		"newer format":    {func(m *Manifest) { m.FormatVersion = 2 }, "format version 2"},
		"bad set ID":      {func(m *Manifest) { m.SetID = "latest" }, `set ID "latest"`},
		"no platform":     {func(m *Manifest) { m.Platform = "" }, "platform name"},
		"zero shards":     {func(m *Manifest) { m.ShardCount, m.Shards = 0, nil }, "shard count 0"},
		"missing record":  {func(m *Manifest) { m.Shards = m.Shards[:1] }, "1 shard records for 2 shards"},
		"map of 3 shards": {func(m *Manifest) { m.ShardCount = 3; m.Shards = append(m.Shards, m.Shards[1]) }, "shard map has 2 shards, the set 3"},
		"no map":          {func(m *Manifest) { m.ShardMap = nil }, "no shard map"},
		"broken map":      {func(m *Manifest) { m.ShardMap = json.RawMessage(`{"version": 9}`) }, "shard map"},
		"records swapped": {func(m *Manifest) { m.Shards[0], m.Shards[1] = m.Shards[1], m.Shards[0] }, "record says index 1"},
		"object of other set": {func(m *Manifest) {
			m.Shards[1].Object = strings.Replace(m.Shards[1].Object, m.SetID, "20200101T000000Z-000000", 1)
		}, "is not shard-1.dump of set"},
		"object of other shard": {func(m *Manifest) { m.Shards[1].Object = strings.Replace(m.Shards[1].Object, "shard-1", "shard-0", 1) }, "is not shard-1.dump"},
		"empty dump":            {func(m *Manifest) { m.Shards[0].Size = 0 }, "size 0"},
		"short checksum":        {func(m *Manifest) { m.Shards[0].SHA256 = "abcd" }, `sha256 "abcd"`},
		"non-hex checksum":      {func(m *Manifest) { m.Shards[0].SHA256 = strings.Repeat("zz", 32) }, "not 64 hex digits"},
	}
	for name, tc := range cases {
		m := validManifest(t)
		tc.mutate(m)
		err := m.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate() = %v, want an error containing %q", name, err, tc.want)
		}
	}
}

func TestCheckManifestAgainstListing(t *testing.T) {
	m := validManifest(t)
	p := Platform{Namespace: "parser", Name: "vk"}
	listing := func() map[string]int64 {
		objs := map[string]int64{}
		for _, r := range m.Shards {
			objs[r.Object] = r.Size
		}
		return objs
	}
	if reason := checkManifest(m, p, m.SetID, listing()); reason != "" {
		t.Fatalf("complete set judged incomplete: %s", reason)
	}
	objs := listing()
	delete(objs, m.Shards[1].Object)
	if reason := checkManifest(m, p, m.SetID, objs); !strings.Contains(reason, m.Shards[1].Object) || !strings.Contains(reason, "missing") {
		t.Errorf("missing object: reason %q", reason)
	}
	objs = listing()
	objs[m.Shards[0].Object]--
	if reason := checkManifest(m, p, m.SetID, objs); !strings.Contains(reason, m.Shards[0].Object) || !strings.Contains(reason, "size") {
		t.Errorf("truncated object: reason %q", reason)
	}
	if reason := checkManifest(m, Platform{Namespace: "parser", Name: "other"}, m.SetID, listing()); reason == "" {
		t.Error("a manifest of another platform was accepted")
	}
}

func TestCredentialsComeFromEnvOrSecretAndAreNeverPrinted(t *testing.T) {
	env := map[string]string{AccessKeyIDEnv: "AKIDENV", SecretAccessKeyEnv: "env-secret-value"}
	c, err := LoadCredentials("", func(k string) string { return env[k] })
	if err != nil || c.AccessKeyID != "AKIDENV" || c.SecretAccessKey != "env-secret-value" {
		t.Fatalf("from env: %+v, %v", c, err)
	}
	if _, err := LoadCredentials("", func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), AccessKeyIDEnv) {
		t.Errorf("no env: %v", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, AccessKeyIDKey), []byte("AKIDFILE\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCredentials(dir, nil); err == nil || !strings.Contains(err.Error(), SecretAccessKeyKey) {
		t.Errorf("half a Secret: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, SecretAccessKeyKey), []byte("file-secret-value"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = LoadCredentials(dir, nil)
	if err != nil || c.AccessKeyID != "AKIDFILE" || c.SecretAccessKey != "file-secret-value" {
		t.Fatalf("from a mounted Secret: %+v, %v", c, err)
	}
	cfg := ObjectStore{Endpoint: "https://s3.example.com", Bucket: "b", Credentials: c}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		if out := fmt.Sprintf(format, cfg); strings.Contains(out, "file-secret-value") || strings.Contains(out, "AKIDFILE") {
			t.Errorf("%s of the config prints the credentials: %s", format, out)
		}
	}
}

func TestParseEndpoint(t *testing.T) {
	for in, want := range map[string]struct {
		host   string
		secure bool
	}{
		"https://s3.example.com":     {"s3.example.com", true},
		"http://127.0.0.1:9000":      {"127.0.0.1:9000", false},
		"s3.example.com:8443":        {"s3.example.com:8443", true},
		"https://s3.example.com/":    {"s3.example.com", true},
		"http://minio.backup.svc:80": {"minio.backup.svc:80", false},
	} {
		host, secure, err := parseEndpoint(in)
		if err != nil || host != want.host || secure != want.secure {
			t.Errorf("parseEndpoint(%q) = %q, %t, %v; want %q, %t", in, host, secure, err, want.host, want.secure)
		}
	}
	for _, in := range []string{"", "ftp://x", "https://s3.example.com/bucket", "https://x?a=b", "https://"} {
		if _, _, err := parseEndpoint(in); err == nil {
			t.Errorf("parseEndpoint(%q) accepted it", in)
		}
	}
}
