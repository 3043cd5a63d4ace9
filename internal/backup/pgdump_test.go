package backup_test

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vkparser/parser-operator/internal/backup"
	"github.com/vkparser/parser-operator/internal/backup/pgtest"
	"github.com/vkparser/parser-operator/internal/backup/s3test"
)

// TestDumpShardIsConsistentAtItsRecordedPosition dumps a database while one
// session keeps inserting rows, one transaction each, stamped with the
// server's clock. A consistent dump of a single sequential writer is a
// prefix of its rows (ids 1..K, no gap), and because the position's time is
// read after the snapshot, every restored row is older than it; rows
// written after it (the writer goes on) are absent. pg_dump taking its own
// later snapshot instead of the exported one would restore rows newer than
// the recorded time.
func TestDumpShardIsConsistentAtItsRecordedPosition(t *testing.T) {
	pg := pgtest.Start(t)
	srv := s3test.Start(t)
	ctx := testContext(t)
	st := newStore(t, srv, 0)
	pg.SQL(t, "postgres", "CREATE DATABASE shard; CREATE DATABASE restored;")
	pg.SQL(t, "shard", `CREATE TABLE events (id bigserial PRIMARY KEY, ts timestamptz NOT NULL DEFAULT clock_timestamp(), note text);
		INSERT INTO events (note) SELECT 'seed ' || i FROM generate_series(1, 5000) i;`)

	stopWriter := startWriter(t, pg)
	waitRows(t, pg, "shard", 5200) // the writer is running
	id := backup.NewSetID(time.Now())
	rec, err := st.DumpShard(ctx, platform, id, 0, backup.DumpOptions{
		PgDump: pg.Bin("pg_dump"), Psql: pg.Bin("psql"), Env: pg.Env("shard"), Stderr: os.Stderr,
	})
	if err != nil {
		t.Fatal(err)
	}
	after, _ := strconv.Atoi(pg.SQL(t, "shard", "SELECT count(*) FROM events"))
	waitRows(t, pg, "shard", after+100) // and went on after the dump
	stopWriter()

	pos := rec.Position
	if pos == nil || pos.Snapshot == "" || !strings.Contains(pos.LSN, "/") || pos.Time.IsZero() || !strings.HasPrefix(pos.ServerVersion, "15") {
		t.Fatalf("position %+v", pos)
	}
	if !strings.HasPrefix(rec.PgDumpVersion, "15.") {
		t.Errorf("pg_dump version %q", rec.PgDumpVersion)
	}
	file := t.TempDir() + "/shard.dump"
	if err := st.DownloadFile(ctx, rec, file); err != nil {
		t.Fatal(err)
	}
	restore := exec.Command(pg.Bin("pg_restore"), "--no-owner", "--exit-on-error", "-d", "restored", file)
	restore.Env = pg.Env("restored")
	if out, err := restore.CombinedOutput(); err != nil {
		t.Fatalf("pg_restore: %v\n%s", err, out)
	}
	got := pg.SQL(t, "restored", "SELECT count(*), max(id), max(ts) < '"+pos.Time.Format(time.RFC3339Nano)+"'::timestamptz FROM events")
	f := strings.Split(got, "|")
	count, _ := strconv.Atoi(f[0])
	maxID, _ := strconv.Atoi(f[1])
	if count != maxID || f[2] != "t" {
		t.Fatalf("restored rows: count %d, max id %d, all older than %s: %s; want a gap-free prefix older than the position", count, maxID, pos.Time, f[2])
	}
	newer := pg.SQL(t, "shard", "SELECT count(*) FROM events WHERE ts > '"+pos.Time.Format(time.RFC3339Nano)+"'::timestamptz")
	if n, _ := strconv.Atoi(newer); n == 0 || count >= after {
		t.Fatalf("the writer added %s rows after the position, the dump has %d of %d: the test did not overlap the dump", newer, count, after)
	}
	t.Logf("dump of %d rows (%d bytes) consistent at LSN %s, %s; %s rows written after it are absent", count, rec.Size, pos.LSN, pos.Time.Format(time.RFC3339Nano), newer)
}

// startWriter runs one psql session inserting a row per transaction until
// the returned function is called.
func startWriter(t *testing.T, pg *pgtest.Server) func() {
	t.Helper()
	cmd := exec.Command(pg.Bin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1")
	cmd.Env = pg.Env("shard")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			if _, err := fmt.Fprintf(stdin, "INSERT INTO events (note) VALUES ('live %d');\n", i); err != nil {
				return
			}
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			close(done)
			wg.Wait()
			_ = stdin.Close()
			if err := cmd.Wait(); err != nil {
				t.Errorf("writer: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func waitRows(t *testing.T, pg *pgtest.Server, db string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		c, _ := strconv.Atoi(pg.SQL(t, db, "SELECT count(*) FROM events"))
		if c >= n {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: fewer than %d rows after 30s", db, n)
}

// TestDumpShardWritesNoRecordWhenPgDumpFails runs a pg_dump that writes the
// start of an archive and then fails, as one does when the connection
// drops mid-dump: the upload must fail, no record may be written, and the
// set cannot get a manifest.
func TestDumpShardWritesNoRecordWhenPgDumpFails(t *testing.T) {
	pg := pgtest.Start(t)
	srv := s3test.Start(t)
	ctx := testContext(t)
	st := newStore(t, srv, 0)
	failing := t.TempDir() + "/pg_dump"
	script := "#!/bin/sh\n[ \"$1\" = --version ] && { echo 'pg_dump (PostgreSQL) 15.0'; exit 0; }\n" +
		"printf 'PGDMP partial archive'; echo 'pg_dump: error: connection lost' >&2; exit 1\n"
	if err := os.WriteFile(failing, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	id := backup.NewSetID(time.Now())
	_, err := st.DumpShard(ctx, platform, id, 0, backup.DumpOptions{PgDump: failing, Psql: pg.Bin("psql"), Env: pg.Env("postgres")})
	if err == nil || !strings.Contains(err.Error(), "connection lost") {
		t.Fatalf("DumpShard with a failing pg_dump: %v, want its error", err)
	}
	if keys := listKeys(t, ctx, srv, "backups/prod/parser/vk/"+id+"/"); len(keys) != 0 {
		t.Errorf("a failed dump left objects %v", keys)
	}
	_, err = st.WriteManifest(ctx, platform, id, backup.ManifestInput{ShardCount: 1, ShardMap: shardMapJSON(t, 1)})
	if err == nil || !strings.Contains(err.Error(), "shard 0 has not finished") {
		t.Errorf("manifest after a failed dump: %v", err)
	}
}
