// Package s3test starts a real S3-compatible server for tests: versitygw
// (posix backend) built from the Go module proxy by hack/tool.sh, on a free
// loopback port, storing objects as plain files in a temporary directory.
package s3test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/vkparser/parser-operator/internal/backup"
	"github.com/vkparser/parser-operator/internal/testutil"
)

// Test credentials: the server's root user.
const (
	AccessKeyID     = "parser-test-access"
	SecretAccessKey = "parser-test-secret-0123456789" //nolint:gosec // G101: the fixed key of a throw-away local test server.
)

// Server is a running versitygw.
type Server struct {
	// Endpoint is http://127.0.0.1:<port>.
	Endpoint string
	// Bucket exists and is empty at start.
	Bucket string
	// Dir is the posix backend's root: object key K of Bucket is the file
	// Dir/Bucket/K.
	Dir string
	// Log collects the server's output.
	Log *testutil.SyncBuffer
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// Binary is versitygw's path: $VERSITYGW when set, else hack/tool.sh builds it
// (minutes the first time on a machine, then cached).
func Binary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		if p := os.Getenv("VERSITYGW"); p != "" {
			binPath = p
			return
		}
		root, err := repoRoot()
		if err != nil {
			binErr = err
			return
		}
		cmd := exec.Command(filepath.Join(root, "hack", "tool.sh"), "versitygw")
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		binPath, binErr = strings.TrimSpace(string(out)), err
	})
	if binErr != nil {
		testutil.MissingTool(t, "versitygw (hack/tool.sh versitygw)", binErr)
	}
	return binPath
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "hack", "tool.sh")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("hack/tool.sh not found above the working directory")
		}
		dir = parent
	}
}

// Start runs a plain-HTTP server for the test, with bucket "backups", and
// stops it at the end of the test.
func Start(t testing.TB) *Server {
	t.Helper()
	return startWith(t, nil)
}

// StartTLS is Start serving HTTPS with a certificate for 127.0.0.1 signed by
// a fresh CA, whose PEM it returns (what caSecretRef would hold).
func StartTLS(t testing.TB) (*Server, []byte) {
	t.Helper()
	caPEM, certFile, keyFile := selfSignedCA(t)
	return startWith(t, []string{"--cert", certFile, "--key", keyFile}), caPEM
}

func startWith(t testing.TB, tlsArgs []string) *Server {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	var lastErr error
	for range 3 { // the free port may be taken between probe and bind
		s, err := start(t, bin, dir, tlsArgs)
		if err == nil {
			s.makeBucket(t, "backups")
			return s
		}
		lastErr = err
	}
	t.Fatalf("starting versitygw: %v", lastErr)
	return nil
}

func start(t testing.TB, bin, dir string, tlsArgs []string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	scheme := "http"
	if tlsArgs != nil {
		scheme = "https"
	}
	log := &testutil.SyncBuffer{}
	args := append(append([]string{"--port", addr, "--quiet"}, tlsArgs...), "posix", dir)
	cmd := exec.Command(bin, args...)
	// The root credentials go through the environment, as in production.
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID="+AccessKeyID, "ROOT_SECRET_ACCESS_KEY="+SecretAccessKey)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	if err := waitListening(scheme+"://"+addr, exited); err != nil {
		_ = cmd.Process.Kill()
		<-exited //nolint:errcheck // stopping it on purpose: its exit error is expected.
		return nil, fmt.Errorf("%w\n%s", err, log.String())
	}
	t.Cleanup(func() { stop(t, cmd, exited) })
	return &Server{Endpoint: scheme + "://" + addr, Dir: dir, Log: log}, nil
}

func stop(t testing.TB, cmd *exec.Cmd, exited chan error) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited: //nolint:errcheck // stopping it on purpose: its exit error is expected.
	case <-time.After(10 * time.Second):
		t.Log("versitygw did not stop on SIGTERM; killing it")
		_ = cmd.Process.Kill()
		<-exited //nolint:errcheck // stopping it on purpose: its exit error is expected.
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitListening waits until the server answers HTTP(S), or exits, or 30 s
// pass. Any answer will do, so the certificate is not checked here.
func waitListening(url string, exited chan error) error {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // a readiness probe of a test server.
	}}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("versitygw exited: %w", err)
		default:
		}
		resp, err := client.Get(url + "/")
		if err == nil {
			_ = resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("versitygw did not answer within 30s")
}

// Client is a plain S3 client of the server, for tests that look at or
// tamper with objects behind the backup package's back.
func (s *Server) Client(t testing.TB) *minio.Client {
	t.Helper()
	host, secure := strings.CutPrefix(s.Endpoint, "https://")
	host = strings.TrimPrefix(host, "http://")
	c, err := minio.New(host, &minio.Options{
		Creds:  credentials.NewStaticV4(AccessKeyID, SecretAccessKey, ""),
		Secure: secure,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the test's own client of its own server.
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (s *Server) makeBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Client(t).MakeBucket(ctx, name, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("creating bucket %s: %v", name, err)
	}
	s.Bucket = name
}

// ObjectStore is the backup configuration for this server and prefix.
func (s *Server) ObjectStore(prefix string) backup.ObjectStore {
	return backup.ObjectStore{
		Endpoint: s.Endpoint, Bucket: s.Bucket, Prefix: prefix,
		Credentials: backup.Credentials{AccessKeyID: AccessKeyID, SecretAccessKey: SecretAccessKey},
	}
}

// Env is the environment a backup CLI needs to reach the server.
func (s *Server) Env() []string {
	return []string{backup.AccessKeyIDEnv + "=" + AccessKeyID, backup.SecretAccessKeyEnv + "=" + SecretAccessKey}
}

// ObjectPath is the file that holds key in the posix backend.
func (s *Server) ObjectPath(key string) string {
	return filepath.Join(s.Dir, s.Bucket, filepath.FromSlash(key))
}
