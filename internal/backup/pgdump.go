package backup

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"
)

// DumpOptions says how DumpShard runs PostgreSQL's own tools. Connection
// settings reach psql and pg_dump through libpq's environment (PGHOST,
// PGPORT, PGUSER, PGDATABASE, and PGPASSWORD or PGPASSFILE from the shard's
// Secret), never through arguments.
type DumpOptions struct {
	// PgDump and Psql are the programs (default: found on PATH).
	PgDump, Psql string
	// Args are extra pg_dump arguments (a database name, --exclude-table...).
	Args []string
	// Env is the environment of both programs (default: this process's).
	Env []string
	// Stderr receives both programs' diagnostics.
	Stderr io.Writer
}

func (o *DumpOptions) defaults() {
	if o.PgDump == "" {
		o.PgDump = "pg_dump"
	}
	if o.Psql == "" {
		o.Psql = "psql"
	}
	if o.Stderr == nil {
		o.Stderr = io.Discard
	}
}

// snapshotQuery runs in the REPEATABLE READ transaction that holds the
// snapshot open for pg_dump: it exports the snapshot (taken when this
// statement starts executing) and then reads where the WAL is and the
// clock, so both are at or after the snapshot: nothing the dump holds was
// committed after them. On a standby the position is the replayed LSN.
const snapshotQuery = `SELECT pg_export_snapshot() || '|' ||
  (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text || '|' ||
  to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || '|' ||
  current_setting('server_version');
`

// DumpShard backs up shard index into set setID and records where the dump
// is consistent. A psql session opens a REPEATABLE READ transaction,
// exports its snapshot and reads the WAL position and time in that same
// statement; pg_dump -Fc --snapshot then dumps exactly what that
// transaction sees, streamed into the store; the session ends after. The
// shard's record is written only when pg_dump exited 0 and the stored
// object has the streamed size, so a failed dump leaves the set incomplete.
func (s *Store) DumpShard(ctx context.Context, p Platform, setID string, index int, o DumpOptions) (ShardRecord, error) {
	o.defaults()
	if err := checkSet(p, setID); err != nil {
		return ShardRecord{}, err
	}
	version, err := PgDumpVersion(ctx, o.PgDump, o.Env)
	if err != nil {
		return ShardRecord{}, err
	}
	started := time.Now()
	holder, pos, err := startSnapshot(ctx, o)
	if err != nil {
		return ShardRecord{}, err
	}
	defer func() { _ = holder.close() }()
	dump, err := startPgDump(ctx, o, pos.Snapshot)
	if err != nil {
		return ShardRecord{}, err
	}
	rec, err := s.UploadShard(ctx, p, setID, index, dump, ShardMeta{Position: pos, PgDumpVersion: version, StartedAt: started})
	if err != nil {
		dump.kill()
		return ShardRecord{}, err
	}
	return rec, holder.close()
}

// PgDumpVersion is the version bin --version prints ("15.10 (Debian ...)"),
// for the manifest: pg_restore reads archives of its own and older versions.
func PgDumpVersion(ctx context.Context, bin string, env []string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, "--version")
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", bin, err)
	}
	v := strings.TrimSpace(string(out))
	if _, after, ok := strings.Cut(v, "(PostgreSQL) "); ok {
		v = after
	}
	return v, nil
}

// snapshotHolder is the psql session whose open transaction keeps the
// exported snapshot valid while pg_dump uses it.
type snapshotHolder struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  bool
	err   error
}

func startSnapshot(ctx context.Context, o DumpOptions) (*snapshotHolder, *Position, error) {
	cmd := exec.CommandContext(ctx, o.Psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1") //nolint:gosec // G204: psql from DumpOptions, set by the backup Job's own command line.
	cmd.Env = o.Env
	cmd.Stderr = o.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("starting psql: %w", err)
	}
	h := &snapshotHolder{cmd: cmd, stdin: stdin}
	if _, err := io.WriteString(stdin, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\n"+snapshotQuery); err != nil {
		_ = h.close()
		return nil, nil, fmt.Errorf("psql: %w", err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		_ = h.close()
		return nil, nil, fmt.Errorf("psql: taking the snapshot: %w", err)
	}
	pos, err := parsePosition(line)
	if err != nil {
		_ = h.close()
		return nil, nil, err
	}
	return h, pos, nil
}

func parsePosition(line string) (*Position, error) {
	f := strings.Split(strings.TrimSpace(line), "|")
	if len(f) != 4 {
		return nil, fmt.Errorf("psql: unexpected snapshot line %q", line)
	}
	t, err := time.Parse(time.RFC3339Nano, f[2])
	if err != nil {
		return nil, fmt.Errorf("psql: snapshot time %q: %w", f[2], err)
	}
	return &Position{Snapshot: f[0], LSN: f[1], Time: t, ServerVersion: f[3]}, nil
}

// close ends the transaction and the session (once).
func (h *snapshotHolder) close() error {
	if h.done {
		return h.err
	}
	h.done = true
	_, _ = io.WriteString(h.stdin, "COMMIT;\n")
	_ = h.stdin.Close()
	if err := h.cmd.Wait(); err != nil {
		h.err = fmt.Errorf("psql: %w", err)
	}
	return h.err
}

// dumpReader is pg_dump's stdout; at its end it waits for pg_dump and turns
// a failed exit into a read error, so an upload of a dump cut short fails
// (and minio-go aborts the multipart upload) instead of storing it.
type dumpReader struct {
	cmd     *exec.Cmd
	out     io.ReadCloser
	stderr  *tailBuffer
	waited  bool
	waitErr error
}

func startPgDump(ctx context.Context, o DumpOptions, snapshot string) (*dumpReader, error) {
	args := append([]string{"--format=custom", "--snapshot=" + snapshot}, o.Args...)
	cmd := exec.CommandContext(ctx, o.PgDump, args...) //nolint:gosec // G204: pg_dump from DumpOptions, set by the backup Job's own command line.
	cmd.Env = o.Env
	tail := &tailBuffer{max: 4096}
	cmd.Stderr = io.MultiWriter(o.Stderr, tail)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting pg_dump: %w", err)
	}
	return &dumpReader{cmd: cmd, out: out, stderr: tail}, nil
}

func (d *dumpReader) Read(p []byte) (int, error) {
	if d.waited {
		return 0, d.waitErr
	}
	n, err := d.out.Read(p)
	if errors.Is(err, io.EOF) {
		d.waited, d.waitErr = true, io.EOF
		if werr := d.cmd.Wait(); werr != nil {
			d.waitErr = fmt.Errorf("pg_dump: %w: %s", werr, strings.TrimSpace(d.stderr.String()))
		}
		return n, d.waitErr
	}
	return n, err
}

// kill stops a pg_dump whose output is no longer read.
func (d *dumpReader) kill() {
	if !d.waited {
		_ = d.cmd.Process.Kill()
		d.waited, d.waitErr = true, d.cmd.Wait()
	}
}

// tailBuffer keeps the last max bytes written: the end of pg_dump's stderr,
// where its error is.
type tailBuffer struct {
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.b) }
