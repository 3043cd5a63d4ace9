// Package pgtest starts a real PostgreSQL server for tests: Debian's
// PostgreSQL 15 (initdb, pg_ctl), on a free loopback port, in a temporary
// directory, as the postgres user when the test runs as root (initdb refuses
// to run as root).
package pgtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/vkparser/parser-operator/internal/testutil"
)

// DefaultBinDir is where Debian's postgresql-15 installs its programs.
const DefaultBinDir = "/usr/lib/postgresql/15/bin"

// Server is a running PostgreSQL.
type Server struct {
	// BinDir holds initdb, pg_ctl, psql, pg_dump and pg_restore.
	BinDir string
	Port   int
	dir    string
	run    func(name string, args ...string) *exec.Cmd
}

// BinDir is $PG_BINDIR or DefaultBinDir, when it has the programs the tests
// run (see testutil.MissingTool).
func BinDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("PG_BINDIR")
	if dir == "" {
		dir = DefaultBinDir
	}
	for _, p := range []string{"initdb", "pg_ctl", "psql", "pg_dump", "pg_restore"} {
		if _, err := exec.LookPath(filepath.Join(dir, p)); err != nil {
			testutil.MissingTool(t, "PostgreSQL 15 (Debian package postgresql)", err)
		}
	}
	return dir
}

// Start initializes a cluster (trust authentication, superuser postgres,
// fsync off: test data need not survive a crash), starts it on 127.0.0.1 and
// stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{BinDir: BinDir(t)}
	dir, run := ownedTempDir(t)
	s.dir, s.run = dir, run
	s.Port = freePort(t)
	data := filepath.Join(dir, "data")
	s.mustRun(t, run(filepath.Join(s.BinDir, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"))
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off -c full_page_writes=off", s.Port, dir)
	s.mustRun(t, run(filepath.Join(s.BinDir, "pg_ctl"), "-D", data, "-o", opts, "-l", filepath.Join(dir, "log"), "-w", "-t", "60", "start"))
	t.Cleanup(func() {
		cmd := run(filepath.Join(s.BinDir, "pg_ctl"), "-D", data, "-m", "fast", "-w", "-t", "30", "stop")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("stopping PostgreSQL: %v\n%s", err, out)
		}
	})
	return s
}

// ownedTempDir is a temporary directory the server's user owns, and a way to
// run commands as that user. As root, that is the postgres user, whose
// access to the test's own 0700 TempDir would be refused.
func ownedTempDir(t testing.TB) (string, func(string, ...string) *exec.Cmd) {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if os.Geteuid() != 0 {
		return dir, exec.Command
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		testutil.MissingTool(t, "the postgres user (Debian package postgresql)", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	return dir, func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(name, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "HOME="+dir)
		return cmd
	}
}

func (s *Server) mustRun(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	if out, err := cmd.CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "log"))
		t.Fatalf("%s: %v\n%s\n%s", strings.Join(cmd.Args, " "), err, out, log)
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

// Env is the libpq environment that connects psql, pg_dump and pg_restore
// to the server as postgres, to database db.
func (s *Server) Env(db string) []string {
	return append(os.Environ(), "PGHOST=127.0.0.1", "PGPORT="+strconv.Itoa(s.Port), "PGUSER=postgres", "PGDATABASE="+db,
		"PATH="+s.BinDir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// Bin is the path of one of the server's programs.
func (s *Server) Bin(name string) string { return filepath.Join(s.BinDir, name) }

// SQL runs sql in db with psql (stopping at the first error) and returns its
// unaligned, header-less output.
func (s *Server) SQL(t testing.TB, db, sql string) string {
	t.Helper()
	out, err := s.TrySQL(db, sql)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TrySQL is SQL returning the error.
func (s *Server) TrySQL(db, sql string) (string, error) {
	cmd := exec.Command(s.Bin("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1")
	cmd.Env = s.Env(db)
	cmd.Stdin = strings.NewReader(sql)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("psql %s: %w\n%s", db, err, stderr.String())
	}
	return strings.TrimSpace(stdout.String()), nil
}
