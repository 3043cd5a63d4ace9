package sharding

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// vectorFile mirrors testdata/vectors.json, written by gen_vectors.py with
// CPython's hashlib and big ints: an implementation independent of this one.
type vectorFile struct {
	Algorithm   string   `json:"algorithm"`
	ShardCounts []uint64 `json:"shardCounts"`
	Vectors     []struct {
		Key    string   `json:"key"`
		MD5    string   `json:"md5"`
		Shards []uint64 `json:"shards"`
	} `json:"vectors"`
}

func loadVectors(t testing.TB) vectorFile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v vectorFile
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	if v.Algorithm != Algorithm || len(v.Vectors) < 300 || len(v.ShardCounts) == 0 {
		t.Fatalf("vectors.json looks truncated: algorithm %q, %d vectors, %d counts", v.Algorithm, len(v.Vectors), len(v.ShardCounts))
	}
	for _, vec := range v.Vectors {
		if len(vec.Shards) != len(v.ShardCounts) {
			t.Fatalf("vector %q has %d results for %d shard counts", vec.Key, len(vec.Shards), len(v.ShardCounts))
		}
	}
	return v
}

// routeBig is the services' arithmetic (docs/architecture.md, "Database
// shards") spelled out with math/big: the reference that the allocation-free
// ShardFor is fuzzed against.
func routeBig(key string, shards uint64) uint64 {
	sum := md5.Sum([]byte(key))
	h := new(big.Int).SetBytes(sum[:])
	return h.Mod(h, new(big.Int).SetUint64(shards)).Uint64()
}

func TestRouteMatchesPythonVectors(t *testing.T) {
	v := loadVectors(t)
	checked := 0
	for _, vec := range v.Vectors {
		sum := md5.Sum([]byte(vec.Key))
		if got := hex.EncodeToString(sum[:]); got != vec.MD5 {
			t.Errorf("md5(%q) = %s, Python says %s: the key bytes differ", vec.Key, got, vec.MD5)
		}
		for i, n := range v.ShardCounts {
			want := vec.Shards[i]
			if ref := routeBig(vec.Key, n); ref != want {
				t.Errorf("routeBig(%q, %d) = %d, Python says %d", vec.Key, n, ref, want)
			}
			if n > math.MaxInt {
				continue // int is 32 bits on this platform
			}
			got, err := Route(vec.Key, int(n))
			if err != nil || uint64(got) != want {
				t.Errorf("Route(%q, %d) = %d, %v; Python says %d", vec.Key, n, got, err, want)
			}
			checked++
		}
	}
	if checked < 300*9 {
		t.Fatalf("only %d vectors checked", checked)
	}
	t.Logf("%d (key, shard count) vectors agree with CPython", checked)
}

func TestKeyBuildersMatchPython(t *testing.T) {
	keys := map[string]bool{}
	for _, vec := range loadVectors(t).Vectors {
		keys[vec.Key] = true
	}
	for id := int64(0); id < 200; id++ {
		if !keys[UserKey(id)] {
			t.Errorf("UserKey(%d) = %q, which Python's f\"user_{%d}\" did not produce", id, UserKey(id), id)
		}
	}
	for id := int64(0); id < 100; id++ {
		if !keys[GroupKey(id)] {
			t.Errorf("GroupKey(%d) = %q, which Python's f\"group_{%d}\" did not produce", id, GroupKey(id), id)
		}
	}
	for _, k := range []string{UserKey(-1), UserKey(math.MaxInt64), GroupKey(math.MinInt64)} {
		if !keys[k] {
			t.Errorf("%q is not what Python makes of the same id", k)
		}
	}
}

func TestRouteRefusesNoShards(t *testing.T) {
	for _, n := range []int{0, -1, math.MinInt} {
		if _, err := Route("user_1", n); err == nil || !strings.Contains(err.Error(), "at least 1") {
			t.Errorf("Route(_, %d) error = %v, want one saying the count must be at least 1", n, err)
		}
		if got := ShardFor("user_1", n); got != -1 {
			t.Errorf("ShardFor(_, %d) = %d, want -1", n, got)
		}
	}
}

func TestRouteSpreadsUsersEvenly(t *testing.T) {
	const users, shards = 10000, 4
	counts := make([]int, shards)
	for id := int64(0); id < users; id++ {
		counts[ShardFor(UserKey(id), shards)]++
	}
	// Binomial: 2500 +- 43 per shard; +-10% is almost 6 standard deviations.
	for i, c := range counts {
		if c < 2250 || c > 2750 {
			t.Errorf("shard %d holds %d of %d users (all: %v), want about %d", i, c, users, counts, users/shards)
		}
	}
}

func FuzzRoute(f *testing.F) {
	for _, seed := range []struct {
		key string
		n   int64
	}{
		{"user_42", 4}, {"", 1}, {"group_7", 33}, {"пользователь_1", 64},
		{"x", 0}, {"y", -5}, {"z", math.MaxInt64}, {"w", 1 << 32},
	} {
		f.Add(seed.key, seed.n)
	}
	f.Fuzz(func(t *testing.T, key string, n int64) {
		if n > math.MaxInt { // 32-bit int
			n %= math.MaxInt
		}
		got, err := Route(key, int(n))
		if n < 1 {
			if err == nil || ShardFor(key, int(n)) != -1 {
				t.Fatalf("Route(%q, %d) = %d, %v: want an error and ShardFor -1", key, n, got, err)
			}
			return
		}
		if want := routeBig(key, uint64(n)); err != nil || uint64(got) != want {
			t.Fatalf("Route(%q, %d) = %d, %v; math/big says %d", key, n, got, err, want)
		}
		// The counts a platform really uses, whatever n the fuzzer picked.
		small := int(uint64(n)%64) + 1
		if got, want := ShardFor(key, small), routeBig(key, uint64(small)); uint64(got) != want {
			t.Fatalf("ShardFor(%q, %d) = %d; math/big says %d", key, small, got, want)
		}
	})
}

func BenchmarkShardFor(b *testing.B) {
	key := UserKey(123456789)
	for b.Loop() {
		ShardFor(key, 33)
	}
}
