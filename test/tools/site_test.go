package tools

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
)

// releaseSite is the stand-in for every release site: a file at
// https://HOST/PATH upstream is served at /HOST/PATH, the layout
// PARSER_OPERATOR_RELEASE_MIRROR expects. It records every request.
type releaseSite struct {
	srv      *httptest.Server
	mu       sync.Mutex
	files    map[string][]byte
	requests []string
}

func newReleaseSite(t *testing.T) *releaseSite {
	t.Helper()
	s := &releaseSite{files: map[string][]byte{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests = append(s.requests, r.URL.Path)
		data, ok := s.files[r.URL.Path]
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(data)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// put serves data at the upstream address url (https://HOST/PATH).
func (s *releaseSite) put(url string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files["/"+strings.TrimPrefix(url, "https://")] = data
}

func (s *releaseSite) remove(url string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.files, "/"+strings.TrimPrefix(url, "https://"))
}

func (s *releaseSite) requested() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// tarGz is a .tar.gz of files (name -> content), in name order.
func tarGz(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		hdr := &tar.Header{Name: name, Mode: 0o755, Size: int64(len(files[name])), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(files[name]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sumsFile is a sha256sum-style list: "<hex>  <name>" lines.
func sumsFile(entries map[string]string) []byte {
	names := make([]string, 0, len(entries))
	for name := range entries {
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, name := range names {
		fmt.Fprintf(&b, "%s  %s\n", entries[name], name)
	}
	return []byte(b.String())
}

// githubRelease is the release API's answer for a tag: assets with the
// digest GitHub computes at upload ("sha256:<hex>"; a digest "null" is JSON
// null, as for old assets, and "" leaves the field out, as older API
// answers do), an uploader object nested in each, as api.github.com returns
// them.
func githubRelease(t *testing.T, repo, tag string, digests map[string]string, indent bool) []byte {
	t.Helper()
	type user struct {
		Login string `json:"login"`
		ID    int    `json:"id"`
		URL   string `json:"url"`
	}
	type asset struct {
		URL                string          `json:"url"`
		ID                 int             `json:"id"`
		Name               string          `json:"name"`
		Uploader           user            `json:"uploader"`
		ContentType        string          `json:"content_type"`
		Size               int             `json:"size"`
		Digest             json.RawMessage `json:"digest,omitempty"`
		DownloadCount      int             `json:"download_count"`
		BrowserDownloadURL string          `json:"browser_download_url"`
	}
	names := make([]string, 0, len(digests))
	for name := range digests {
		names = append(names, name)
	}
	sort.Strings(names)
	var assets []asset
	for i, name := range names {
		a := asset{
			URL: fmt.Sprintf("https://api.github.com/repos/%s/releases/assets/%d", repo, i), ID: i, Name: name,
			Uploader:    user{Login: "k8s-release-robot", ID: 1, URL: "https://api.github.com/users/k8s-release-robot"},
			ContentType: "application/octet-stream", Size: 1000 + i, DownloadCount: 7,
			BrowserDownloadURL: fmt.Sprintf("https://github.com/%s/releases/download/%s/%s", repo, tag, name),
		}
		switch d := digests[name]; d {
		case "":
		case "null":
			a.Digest = json.RawMessage("null")
		default:
			a.Digest = json.RawMessage(`"sha256:` + d + `"`)
		}
		assets = append(assets, a)
	}
	release := map[string]any{
		"tag_name": tag, "name": tag, "body": "Changes, fixes, and \"digest\": notes, {braces} included.",
		"author": user{Login: "k8s-release-robot", ID: 1}, "assets": assets,
	}
	var data []byte
	var err error
	if indent {
		data, err = json.MarshalIndent(release, "", "  ")
	} else {
		data, err = json.Marshal(release)
	}
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// pins are the versions hack/tool.sh pins (KWOK_VERSION=${KWOK_VERSION:-0.8.0}),
// read from the script so the fake releases sit where the real ones do.
func pins(t *testing.T) map[string]string {
	t.Helper()
	script, err := os.ReadFile(toolSh(t))
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^([A-Z_]+_VERSION)=\$\{[A-Z_]+:-([0-9.]+)\}`).FindAllStringSubmatch(string(script), -1) {
		found[m[1]] = m[2]
	}
	for _, v := range []string{"KUBERNETES_VERSION", "ETCD_VERSION", "CONTROLLER_TOOLS_VERSION", "KWOK_VERSION", "HELM_VERSION", "GOTESTSUM_VERSION", "VERSITYGW_VERSION", "GOLANGCI_LINT_VERSION"} {
		if found[v] == "" {
			t.Fatalf("hack/tool.sh pins no %s", v)
		}
	}
	return found
}

func toolSh(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "hack", "tool.sh")
}
