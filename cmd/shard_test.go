package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vkparser/parser-operator/internal/resource"
)

// shardVectors is internal/sharding/testdata/vectors.json, made by CPython's
// hashlib running the services' get_shard (docs/architecture.md, "Database
// shards"): the CLI must print the same shards.
type shardVectors struct {
	ShardCounts []uint64 `json:"shardCounts"`
	Vectors     []struct {
		Key    string   `json:"key"`
		Shards []uint64 `json:"shards"`
	} `json:"vectors"`
}

func loadShardVectors(t *testing.T) shardVectors {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "internal", "sharding", "testdata", "vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v shardVectors
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Vectors) < 300 {
		t.Fatalf("only %d vectors", len(v.Vectors))
	}
	return v
}

// countIndex is the position of n in the vectors' shard counts.
func (v shardVectors) countIndex(t *testing.T, n uint64) int {
	for i, c := range v.ShardCounts {
		if c == n {
			return i
		}
	}
	t.Fatalf("vectors.json has no results for %d shards", n)
	return -1
}

// keyFlags asks for key the way a user would: --user/--group for the keys
// those flags build, --key for anything else.
func keyFlags(key string) []string {
	for prefix, f := range map[string]string{"user_": "--user", "group_": "--group"} {
		id, ok := strings.CutPrefix(key, prefix)
		if n, err := strconv.ParseInt(id, 10, 64); ok && err == nil && strconv.FormatInt(n, 10) == id {
			return []string{f, id}
		}
	}
	return []string{"--key", key}
}

func runShardT(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = runShard(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestShardWithShardsMatchesVectors(t *testing.T) {
	v := loadShardVectors(t)
	runs := 0
	for i, n := range v.ShardCounts {
		if n > math.MaxInt {
			continue
		}
		for _, vec := range v.Vectors {
			args := append([]string{"--shards", strconv.FormatUint(n, 10)}, keyFlags(vec.Key)...)
			code, out, errOut := runShardT(args...)
			want := fmt.Sprintf("%s -> shard %d of %d\n", displayKey(vec.Key), vec.Shards[i], n)
			if code != 0 || out != want || errOut != "" {
				t.Fatalf("%v: exit %d, stdout %q, stderr %q; want %q", args, code, out, errOut, want)
			}
			runs++
		}
	}
	t.Logf("%d CLI runs agree with CPython", runs)
}

func TestShardWithShardMapMatchesVectors(t *testing.T) {
	v := loadShardVectors(t)
	four := v.countIndex(t, 4)
	for _, vec := range v.Vectors {
		args := append([]string{"--shard-map", filepath.Join("testdata", "shards.json")}, keyFlags(vec.Key)...)
		code, out, errOut := runShardT(args...)
		s := vec.Shards[four]
		want := fmt.Sprintf("%s -> shard %d of 4 (host vk-db-%d.parser.svc, database parser)\n", displayKey(vec.Key), s, s)
		if code != 0 || out != want || errOut != "" {
			t.Fatalf("%v: exit %d, stdout %q, stderr %q; want %q", args, code, out, errOut, want)
		}
	}
}

func TestShardOutputFormat(t *testing.T) {
	v := loadShardVectors(t)
	var user42 uint64
	for _, vec := range v.Vectors {
		if vec.Key == "user_42" {
			user42 = vec.Shards[v.countIndex(t, 4)]
		}
	}
	cases := map[string]struct {
		args []string
		want string
	}{
		"shards":       {[]string{"--shards", "4", "--user", "42"}, fmt.Sprintf("user_42 -> shard %d of 4\n", user42)},
		"single dash":  {[]string{"-shards=4", "-user=42"}, fmt.Sprintf("user_42 -> shard %d of 4\n", user42)},
		"id as Python": {[]string{"--shards", "4", "--user", "+042"}, fmt.Sprintf("user_42 -> shard %d of 4\n", user42)},
		"raw key":      {[]string{"--shards", "4", "--key", "user_42"}, fmt.Sprintf("user_42 -> shard %d of 4\n", user42)},
		"map": {[]string{"--shard-map", "testdata/shards.json", "--user", "42"},
			fmt.Sprintf("user_42 -> shard %d of 4 (host vk-db-%d.parser.svc, database parser)\n", user42, user42)},
		"empty key": {[]string{"--shards", "1", "--key", ""}, "\"\" -> shard 0 of 1\n"},
		"space":     {[]string{"--shards", "1", "--key", "user 42"}, "\"user 42\" -> shard 0 of 1\n"},
		"cyrillic":  {[]string{"--shards", "1", "--key", "пользователь_1"}, "пользователь_1 -> shard 0 of 1\n"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := runShardT(c.args...)
			if code != 0 || out != c.want || errOut != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q; want %q", code, out, errOut, c.want)
			}
		})
	}
}

func TestShardBadFlags(t *testing.T) {
	cases := map[string]struct {
		args []string
		want string
	}{
		"nothing":             {nil, "one of --shards, --shard-map, --platform"},
		"no key":              {[]string{"--shards", "4"}, "one of --user, --group, --key"},
		"two sources":         {[]string{"--shards", "4", "--shard-map", "f", "--user", "1"}, "--shards and --shard-map exclude each other"},
		"two keys":            {[]string{"--shards", "4", "--user", "1", "--key", "k"}, "--user and --key exclude each other"},
		"zero shards":         {[]string{"--shards", "0", "--user", "1"}, "--shards must be at least 1, got 0"},
		"negative shards":     {[]string{"--shards", "-3", "--user", "1"}, "--shards must be at least 1, got -3"},
		"shards not a number": {[]string{"--shards", "four", "--user", "1"}, `invalid value "four" for flag -shards`},
		"user not a number":   {[]string{"--shards", "4", "--user", "bob"}, `invalid value "bob" for flag -user`},
		"group overflows":     {[]string{"--shards", "4", "--group", "99999999999999999999"}, "for flag -group"},
		"user without value":  {[]string{"--shards", "4", "--user"}, "flag needs an argument: -user"},
		"unknown flag":        {[]string{"--shards", "4", "--users", "1"}, "flag provided but not defined: -users"},
		"namespace alone":     {[]string{"--shards", "4", "--user", "1", "--namespace", "parser"}, "--namespace applies only with --platform"},
		"kubeconfig alone":    {[]string{"--shard-map", "f", "--user", "1", "--kubeconfig", "k"}, "--kubeconfig applies only with --platform"},
		"empty platform":      {[]string{"--platform", "", "--user", "1"}, "--platform needs"},
		"empty namespace":     {[]string{"--platform", "vk", "--namespace", "", "--user", "1"}, "--namespace must not be empty"},
		"empty shard map":     {[]string{"--shard-map", "", "--user", "1"}, "--shard-map needs a file name"},
		"stray argument":      {[]string{"--shards", "4", "--user", "1", "42"}, `unexpected argument "42"`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := runShardT(c.args...)
			if code != 2 || out != "" || !strings.Contains(errOut, c.want) || !strings.Contains(errOut, "--help") {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit 2 and a message containing %q", code, out, errOut, c.want)
			}
		})
	}
}

func TestShardUnreadableMap(t *testing.T) {
	cases := map[string]struct {
		file, want string
	}{
		"missing file":    {filepath.Join("testdata", "no-such.json"), "--shard-map: open testdata/no-such.json"},
		"unknown version": {filepath.Join("testdata", "shards-v2.json"), "unsupported shard map version 2"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := runShardT("--shard-map", c.file, "--user", "1")
			if code != 1 || out != "" || !strings.Contains(errOut, c.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit 1 and %q", code, out, errOut, c.want)
			}
		})
	}
}

func TestShardHelp(t *testing.T) {
	for _, arg := range []string{"-h", "--help"} {
		code, out, errOut := runShardT(arg)
		if code != 0 || out != shardUsage || errOut != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", arg, code, out, errOut)
		}
	}
}

func TestShardUsageNamesEveryFlag(t *testing.T) {
	newShardFlagSet(&shardOptions{}).VisitAll(func(f *flag.Flag) {
		if !strings.Contains(shardUsage, "\n  --"+f.Name+" ") && !strings.Contains(shardUsage, "\n    --"+f.Name+" ") {
			t.Errorf("usage does not explain --%s", f.Name)
		}
	})
}

// fakeAPIServer serves the given ConfigMaps ("namespace/name") the way the
// API server does, and a NotFound Status for everything else.
func fakeAPIServer(t *testing.T, configMaps map[string]map[string]string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		var ns, name string
		if _, err := fmt.Sscanf(strings.ReplaceAll(r.URL.Path, "/", " "), " api v1 namespaces %s configmaps %s", &ns, &name); err == nil {
			if data, ok := configMaps[ns+"/"+name]; ok && r.Method == http.MethodGet {
				_ = json.NewEncoder(w).Encode(&corev1.ConfigMap{
					TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
					ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
					Data:       data,
				})
				return
			}
		}
		w.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(w).Encode(&metav1.Status{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"},
			Status:   metav1.StatusFailure, Reason: metav1.StatusReasonNotFound, Code: http.StatusNotFound,
			Message: fmt.Sprintf("configmaps %q not found", name),
		})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func writeKubeconfig(t *testing.T, server, namespace string) string {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	doc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: %q}
users:
- name: test
  user: {token: test}
contexts:
- name: test
  context: {cluster: test, user: test, namespace: %q}
current-context: test
`, server, namespace)
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestShardReadsTheLivePlatform(t *testing.T) {
	v := loadShardVectors(t)
	shardsJSON, err := os.ReadFile(filepath.Join("testdata", "shards.json"))
	if err != nil {
		t.Fatal(err)
	}
	longName := strings.Repeat("p", 60) // its ConfigMap name is shortened by the operator
	srv := fakeAPIServer(t, map[string]map[string]string{
		"parser/vk-shard-map":                          {"shards.json": string(shardsJSON)},
		"team/" + resource.Name(longName, "shard-map"): {"shards.json": string(shardsJSON)},
		"parser/empty-shard-map":                       {"other": "x"},
		"parser/broken-shard-map":                      {"shards.json": `{"version": 1}`},
	})
	kubeconfig := writeKubeconfig(t, srv.URL, "parser")

	four := v.countIndex(t, 4)
	for _, vec := range v.Vectors[:20] {
		s := vec.Shards[four]
		want := fmt.Sprintf("%s -> shard %d of 4 (host vk-db-%d.parser.svc, database parser)\n", displayKey(vec.Key), s, s)
		for _, args := range [][]string{
			{"--platform", "vk", "--namespace", "parser", "--kubeconfig", kubeconfig},
			{"--platform", "vk", "--kubeconfig", kubeconfig}, // namespace from the context
			{"--platform", longName, "--namespace", "team", "--kubeconfig", kubeconfig},
		} {
			args = append(args, keyFlags(vec.Key)...)
			code, out, errOut := runShardT(args...)
			if code != 0 || out != want || errOut != "" {
				t.Fatalf("%v: exit %d, stdout %q, stderr %q; want %q", args, code, out, errOut, want)
			}
		}
	}

	failures := map[string]struct {
		args []string
		want string
	}{
		"no such platform": {[]string{"--platform", "vk", "--namespace", "other"}, `ConfigMap other/vk-shard-map not found: is ParserPlatform "vk" in namespace "other"`},
		"no shards.json":   {[]string{"--platform", "empty"}, "ConfigMap parser/empty-shard-map has no key shards.json"},
		"invalid map":      {[]string{"--platform", "broken"}, "ConfigMap parser/broken-shard-map: invalid shard map"},
		"bad kubeconfig":   {[]string{"--platform", "vk", "--kubeconfig", filepath.Join(t.TempDir(), "none")}, "loading kubeconfig"},
	}
	for name, c := range failures {
		t.Run(name, func(t *testing.T) {
			args := c.args
			if !strings.Contains(strings.Join(args, " "), "--kubeconfig") {
				args = append(args, "--kubeconfig", kubeconfig)
			}
			code, out, errOut := runShardT(append(args, "--user", "1")...)
			if code != 1 || out != "" || !strings.Contains(errOut, c.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit 1 and %q", code, out, errOut, c.want)
			}
		})
	}
}
