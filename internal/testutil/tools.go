package testutil

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// LookSbin finds a command on PATH or in the sbin directories a non-root
// PATH often lacks (Debian installs redis-server and nginx there).
func LookSbin(name string) (string, error) {
	path, err := exec.LookPath(name)
	if err == nil {
		return path, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		if p, statErr := exec.LookPath(filepath.Join(dir, name)); statErr == nil {
			return p, nil
		}
	}
	return "", err
}

// MissingTool skips a test whose real server or tool is missing on a
// developer's machine, and fails it in CI (env CI set), where
// hack/install-test-deps.sh must have installed it.
func MissingTool(t testing.TB, what string, err error) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is required in CI (hack/install-test-deps.sh installs it): %v", what, err)
	}
	t.Skipf("skipping: %s is not available (%v); run hack/install-test-deps.sh", what, err)
}

// RequireRedisServer returns redis-server's path (see MissingTool).
func RequireRedisServer(t testing.TB) string {
	t.Helper()
	bin, err := LookSbin("redis-server")
	if err != nil {
		MissingTool(t, "redis-server (Debian package redis-server)", err)
	}
	return bin
}

// FreeRedisPort is a TCP port free on every address whose Redis Cluster bus
// port, port+10000, is free too.
func FreeRedisPort(t testing.TB) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", ":0") //nolint:gosec // G102: a test helper picking a free port, closed at once.
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		if port+10000 > 65535 {
			_ = l.Close()
			continue
		}
		bus, err := net.Listen("tcp", ":"+strconv.Itoa(port+10000))
		_ = l.Close()
		if err == nil {
			_ = bus.Close()
			return port
		}
	}
	t.Fatal("no free port pair (port, port+10000) found")
	return 0
}
