package tools

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vkparser/parser-operator/internal/testutil"
)

// publisher serves one tool's linux/amd64 release on the site the way its
// project publishes it, with binary as the tool, and returns the artifact's
// upstream address.
type publisher func(t *testing.T, s *releaseSite, pin map[string]string, binary []byte) string

// release is one tool hack/tool.sh provides: how upstream publishes it and
// what its source build builds (the package the `go` command is given).
type release struct {
	name, versionVar string
	publish          publisher
	sourceBuild      string
}

func releases() []release {
	return []release{
		{"kube-apiserver", "KUBERNETES_VERSION", kubernetesBinary("kube-apiserver"), "k8s.io/kubernetes/cmd/kube-apiserver"},
		{"kube-controller-manager", "KUBERNETES_VERSION", kubernetesBinary("kube-controller-manager"), "k8s.io/kubernetes/cmd/kube-controller-manager"},
		{"kube-scheduler", "KUBERNETES_VERSION", kubernetesBinary("kube-scheduler"), "k8s.io/kubernetes/cmd/kube-scheduler"},
		{"etcd", "ETCD_VERSION", publishEtcd, "go.etcd.io/etcd/server/v3"},
		{"kwok", "KWOK_VERSION", publishKwok, "sigs.k8s.io/kwok/cmd/kwok"},
		{"helm", "HELM_VERSION", publishHelm, "helm.sh/helm/v3/cmd/helm@v"},
		{"controller-gen", "CONTROLLER_TOOLS_VERSION", publishControllerGen, "sigs.k8s.io/controller-tools/cmd/controller-gen@v"},
		{"gotestsum", "GOTESTSUM_VERSION", publishGotestsum, "gotest.tools/gotestsum@v"},
		{"versitygw", "VERSITYGW_VERSION", publishVersitygw, "github.com/versity/versitygw/cmd/versitygw@v"},
		{"golangci-lint", "GOLANGCI_LINT_VERSION", publishGolangciLint, "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v"},
	}
}

// kubernetesBinary: dl.k8s.io, a bare binary and a .sha256 file holding
// only its hash (no newline).
func kubernetesBinary(name string) publisher {
	return func(t *testing.T, s *releaseSite, pin map[string]string, binary []byte) string {
		u := "https://dl.k8s.io/v" + pin["KUBERNETES_VERSION"] + "/bin/linux/amd64/" + name
		s.put(u, binary)
		s.put(u+".sha256", []byte(sha256Hex(binary)))
		return u
	}
}

// publishEtcd: a tarball wrapping etcd, etcdctl and etcdutl in a directory,
// and SHA256SUMS for every asset of the release.
func publishEtcd(t *testing.T, s *releaseSite, pin map[string]string, binary []byte) string {
	v := pin["ETCD_VERSION"]
	base := "https://github.com/etcd-io/etcd/releases/download/v" + v + "/"
	dir := "etcd-v" + v + "-linux-amd64"
	tgz := tarGz(t, map[string][]byte{
		dir + "/etcd": binary, dir + "/etcdctl": []byte("etcdctl"), dir + "/etcdutl": []byte("etcdutl"),
		dir + "/README.md": []byte("# etcd"),
	})
	s.put(base+dir+".tar.gz", tgz)
	s.put(base+"SHA256SUMS", sumsFile(map[string]string{
		"etcd-v" + v + "-darwin-amd64.zip":   sha256Hex([]byte("darwin")),
		dir + ".tar.gz":                      sha256Hex(tgz),
		"etcd-v" + v + "-linux-arm64.tar.gz": sha256Hex([]byte("arm64")),
	}))
	return base + dir + ".tar.gz"
}

// publishHelm: get.helm.sh, OS-ARCH/helm in a tarball and a .sha256sum file.
func publishHelm(t *testing.T, s *releaseSite, pin map[string]string, binary []byte) string {
	u := "https://get.helm.sh/helm-v" + pin["HELM_VERSION"] + "-linux-amd64.tar.gz"
	tgz := tarGz(t, map[string][]byte{"linux-amd64/helm": binary, "linux-amd64/LICENSE": []byte("Apache")})
	s.put(u, tgz)
	s.put(u+".sha256sum", []byte(sha256Hex(tgz)+"  helm-v"+pin["HELM_VERSION"]+"-linux-amd64.tar.gz\n"))
	return u
}

// publishGotestsum: goreleaser's archive (binary at the top) and checksums.
func publishGotestsum(t *testing.T, s *releaseSite, pin map[string]string, binary []byte) string {
	v := pin["GOTESTSUM_VERSION"]
	base := "https://github.com/gotestyourself/gotestsum/releases/download/v" + v + "/"
	asset := "gotestsum_" + v + "_linux_amd64.tar.gz"
	tgz := tarGz(t, map[string][]byte{"gotestsum": binary, "LICENSE": []byte("Apache"), "README.md": []byte("# gotestsum")})
	s.put(base+asset, tgz)
	s.put(base+"gotestsum-"+v+"-checksums.txt", sumsFile(map[string]string{
		asset: sha256Hex(tgz), "gotestsum_" + v + "_darwin_arm64.tar.gz": sha256Hex([]byte("darwin")),
	}))
	return base + asset
}

// publishVersitygw: goreleaser with uname-style names, wrapped in a
// directory, and checksums.txt.
func publishVersitygw(t *testing.T, s *releaseSite, pin map[string]string, binary []byte) string {
	v := pin["VERSITYGW_VERSION"]
	base := "https://github.com/versity/versitygw/releases/download/v" + v + "/"
	dir := "versitygw_v" + v + "_Linux_x86_64"
	tgz := tarGz(t, map[string][]byte{dir + "/versitygw": binary, dir + "/README.md": []byte("# versitygw"), dir + "/LICENSE": []byte("Apache")})
	s.put(base+dir+".tar.gz", tgz)
	s.put(base+"checksums.txt", sumsFile(map[string]string{
		dir + ".tar.gz": sha256Hex(tgz), "versitygw_v" + v + "_Linux_arm64.tar.gz": sha256Hex([]byte("arm64")),
	}))
	return base + dir + ".tar.gz"
}

// publishGolangciLint: goreleaser, wrapped in a directory, and its checksums.
func publishGolangciLint(t *testing.T, s *releaseSite, pin map[string]string, binary []byte) string {
	v := pin["GOLANGCI_LINT_VERSION"]
	base := "https://github.com/golangci/golangci-lint/releases/download/v" + v + "/"
	dir := "golangci-lint-" + v + "-linux-amd64"
	tgz := tarGz(t, map[string][]byte{dir + "/golangci-lint": binary, dir + "/LICENSE": []byte("GPL"), dir + "/README.md": []byte("# golangci-lint")})
	s.put(base+dir+".tar.gz", tgz)
	s.put(base+"golangci-lint-"+v+"-checksums.txt", sumsFile(map[string]string{
		dir + ".tar.gz": sha256Hex(tgz), "golangci-lint-" + v + "-linux-arm64.tar.gz": sha256Hex([]byte("arm64")),
	}))
	return base + dir + ".tar.gz"
}

// publishKwok: bare binaries and no checksum file; the release API's asset
// digests, pretty-printed, with an asset whose digest is null after it.
func publishKwok(t *testing.T, s *releaseSite, pin map[string]string, binary []byte) string {
	v := pin["KWOK_VERSION"]
	u := "https://github.com/kubernetes-sigs/kwok/releases/download/v" + v + "/kwok-linux-amd64"
	s.put(u, binary)
	s.put("https://api.github.com/repos/kubernetes-sigs/kwok/releases/tags/v"+v, githubRelease(t, "kubernetes-sigs/kwok", "v"+v, map[string]string{
		"kwok-darwin-arm64": sha256Hex([]byte("darwin")), "kwok-linux-amd64": sha256Hex(binary),
		"kwok-linux-arm64": "null", "kwokctl-linux-amd64": sha256Hex([]byte("kwokctl")),
	}, true))
	return u
}

// publishControllerGen: like kwok, with the API's compact JSON.
func publishControllerGen(t *testing.T, s *releaseSite, pin map[string]string, binary []byte) string {
	v := pin["CONTROLLER_TOOLS_VERSION"]
	u := "https://github.com/kubernetes-sigs/controller-tools/releases/download/v" + v + "/controller-gen-linux-amd64"
	s.put(u, binary)
	s.put("https://api.github.com/repos/kubernetes-sigs/controller-tools/releases/tags/v"+v, githubRelease(t, "kubernetes-sigs/controller-tools", "v"+v, map[string]string{
		"controller-gen-darwin-arm64": sha256Hex([]byte("darwin")), "controller-gen-linux-amd64": sha256Hex(binary),
		"envtest-v1.37.2-linux-amd64.tar.gz": sha256Hex([]byte("envtest")),
	}, false))
	return u
}

// fakeGo stands in for `go` in the source build: it records its arguments
// and writes a stub where `go install` (into $GOBIN) or `go build -o OUT`
// would write the binary.
const fakeGo = `#!/bin/sh
echo "$*" >>"$FAKE_GO_LOG"
case "$1" in
  install) pkg=${2%@*}; bin=$GOBIN/${pkg##*/} ;;
  build) bin=$3 ;;
  mod) [ "$2" = download ] && echo '"GoMod": "/dev/null"'; exit 0 ;;
  *) exit 0 ;;
esac
printf '#!/bin/sh\necho built from source\n' >"$bin"
chmod +x "$bin"
`

const builtFromSource = "#!/bin/sh\necho built from source\n"

// harness runs hack/tool.sh against a release site, in a cache of its own.
type harness struct {
	t     *testing.T
	site  *releaseSite
	pin   map[string]string
	cache string
	goLog string
	path  string // PATH, with the stand-in go first unless realGo
	extra []string
}

func newHarness(t *testing.T, realGo bool) *harness {
	t.Helper()
	// The script downloads with curl; CI has it, a developer's machine may not.
	if _, err := exec.LookPath("curl"); err != nil {
		testutil.MissingTool(t, "curl", err)
	}
	h := &harness{t: t, site: newReleaseSite(t), pin: pins(t), cache: t.TempDir()}
	h.goLog = filepath.Join(t.TempDir(), "go.log")
	h.path = os.Getenv("PATH")
	if !realGo {
		bin := t.TempDir()
		if err := os.WriteFile(filepath.Join(bin, "go"), []byte(fakeGo), 0o755); err != nil {
			t.Fatal(err)
		}
		h.path = bin + string(os.PathListSeparator) + h.path
	}
	return h
}

type result struct {
	stdout, stderr string
	err            error
	elapsed        time.Duration
}

// env is the caller's environment without the script's knobs (a developer's
// PARSER_OPERATOR_OFFLINE or pinned versions), then the harness's.
func (h *harness) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PARSER_OPERATOR_") || strings.HasSuffix(k, "_VERSION") || k == "PATH" {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "PATH="+h.path, "FAKE_GO_LOG="+h.goLog,
		"PARSER_OPERATOR_CACHE="+h.cache,
		"PARSER_OPERATOR_RELEASE_MIRROR="+h.site.srv.URL,
		"PARSER_OPERATOR_PLATFORM=linux/amd64",
		"PARSER_OPERATOR_CONNECT_TIMEOUT=2")
	return append(env, h.extra...)
}

func (h *harness) run(name string) result {
	h.t.Helper()
	cmd := exec.Command("bash", toolSh(h.t), name)
	cmd.Env = h.env()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	return result{strings.TrimSpace(stdout.String()), stderr.String(), err, time.Since(start)}
}

// cached checks that the run printed the cache path of name and that the
// cache holds that binary and nothing else (no partial file, no download
// directory), and returns its content.
func (h *harness) cached(r release, res result) string {
	h.t.Helper()
	if res.err != nil {
		h.t.Fatalf("hack/tool.sh %s: %v\n%s", r.name, res.err, res.stderr)
	}
	want := filepath.Join(h.cache, r.name+"-"+h.pin[r.versionVar])
	if res.stdout != want {
		h.t.Fatalf("hack/tool.sh %s printed %q, want %q\n%s", r.name, res.stdout, want, res.stderr)
	}
	info, err := os.Stat(want)
	if err != nil {
		h.t.Fatal(err)
	}
	if info.Mode().Perm()&0o111 == 0 {
		h.t.Errorf("%s is not executable (%v)", want, info.Mode())
	}
	entries, err := os.ReadDir(h.cache)
	if err != nil {
		h.t.Fatal(err)
	}
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		h.t.Errorf("the cache holds %v, want only %s", names, filepath.Base(want))
	}
	data, err := os.ReadFile(want)
	if err != nil {
		h.t.Fatal(err)
	}
	return string(data)
}

func (h *harness) goCalls() string {
	data, err := os.ReadFile(h.goLog)
	if err != nil && !os.IsNotExist(err) {
		h.t.Fatal(err)
	}
	return string(data)
}

func fakeBinary(name string) []byte {
	return []byte("#!/bin/sh\necho released " + name + "\n")
}

// Every tool comes from its release site when the published SHA-256 matches,
// without a source build.
func TestDownloadsTheVerifiedRelease(t *testing.T) {
	for _, r := range releases() {
		t.Run(r.name, func(t *testing.T) {
			h := newHarness(t, false)
			artifact := r.publish(t, h.site, h.pin, fakeBinary(r.name))
			res := h.run(r.name)
			if got := h.cached(r, res); got != string(fakeBinary(r.name)) {
				t.Fatalf("cached %q, want the released binary\n%s", got, res.stderr)
			}
			if !strings.Contains(res.stderr, "downloaded "+r.name+" "+h.pin[r.versionVar]+" (SHA-256 verified)") {
				t.Errorf("stderr does not say it downloaded:\n%s", res.stderr)
			}
			if calls := h.goCalls(); calls != "" {
				t.Errorf("built from source although the download worked: %s", calls)
			}
			if !contains(h.site.requested(), "/"+strings.TrimPrefix(artifact, "https://")) {
				t.Errorf("the artifact %s was not fetched; requests: %v", artifact, h.site.requested())
			}
		})
	}
}

// An artifact whose SHA-256 is not the published one is refused, never
// cached, and the tool is built from source with the right package.
func TestRefusesABadChecksumAndBuilds(t *testing.T) {
	for _, r := range releases() {
		t.Run(r.name, func(t *testing.T) {
			h := newHarness(t, false)
			artifact := r.publish(t, h.site, h.pin, fakeBinary(r.name))
			// The site now serves other bytes than those whose hash it publishes.
			tampered := []byte("#!/bin/sh\necho tampered\n")
			if r.name != "kwok" && !strings.HasPrefix(r.name, "kube-") && r.name != "controller-gen" {
				tampered = tarGz(t, map[string][]byte{r.name: tampered})
			}
			h.site.put(artifact, tampered)
			res := h.run(r.name)
			if got := h.cached(r, res); got != builtFromSource {
				t.Fatalf("cached %q, want the source build\n%s", got, res.stderr)
			}
			for _, want := range []string{"checksum mismatch", "refusing it", "building " + r.name} {
				if !strings.Contains(res.stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, res.stderr)
				}
			}
			if calls := h.goCalls(); !strings.Contains(calls, r.sourceBuild) {
				t.Errorf("the source build did not build %s; go was called with:\n%s", r.sourceBuild, calls)
			}
		})
	}
}

// Each way a download can fail ends in the source build, saying why; the
// offline switch and an unknown platform send no request at all.
func TestFallsBackToTheSourceBuild(t *testing.T) {
	byName := map[string]release{}
	for _, r := range releases() {
		byName[r.name] = r
	}
	cases := []struct {
		name, tool string
		break_     func(h *harness, artifact string)
		reason     string
		noRequests bool
	}{
		{"artifact missing (404)", "kube-apiserver", func(h *harness, a string) { h.site.remove(a) }, "could not download", false},
		{"checksum file missing", "helm", func(h *harness, a string) { h.site.remove(a + ".sha256sum") }, "could not fetch its checksum", false},
		{"asset not in the checksum list", "etcd", func(h *harness, a string) {
			h.site.put(strings.TrimSuffix(a, filepathBase(a))+"SHA256SUMS", sumsFile(map[string]string{"etcd-other.tar.gz": sha256Hex(nil)}))
		}, "no SHA-256 for", false},
		{"release asset without a GitHub digest (null)", "kwok", func(h *harness, a string) {
			h.site.put("https://api.github.com/repos/kubernetes-sigs/kwok/releases/tags/v"+h.pin["KWOK_VERSION"],
				githubRelease(h.t, "kubernetes-sigs/kwok", "v"+h.pin["KWOK_VERSION"], map[string]string{
					"kwok-darwin-arm64": sha256Hex([]byte("darwin")), "kwok-linux-amd64": "null",
				}, true))
		}, "no SHA-256 for kwok-linux-amd64", false},
		{"release asset without a GitHub digest (no field)", "kwok", func(h *harness, a string) {
			h.site.put("https://api.github.com/repos/kubernetes-sigs/kwok/releases/tags/v"+h.pin["KWOK_VERSION"],
				githubRelease(h.t, "kubernetes-sigs/kwok", "v"+h.pin["KWOK_VERSION"], map[string]string{
					"kwok-darwin-arm64": sha256Hex([]byte("darwin")), "kwok-linux-amd64": "",
				}, true))
		}, "no SHA-256 for kwok-linux-amd64", false},
		{"archive without the binary", "gotestsum", func(h *harness, a string) {
			tgz := tarGz(h.t, map[string][]byte{"LICENSE": []byte("Apache")})
			v := h.pin["GOTESTSUM_VERSION"]
			h.site.put(a, tgz)
			h.site.put(strings.TrimSuffix(a, filepathBase(a))+"gotestsum-"+v+"-checksums.txt",
				sumsFile(map[string]string{filepathBase(a): sha256Hex(tgz)}))
		}, "no gotestsum in", false},
		{"unreachable site", "kube-scheduler", func(h *harness, _ string) {
			h.extra = append(h.extra, "PARSER_OPERATOR_RELEASE_MIRROR=http://127.0.0.1:1")
		}, "could not fetch its checksum", true},
		{"no release for this platform", "kube-controller-manager", func(h *harness, _ string) {
			h.extra = append(h.extra, "PARSER_OPERATOR_PLATFORM=darwin/arm64")
		}, "release binary for darwin/arm64", true},
		{"unknown platform", "helm", func(h *harness, _ string) {
			h.extra = append(h.extra, "PARSER_OPERATOR_PLATFORM=plan9/386")
		}, "no helm release binary for plan9/386", true},
		{"PARSER_OPERATOR_OFFLINE=1", "versitygw", func(h *harness, _ string) {
			h.extra = append(h.extra, "PARSER_OPERATOR_OFFLINE=1")
		}, "PARSER_OPERATOR_OFFLINE=1: not downloading versitygw", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := byName[c.tool]
			h := newHarness(t, false)
			artifact := r.publish(t, h.site, h.pin, fakeBinary(r.name))
			c.break_(h, artifact)
			res := h.run(r.name)
			if got := h.cached(r, res); got != builtFromSource {
				t.Fatalf("cached %q, want the source build\n%s", got, res.stderr)
			}
			if !strings.Contains(res.stderr, c.reason) || !strings.Contains(res.stderr, "building "+r.name) {
				t.Errorf("stderr does not say %q and that it builds %s:\n%s", c.reason, r.name, res.stderr)
			}
			if c.noRequests && len(h.site.requested()) > 0 {
				t.Errorf("requests sent: %v", h.site.requested())
			}
			if !strings.Contains(h.goCalls(), r.sourceBuild) {
				t.Errorf("the source build did not build %s:\n%s", r.sourceBuild, h.goCalls())
			}
			// The failed attempt costs little: the stand-in build is instant
			// and the connect timeout 2 s; the bound leaves room for a
			// loaded machine (seconds, where a hang would be minutes).
			if res.elapsed > 15*time.Second {
				t.Errorf("took %v", res.elapsed)
			}
			t.Logf("failed download and fallback: %v", res.elapsed.Round(time.Millisecond))
		})
	}
}

// A binary in the cache is used as it is: no request, no build, not even
// with the release site unreachable.
func TestUsesTheCacheWithoutNetwork(t *testing.T) {
	for _, mirror := range []string{"", "http://127.0.0.1:1"} {
		h := newHarness(t, false)
		if mirror != "" {
			h.extra = append(h.extra, "PARSER_OPERATOR_RELEASE_MIRROR="+mirror)
		}
		for _, r := range releases() {
			r.publish(t, h.site, h.pin, fakeBinary(r.name))
			path := filepath.Join(h.cache, r.name+"-"+h.pin[r.versionVar])
			if err := os.WriteFile(path, []byte("#!/bin/sh\necho cached\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			res := h.run(r.name)
			if res.err != nil || res.stdout != path || res.stderr != "" {
				t.Errorf("hack/tool.sh %s: %v, printed %q, stderr %q; want %s and silence", r.name, res.err, res.stdout, res.stderr, path)
			}
			if data, _ := os.ReadFile(path); string(data) != "#!/bin/sh\necho cached\n" {
				t.Errorf("%s was replaced", path)
			}
		}
		if got := h.site.requested(); len(got) > 0 {
			t.Errorf("requests sent for cached binaries: %v", got)
		}
		if calls := h.goCalls(); calls != "" {
			t.Errorf("built although cached: %s", calls)
		}
	}
}

// The real fallback: a refused download of gotestsum (the cheapest tool)
// ends in the real `go install` from the module proxy, and the binary works.
func TestRealSourceBuildAfterARefusedDownload(t *testing.T) {
	if testing.Short() {
		t.Skip("builds gotestsum from the Go module proxy")
	}
	h := newHarness(t, true)
	var r release
	for _, r = range releases() {
		if r.name == "gotestsum" {
			break
		}
	}
	artifact := r.publish(t, h.site, h.pin, fakeBinary(r.name))
	h.site.put(artifact, tarGz(t, map[string][]byte{"gotestsum": []byte("tampered")}))
	res := h.run(r.name)
	h.cached(r, res)
	out, err := exec.Command(res.stdout, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "v"+h.pin["GOTESTSUM_VERSION"]) {
		t.Fatalf("%s --version: %v %s\n%s", res.stdout, err, out, res.stderr)
	}
	if !strings.Contains(res.stderr, "checksum mismatch") || !strings.Contains(res.stderr, "built gotestsum") {
		t.Errorf("stderr:\n%s", res.stderr)
	}
	t.Logf("refused download + real source build: %v", res.elapsed.Round(time.Millisecond))
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func filepathBase(u string) string { return u[strings.LastIndex(u, "/")+1:] }
