package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vkparser/parser-operator/internal/backup"
	"github.com/vkparser/parser-operator/internal/backup/pgtest"
	"github.com/vkparser/parser-operator/internal/backup/s3test"
	"github.com/vkparser/parser-operator/internal/sharding"
)

func TestBackupUsageNamesEveryFlag(t *testing.T) {
	o := &backupOptions{}
	fs := newBackupFlagSet(o)
	fs.VisitAll(func(f *flag.Flag) {
		if !regexp.MustCompile(`(^|[\s\[])--?` + regexp.QuoteMeta(f.Name) + `($|[^a-z-])`).MatchString(backupUsage) {
			t.Errorf("backup usage does not mention --%s", f.Name)
		}
	})
	for command := range backupCommands {
		if !strings.Contains(backupUsage, "  "+command+" ") {
			t.Errorf("backup usage does not describe %s", command)
		}
	}
}

func TestBackupFlagsAreChecked(t *testing.T) {
	store := []string{"--endpoint", "http://127.0.0.1:1", "--bucket", "b", "--namespace", "parser", "--platform", "vk"}
	set := backup.NewSetID(time.Now())
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--help"}, 0, "Usage: parser-operator backup"},
		{[]string{"restore-everything"}, 2, `unknown command "restore-everything"`},
		{append([]string{"upload", "--shard", "0"}, store...), 2, "--set is required"},
		{append([]string{"upload", "--set", set}, store...), 2, "--shard is required"},
		{append([]string{"upload", "--set", "latest", "--shard", "0"}, store...), 2, `set ID "latest"`},
		{append([]string{"upload", "--set", set, "--shard", "-1"}, store...), 2, "--shard must be 0 or more"},
		{[]string{"list", "--endpoint", "http://x", "--bucket", "b", "--platform", "vk"}, 2, "--namespace is required"},
		{append([]string{"prune", "--retain", "0"}, store...), 2, "--retain must be at least 1"},
		{append([]string{"list", "--part-size", "1"}, store...), 2, "--part-size must be 5..5120"},
		{append([]string{"list", "extra"}, store...), 2, `unexpected argument "extra"`},
		// Secrets have no flag: they would show in ps and in the Job spec.
		{append([]string{"list", "--secret-access-key", "s3cr3t"}, store...), 2, "flag provided but not defined"},
		{append([]string{"list", "--access-key-id", "AKID"}, store...), 2, "flag provided but not defined"},
		{[]string{"install"}, 2, "Usage: parser-operator backup install PATH"},
	}
	for _, tc := range cases {
		var stdout, stderr bytes.Buffer
		code := runBackup(tc.args, strings.NewReader(""), &stdout, &stderr)
		if code != tc.code || !strings.Contains(stdout.String()+stderr.String(), tc.want) {
			t.Errorf("backup %s: exit %d, output %q; want exit %d and %q", strings.Join(tc.args, " "), code, stdout.String()+stderr.String(), tc.code, tc.want)
		}
	}
}

func TestBackupWithoutCredentialsSaysWhereTheyComeFrom(t *testing.T) {
	t.Setenv(backup.AccessKeyIDEnv, "")
	t.Setenv(backup.SecretAccessKeyEnv, "")
	var stdout, stderr bytes.Buffer
	code := runBackup([]string{"list", "--endpoint", "http://127.0.0.1:1", "--bucket", "b", "--namespace", "parser", "--platform", "vk"},
		strings.NewReader(""), &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), backup.AccessKeyIDEnv) {
		t.Errorf("exit %d, %q", code, stderr.String())
	}
}

// operatorBinary builds this command once per test run: the backup tests
// run it as a Job does, at the end of a shell pipe. TestMain removes it.
var (
	binaryOnce sync.Once
	binaryDir  string
	binaryPath string
	binaryErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binaryDir != "" {
		_ = os.RemoveAll(binaryDir)
	}
	os.Exit(code)
}

func operatorBinary(t *testing.T) string {
	t.Helper()
	binaryOnce.Do(func() {
		binaryDir, binaryErr = os.MkdirTemp("", "parser-operator-bin-")
		if binaryErr != nil {
			return
		}
		binaryPath = filepath.Join(binaryDir, "parser-operator")
		out, err := exec.Command("go", "build", "-o", binaryPath, ".").CombinedOutput()
		if err != nil {
			binaryErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if binaryErr != nil {
		t.Fatal(binaryErr)
	}
	return binaryPath
}

// drPlatform is the platform under test: shards databases on one server.
type drPlatform struct {
	t        *testing.T
	pg       *pgtest.Server
	s3       *s3test.Server
	bin      string
	shards   int
	shardMap string
	dir      string
}

const drUsers = 12000

func newDRPlatform(t *testing.T, shards int) *drPlatform {
	p := &drPlatform{t: t, pg: pgtest.Start(t), s3: s3test.Start(t), bin: operatorBinary(t), shards: shards, dir: t.TempDir()}
	var list []sharding.Shard
	for i := range shards {
		list = append(list, sharding.Shard{Index: i, Host: "127.0.0.1", Port: p.pg.Port, Database: p.db(i), SecretName: "vk-db"})
	}
	doc, err := sharding.Render(sharding.NewMap(list...))
	if err != nil {
		t.Fatal(err)
	}
	p.shardMap = filepath.Join(p.dir, "shards.json")
	if err := os.WriteFile(p.shardMap, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *drPlatform) db(i int) string { return "parser_shard_" + strconv.Itoa(i) }

const usersTable = "CREATE TABLE users (id bigint PRIMARY KEY, key text NOT NULL UNIQUE, name text NOT NULL, payload text NOT NULL);"

// load writes drUsers users, each into the shard its key routes to.
func (p *drPlatform) load() {
	rows := make([]strings.Builder, p.shards)
	for id := 1; id <= drUsers; id++ {
		key := sharding.UserKey(int64(id))
		s := sharding.ShardFor(key, p.shards)
		sum := sha256.Sum256([]byte(key))
		fmt.Fprintf(&rows[s], "%d\t%s\tuser %d\t%x\n", id, key, id, sum) // 64 hex digits that compress as data does
	}
	for i := range p.shards {
		p.pg.SQL(p.t, "postgres", "CREATE DATABASE "+p.db(i))
		p.pg.SQL(p.t, p.db(i), usersTable+"\nCOPY users FROM STDIN;\n"+rows[i].String()+"\\.\n")
	}
}

// shardState is what a shard holds: row count and a checksum over every row.
func (p *drPlatform) shardState(i int) string {
	return p.pg.SQL(p.t, p.db(i), "SELECT count(*) || ' rows, md5 ' || md5(string_agg(id || ':' || key || ':' || name || ':' || payload, ',' ORDER BY id)) FROM users")
}

// checkRouting fails unless every key in shard i routes to shard i.
func (p *drPlatform) checkRouting(i int) int {
	keys := strings.Fields(p.pg.SQL(p.t, p.db(i), "SELECT key FROM users"))
	for _, k := range keys {
		if s := sharding.ShardFor(k, p.shards); s != i {
			p.t.Errorf("%s is in shard %d, routing says %d", k, i, s)
		}
	}
	return len(keys)
}

// storeFlags are the flags that put every command on the test's store and platform.
func (p *drPlatform) storeFlags() string {
	return fmt.Sprintf("--endpoint %s --bucket %s --prefix dr --namespace parser --platform vk", p.s3.Endpoint, p.s3.Bucket)
}

// sh runs script with bash -o pipefail, as a Job's container would, with
// the libpq environment of database db and the store's credentials in env.
func (p *drPlatform) sh(db, script string) (stdout, stderr string, err error) {
	cmd := exec.Command("bash", "-o", "pipefail", "-c", script)
	cmd.Env = append(append(p.pg.Env(db), p.s3.Env()...), "BIN="+p.bin, "STORE="+p.storeFlags())
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	// Whatever a Job prints ends in its log: the secret key must never be there.
	if strings.Contains(out.String()+errb.String(), s3test.SecretAccessKey) {
		p.t.Errorf("%s printed the secret access key:\n%s%s", script, out.String(), errb.String())
	}
	return out.String(), errb.String(), err
}

func (p *drPlatform) mustSh(db, script string) string {
	p.t.Helper()
	out, errOut, err := p.sh(db, script)
	if err != nil {
		p.t.Fatalf("%s: %v\n%s", script, err, errOut)
	}
	return out
}

// pipeBackup makes a set the way the brief's Job does it: pg_dump -Fc piped
// into `backup upload`, per shard, then `backup manifest`.
func (p *drPlatform) pipeBackup(setID string) int64 {
	var total int64
	for i := range p.shards {
		out := p.mustSh(p.db(i), fmt.Sprintf(`pg_dump -Fc | "$BIN" backup upload $STORE --set %s --shard %d`, setID, i))
		var rec backup.ShardRecord
		if err := json.Unmarshal([]byte(out), &rec); err != nil {
			p.t.Fatalf("upload printed %q: %v", out, err)
		}
		total += rec.Size
	}
	p.mustSh("postgres", fmt.Sprintf(`"$BIN" backup manifest $STORE --set %s --shards %d --shard-map %s --deep`, setID, p.shards, p.shardMap))
	return total
}

// dumpShardBackup makes a set with `backup dump-shard`, which runs psql and
// pg_dump itself to record the snapshot's position.
func (p *drPlatform) dumpShardBackup(setID string) {
	for i := range p.shards {
		p.mustSh(p.db(i), fmt.Sprintf(`"$BIN" backup dump-shard $STORE --set %s --shard %d`, setID, i))
	}
	p.mustSh("postgres", fmt.Sprintf(`"$BIN" backup manifest $STORE --set %s --shards %d --shard-map %s`, setID, p.shards, p.shardMap))
}

// restore empties every shard and restores it from set (an ID or latest)
// through `backup download | pg_restore`.
func (p *drPlatform) restore(set string) {
	for i := range p.shards {
		p.pg.SQL(p.t, "postgres", fmt.Sprintf("DROP DATABASE %s; CREATE DATABASE %s;", p.db(i), p.db(i)))
		p.mustSh(p.db(i), fmt.Sprintf(`"$BIN" backup download $STORE --set %s --shard %d | pg_restore --exit-on-error --no-owner -d %s`, set, i, p.db(i)))
	}
}

func (p *drPlatform) list() []backup.SetInfo {
	var sets []backup.SetInfo
	if err := json.Unmarshal([]byte(p.mustSh("postgres", `"$BIN" backup list $STORE -o json`)), &sets); err != nil {
		p.t.Fatal(err)
	}
	return sets
}

// TestBackupAndRestoreThroughTheCLI is disaster recovery end to end on real
// servers: users routed by md5(key) mod 3 into three databases, each dumped
// through `pg_dump -Fc | parser-operator backup upload`, the manifest
// written, the databases dropped and recreated empty, and each restored
// through `parser-operator backup download | pg_restore`: every row comes
// back, in the shard its key routes to.
func TestBackupAndRestoreThroughTheCLI(t *testing.T) {
	p := newDRPlatform(t, 3)
	p.load()
	before := make([]string, p.shards)
	for i := range p.shards {
		before[i] = p.shardState(i)
	}
	setID := backup.NewSetID(time.Now())
	start := time.Now()
	bytesUp := p.pipeBackup(setID)
	backupTime := time.Since(start)

	sets := p.list()
	if len(sets) != 1 || !sets[0].Complete || sets[0].ID != setID {
		t.Fatalf("list: %+v, want the one complete set %s", sets, setID)
	}
	p.checkManifest(sets[0].Manifest)
	start = time.Now()
	p.restore(backup.Latest)
	restoreTime := time.Since(start)
	rows := 0
	for i := range p.shards {
		if after := p.shardState(i); after != before[i] {
			t.Errorf("shard %d: before %s, after restore %s", i, before[i], after)
		}
		rows += p.checkRouting(i)
	}
	if rows != drUsers {
		t.Errorf("%d rows restored, want %d", rows, drUsers)
	}
	t.Logf("%d rows in %d shards (%s): backup %d bytes in %.2fs, restore in %.2fs",
		rows, p.shards, strings.Join(before, "; "), bytesUp, backupTime.Seconds(), restoreTime.Seconds())
}

// TestBackupRetentionAndCorruptionThroughTheCLI: sets made by dump-shard,
// an incomplete set on each side, prune keeping two; then one flipped byte
// in the newest set's stored dump makes download fail naming the object,
// and pg_restore at the end of the pipe restores nothing.
func TestBackupRetentionAndCorruptionThroughTheCLI(t *testing.T) {
	p := newDRPlatform(t, 2)
	p.load()
	now := time.Now()
	oldFailed := backup.NewSetID(now.Add(-time.Hour))
	p.mustSh(p.db(0), fmt.Sprintf(`pg_dump -Fc | "$BIN" backup upload $STORE --set %s --shard 0`, oldFailed))
	var complete []string
	for i := range 3 {
		// Set IDs a minute apart, in the past: a set's dumps start after its ID's time.
		id := backup.NewSetID(now.Add(time.Duration(i-3) * time.Minute))
		p.dumpShardBackup(id)
		complete = append(complete, id)
	}
	running := backup.NewSetID(time.Now().Add(time.Minute))
	p.mustSh(p.db(1), fmt.Sprintf(`pg_dump -Fc | "$BIN" backup upload $STORE --set %s --shard 1`, running))

	out := p.mustSh("postgres", `"$BIN" backup prune $STORE --retain 2`)
	if want := fmt.Sprintf("deleted %s\ndeleted %s\n", oldFailed, complete[0]); out != want {
		t.Fatalf("prune printed %q, want %q", out, want)
	}
	var left []string
	for _, s := range p.list() {
		left = append(left, s.ID)
	}
	if !slices.Equal(left, []string{complete[1], complete[2], running}) {
		t.Fatalf("after prune --retain 2: %v, want %v", left, []string{complete[1], complete[2], running})
	}

	m := p.manifest(complete[2])
	for _, r := range m.Shards {
		if r.Position == nil || r.Position.LSN == "" || r.PgDumpVersion == "" {
			t.Errorf("dump-shard recorded no position or version: %+v", r)
		}
	}
	victim := m.Shards[1].Object
	flipByte(t, p.s3.ObjectPath(victim), m.Shards[1].Size/2)
	p.pg.SQL(t, "postgres", "CREATE DATABASE scratch")
	_, errOut, err := p.sh("scratch", `"$BIN" backup download $STORE --set latest --shard 1 | pg_restore --exit-on-error --no-owner -d scratch`)
	if err == nil || !strings.Contains(errOut, victim) || !strings.Contains(errOut, "sha256") {
		t.Fatalf("restore from a corrupted object: %v\n%s\nwant a failure naming %s", err, errOut, victim)
	}
	if tables := p.pg.SQL(t, "scratch", "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"); tables != "0" {
		t.Errorf("%s tables restored from a corrupted dump", tables)
	}
	// The intact shard of the same set still restores.
	p.mustSh("scratch", `"$BIN" backup download $STORE --set latest --shard 0 | pg_restore --exit-on-error --no-owner -d scratch`)

	out = p.mustSh("postgres", `"$BIN" backup prune $STORE --retain 1`)
	if want := fmt.Sprintf("deleted %s\n", complete[1]); out != want {
		t.Errorf("prune --retain 1 printed %q, want %q", out, want)
	}
	t.Logf("prune kept %v; corrupted %s refused: %s", left, victim, strings.TrimSpace(errOut))
}

// checkManifest compares what the manifest says with what was backed up.
func (p *drPlatform) checkManifest(m *backup.Manifest) {
	p.t.Helper()
	given, err := os.ReadFile(p.shardMap)
	if err != nil {
		p.t.Fatal(err)
	}
	var want, got any
	if err := json.Unmarshal(given, &want); err != nil {
		p.t.Fatal(err)
	}
	if err := json.Unmarshal(m.ShardMap, &got); err != nil {
		p.t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		p.t.Errorf("manifest shard map %s, want %s", m.ShardMap, given)
	}
	if m.Namespace != "parser" || m.Platform != "vk" || m.ShardCount != p.shards || len(m.Shards) != p.shards {
		p.t.Errorf("manifest of %s/%s with %d shards, %d records", m.Namespace, m.Platform, m.ShardCount, len(m.Shards))
	}
	if m.Versions.Operator == "" || !strings.HasPrefix(m.Versions.PgDump, "15.") {
		p.t.Errorf("manifest versions %+v", m.Versions)
	}
	for i, r := range m.Shards {
		if want := fmt.Sprintf("dr/parser/vk/%s/shard-%d.dump", m.SetID, i); r.Object != want || r.Size <= 0 || len(r.SHA256) != 64 {
			p.t.Errorf("shard %d record %+v, want object %s", i, r, want)
		}
	}
}

func (p *drPlatform) manifest(setID string) backup.Manifest {
	for _, s := range p.list() {
		if s.ID == setID && s.Manifest != nil {
			return *s.Manifest
		}
	}
	p.t.Fatalf("no manifest for set %s", setID)
	return backup.Manifest{}
}

// flipByte changes one byte of a file in place, keeping its size.
func flipByte(t *testing.T, path string, at int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	b := []byte{0}
	if _, err := f.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x80
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}

// TestJobCommandsParse: every command line the controller builds with
// backup.Commands is accepted by this binary's flags, with the values given.
func TestJobCommandsParse(t *testing.T) {
	c := backup.Commands{
		Store:    backup.JobStore{Endpoint: "https://s3.example.com", Bucket: "dr", Prefix: "prod", Region: "eu-1", InsecureSkipTLSVerify: true, HasCA: true},
		Platform: backup.Platform{Namespace: "parser", Name: "vk"},
	}
	set := backup.NewSetID(time.Now())
	for _, args := range [][]string{
		c.DumpShard(set, 2), c.Manifest(set, 4, "/etc/shard-map/shards.json"), c.Download(set, 1, ""),
		c.Download(backup.Latest, 1, "/restore/shard.dump"), c.Prune(3), c.List(),
	} {
		if args[0] != "backup" {
			t.Fatalf("%v does not start with backup", args)
		}
		o, extra, err := parseBackupFlags(args[1], args[2:])
		if err != nil || len(extra) != 0 {
			t.Errorf("%v: %v %v", args, err, extra)
			continue
		}
		if o.store.Endpoint != "https://s3.example.com" || o.store.Bucket != "dr" || o.store.Prefix != "prod" || o.store.Region != "eu-1" ||
			!o.store.InsecureSkipTLSVerify || o.caFile != backup.CAFile || o.credentialsDir != backup.CredentialsDir ||
			o.platform != c.Platform {
			t.Errorf("%v parsed as %+v", args, o)
		}
	}
	if got := backup.Install(); got[0] != "backup" || got[1] != "install" || got[2] != backup.Binary {
		t.Errorf("install command %v", got)
	}
}

// TestInstallCopiesTheBinary: the init container's `backup install` leaves a
// runnable copy of the operator binary at the given path.
func TestInstallCopiesTheBinary(t *testing.T) {
	bin := operatorBinary(t)
	dest := filepath.Join(t.TempDir(), "parser-operator")
	if out, err := exec.Command(bin, "backup", "install", dest).CombinedOutput(); err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	out, err := exec.Command(dest, "backup", "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Usage: parser-operator backup") {
		t.Fatalf("the copy: %v\n%s", err, out)
	}
}
