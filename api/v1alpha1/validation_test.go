package v1alpha1_test

// These tests prove that the CRD itself (OpenAPI bounds and CEL rules) refuses
// bad ParserPlatforms at `kubectl apply` time, with a message that names the
// field, whether or not a webhook or the operator runs. They apply the files
// under testdata with the real kubectl against one real API server (envtest:
// kube-apiserver + etcd) that has only the generated CRD installed.
//
// testdata/valid/*.yaml        must be accepted (so refusing everything fails)
// testdata/invalid/*.yaml      must be refused; each "# expect: <text>" line
//                              at the top names a substring of kubectl's error
// testdata/transitions/<case>/ before.yaml is created, then after.yaml is
//                              applied over it: refused when it has
//                              "# expect:" lines, accepted otherwise

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// minInvalidCases guards against the glob silently matching fewer files.
const minInvalidCases = 18

// kubeconfig is the path of a kubeconfig for the API server TestMain starts;
// cacheDir keeps kubectl's discovery cache out of the user's home.
var kubeconfig, cacheDir string

func TestMain(m *testing.M) {
	os.Exit(runWithAPIServer(m))
}

// runWithAPIServer starts one API server for every test in the file, since
// starting one takes seconds and the machine is small.
func runWithAPIServer(m *testing.M) int {
	assets, err := envtestAssets()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	testEnv := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	if _, err := testEnv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "starting envtest:", err)
		return 1
	}
	defer func() { _ = testEnv.Stop() }()

	dir, err := os.MkdirTemp("", "parserplatform-validation-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	if err := writeKubeconfig(testEnv, dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// writeKubeconfig makes a cluster-admin user on the test API server, as a
// real user of kubectl would have.
func writeKubeconfig(testEnv *envtest.Environment, dir string) error {
	user, err := testEnv.AddUser(envtest.User{Name: "validation-test", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("adding a kubectl user: %w", err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		return fmt.Errorf("building its kubeconfig: %w", err)
	}
	kubeconfig = filepath.Join(dir, "kubeconfig")
	cacheDir = filepath.Join(dir, "kube-cache")
	return os.WriteFile(kubeconfig, data, 0o600)
}

// envtestAssets finds kube-apiserver and etcd: KUBEBUILDER_ASSETS when set,
// else the project's script.
func envtestAssets() (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	out, err := exec.Command(filepath.Join("..", "..", "hack", "envtest-assets.sh")).Output()
	if err != nil {
		return "", fmt.Errorf("hack/envtest-assets.sh: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// kubectl runs the real kubectl against the test API server.
func kubectl(args ...string) (stdout, stderr string, err error) {
	args = append([]string{"--kubeconfig", kubeconfig, "--cache-dir", cacheDir}, args...)
	var out, errOut bytes.Buffer
	cmd := exec.Command("kubectl", args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// expectations reads the "# expect: <text>" lines of a file's leading
// comment block.
func expectations(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	var expect []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "#") {
			break
		}
		if text, ok := strings.CutPrefix(line, "# expect:"); ok {
			expect = append(expect, strings.TrimSpace(text))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return expect
}

// mustApply applies a file that the API server has to accept.
func mustApply(t *testing.T, path string) {
	t.Helper()
	if _, stderr, err := kubectl("apply", "-f", path); err != nil {
		t.Fatalf("kubectl apply -f %s was refused (%v):\n%s", path, err, stderr)
	}
}

// mustRefuse applies a file that the API server has to refuse as invalid,
// and checks that the error says every expected text.
func mustRefuse(t *testing.T, path string, expect []string) {
	t.Helper()
	if len(expect) == 0 {
		t.Fatalf("%s has no '# expect: ...' line", path)
	}
	stdout, stderr, err := kubectl("apply", "-f", path)
	if err == nil {
		t.Fatalf("kubectl apply -f %s was accepted, want it refused with %q:\n%s", path, expect, stdout)
	}
	t.Logf("kubectl apply -f %s:\n%s", path, stderr)
	// "is invalid" is the API server's 422: refused by validation, not by a
	// parse error or a lost connection.
	for _, want := range append([]string{"is invalid"}, expect...) {
		if !strings.Contains(stderr, want) {
			t.Errorf("kubectl apply -f %s: error does not say %q:\n%s", path, want, stderr)
		}
	}
}

func TestValidPlatformsAreAccepted(t *testing.T) {
	if _, stderr, err := kubectl("create", "namespace", "parser"); err != nil {
		t.Fatalf("creating namespace parser: %v\n%s", err, stderr)
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "valid", "*.yaml"))
	if len(files) == 0 {
		t.Fatal("no testdata/valid/*.yaml")
	}
	for _, path := range files {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".yaml"), func(t *testing.T) {
			mustApply(t, path)
			// Applying the same manifest again is not a change and must
			// pass the transition rules too.
			mustApply(t, path)
		})
	}
}

func TestInvalidPlatformsAreRefused(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "invalid", "*.yaml"))
	if len(files) < minInvalidCases {
		t.Fatalf("found %d testdata/invalid/*.yaml, want at least %d", len(files), minInvalidCases)
	}
	for _, path := range files {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".yaml"), func(t *testing.T) {
			t.Parallel()
			mustRefuse(t, path, expectations(t, path))
		})
	}
}

func TestTransitions(t *testing.T) {
	dirs, _ := filepath.Glob(filepath.Join("testdata", "transitions", "*"))
	if len(dirs) == 0 {
		t.Fatal("no testdata/transitions/*")
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			t.Parallel()
			before, after := filepath.Join(dir, "before.yaml"), filepath.Join(dir, "after.yaml")
			mustApply(t, before)
			stored := shards(t, before)
			expect := expectations(t, after)
			if len(expect) == 0 {
				mustApply(t, after)
				return
			}
			mustRefuse(t, after, expect)
			if now := shards(t, before); now != stored {
				t.Errorf("a refused change moved spec.database.shards from %s to %s", stored, now)
			}
		})
	}
}

// shards reads spec.database.shards of the stored object that file declares.
func shards(t *testing.T, file string) string {
	t.Helper()
	out, stderr, err := kubectl("get", "-f", file, "-o", "jsonpath={.spec.database.shards}")
	if err != nil {
		t.Fatalf("kubectl get -f %s: %v\n%s", file, err, stderr)
	}
	return out
}
