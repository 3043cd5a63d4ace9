package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/vkparser/parser-operator/internal/backup"
)

// backupUsage is the whole help of `parser-operator backup`.
const backupUsage = `Usage: parser-operator backup COMMAND [flags]

Backs up a ParserPlatform's PostgreSQL shards to an S3-compatible object
store and reads them back, verified. The operator runs these commands in
Jobs; they work the same by hand.

Commands:
  dump-shard   take shard --shard's pg_dump -Fc in an exported snapshot (psql and
               pg_dump on PATH, connection from PGHOST, PGPORT, PGUSER, PGPASSWORD,
               PGDATABASE) and upload it, recording the WAL position and time
  upload       upload shard --shard's pg_dump -Fc archive read from stdin
               (run under 'set -o pipefail': pg_dump -Fc | parser-operator backup upload ...)
  manifest     check every shard's dump (--deep: re-read and hash it), then write
               manifest.json: only then is the set complete
  download     write shard --shard's dump to stdout (or --out FILE) after checking its
               size and sha256 against the manifest: nothing is written otherwise
  list         list the platform's sets, oldest first, complete or not
  prune        delete the sets beyond the newest --retain complete ones
  install      copy this binary to PATH (an init container puts it beside pg_dump)

Object store (every command but install):
  --endpoint URL             https://host[:port] (http:// for a plain-text test store)
  --bucket NAME              the bucket (it must exist)
  --prefix PREFIX            key prefix of every set
  --region REGION            signing region (default: discovered)
  --ca-file FILE             PEM CA bundle to trust for the endpoint
  --insecure-skip-tls-verify accept any certificate (test stores only)
  --credentials-dir DIR      a mounted Secret with files accessKeyId and secretAccessKey;
                             without it, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
                             Keys are never taken from arguments.
  --part-size MIB            multipart part size, the memory an upload holds (default 64)

The set (every command but install):
  --namespace NS --platform NAME   the platform whose sets these are
  --set ID                   the set: 20261201T203000Z-1a2b3c ('latest' for download;
                             dump-shard, upload and manifest need an explicit ID)

Per command:
  dump-shard, upload, download: --shard I
  dump-shard:  pg_dump arguments after '--' (e.g. -- --no-owner)
  manifest:    --shards N --shard-map FILE [--deep]
  download:    [--out FILE]
  list:        [-o table|json]
  prune:       --retain N (at least 1; the newest complete set is never deleted)

Exit status: 0 on success, 1 when the store, a dump or a check failed,
2 for wrong flags.
`

// operatorVersion is written into every manifest; set it at link time with
// -ldflags "-X main.operatorVersion=v0.3.0". Without it the module's build
// information is used.
var operatorVersion = ""

// backupTimeout bounds a whole command; a shard's dump of hundreds of GiB
// still fits, a hung store does not hold a Job forever.
const backupTimeout = 24 * time.Hour

// backupOptions are the parsed flags of `parser-operator backup`.
type backupOptions struct {
	store          backup.ObjectStore
	credentialsDir string
	caFile         string
	partSizeMiB    uint64
	platform       backup.Platform
	setID          string
	shard          int
	shards         int
	shardMap       string
	deep           bool
	out            string
	output         string
	retain         int
	set            map[string]bool
}

// runBackup is `parser-operator backup`; it returns the exit status.
func runBackup(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		_, _ = fmt.Fprint(stdout, backupUsage)
		return 0
	}
	command, args := args[0], args[1:]
	if command == "install" {
		return backupInstall(args, stderr)
	}
	o, extra, err := parseBackupFlags(command, args)
	if errors.Is(err, flag.ErrHelp) {
		_, _ = fmt.Fprint(stdout, backupUsage)
		return 0
	}
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "parser-operator backup %s: %v\nRun 'parser-operator backup --help' for usage.\n", command, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, backupTimeout)
	defer cancel()
	if err := o.run(ctx, command, extra, stdin, stdout, stderr); err != nil {
		_, _ = fmt.Fprintf(stderr, "parser-operator backup %s: %v\n", command, err)
		return 1
	}
	return 0
}

// backupCommands lists, per command, the flags it needs beyond the store's.
var backupCommands = map[string][]string{
	"dump-shard": {"set", "shard"},
	"upload":     {"set", "shard"},
	"manifest":   {"set", "shards", "shard-map"},
	"download":   {"set", "shard"},
	"list":       {},
	"prune":      {"retain"},
}

func parseBackupFlags(command string, args []string) (*backupOptions, []string, error) {
	required, ok := backupCommands[command]
	if !ok {
		return nil, nil, fmt.Errorf("unknown command %q", command)
	}
	o := &backupOptions{set: map[string]bool{}}
	fs := newBackupFlagSet(o)
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	extra := fs.Args()
	if len(extra) > 0 && command != "dump-shard" {
		return nil, nil, fmt.Errorf("unexpected argument %q", extra[0])
	}
	for _, name := range append([]string{"endpoint", "bucket", "namespace", "platform"}, required...) {
		if !o.set[name] {
			return nil, nil, fmt.Errorf("--%s is required", name)
		}
	}
	return o, extra, o.validate(command)
}

func newBackupFlagSet(o *backupOptions) *flag.FlagSet {
	fs := flag.NewFlagSet("parser-operator backup", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&o.store.Endpoint, "endpoint", "", "object store URL")
	fs.StringVar(&o.store.Bucket, "bucket", "", "bucket")
	fs.StringVar(&o.store.Prefix, "prefix", "", "key prefix")
	fs.StringVar(&o.store.Region, "region", "", "region")
	fs.BoolVar(&o.store.InsecureSkipTLSVerify, "insecure-skip-tls-verify", false, "skip TLS verification")
	fs.StringVar(&o.caFile, "ca-file", "", "CA bundle")
	fs.StringVar(&o.credentialsDir, "credentials-dir", "", "mounted Secret directory")
	fs.Uint64Var(&o.partSizeMiB, "part-size", backup.DefaultPartSize>>20, "part size in MiB")
	fs.StringVar(&o.platform.Namespace, "namespace", "", "platform namespace")
	fs.StringVar(&o.platform.Name, "platform", "", "platform name")
	fs.StringVar(&o.setID, "set", "", "set ID")
	fs.IntVar(&o.shard, "shard", -1, "shard index")
	fs.IntVar(&o.shards, "shards", 0, "shard count")
	fs.StringVar(&o.shardMap, "shard-map", "", "shard map file")
	fs.BoolVar(&o.deep, "deep", false, "re-read and hash every dump")
	fs.StringVar(&o.out, "out", "", "output file")
	fs.StringVar(&o.output, "o", "table", "output format")
	fs.IntVar(&o.retain, "retain", 0, "complete sets kept")
	return fs
}

func (o *backupOptions) validate(command string) error {
	switch {
	case o.set["shard"] && o.shard < 0:
		return fmt.Errorf("--shard must be 0 or more, got %d", o.shard)
	case o.set["shards"] && o.shards < 1:
		return fmt.Errorf("--shards must be at least 1, got %d", o.shards)
	case o.set["retain"] && o.retain < 1:
		return fmt.Errorf("--retain must be at least 1, got %d (the newest complete set is always kept)", o.retain)
	case o.output != "table" && o.output != "json":
		return fmt.Errorf("-o must be table or json, got %q", o.output)
	case o.partSizeMiB < 5 || o.partSizeMiB > 5<<10:
		return fmt.Errorf("--part-size must be 5..5120 MiB (S3's part limits), got %d", o.partSizeMiB)
	case o.set["set"] && (command != "download" || o.setID != backup.Latest):
		if _, err := backup.ParseSetID(o.setID); err != nil {
			return err
		}
	}
	return nil
}

// openStore reads the credentials and the CA, then builds the client.
func (o *backupOptions) openStore() (*backup.Store, error) {
	creds, err := backup.LoadCredentials(o.credentialsDir, os.Getenv)
	if err != nil {
		return nil, err
	}
	o.store.Credentials = creds
	if o.caFile != "" {
		if o.store.CAPEM, err = os.ReadFile(o.caFile); err != nil { //nolint:gosec // G703: --ca-file is the operator's own CLI flag, read with the caller's rights.
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
	}
	o.store.PartSize = o.partSizeMiB << 20
	return backup.NewStore(o.store)
}

func (o *backupOptions) run(ctx context.Context, command string, extra []string, stdin io.Reader, stdout, stderr io.Writer) error {
	store, err := o.openStore()
	if err != nil {
		return err
	}
	switch command {
	case "dump-shard":
		rec, err := store.DumpShard(ctx, o.platform, o.setID, o.shard, backup.DumpOptions{Args: extra, Env: os.Environ(), Stderr: stderr})
		return printRecord(stdout, rec, err)
	case "upload":
		rec, err := store.UploadShard(ctx, o.platform, o.setID, o.shard, stdin, backup.ShardMeta{PgDumpVersion: pgDumpOnPath(ctx)})
		return printRecord(stdout, rec, err)
	case "manifest":
		return o.writeManifest(ctx, store, stdout)
	case "download":
		return o.download(ctx, store, stdout)
	case "list":
		return o.list(ctx, store, stdout)
	default: // prune
		deleted, err := store.Prune(ctx, o.platform, o.retain)
		for _, id := range deleted {
			_, _ = fmt.Fprintf(stdout, "deleted %s\n", id)
		}
		return err
	}
}

// pgDumpOnPath is the version of the pg_dump on PATH, which in a Job's
// "pg_dump | parser-operator backup upload" is the one writing stdin; ""
// when there is none (the dump came from elsewhere).
func pgDumpOnPath(ctx context.Context) string {
	v, err := backup.PgDumpVersion(ctx, "pg_dump", nil)
	if err != nil {
		return ""
	}
	return v
}

// printRecord prints a shard's record as JSON, for the Job's log and for the
// controller to copy into the backup's status.
func printRecord(w io.Writer, rec backup.ShardRecord, err error) error {
	if err != nil {
		return err
	}
	return json.NewEncoder(w).Encode(rec)
}

func (o *backupOptions) writeManifest(ctx context.Context, store *backup.Store, stdout io.Writer) error {
	shardMap, err := os.ReadFile(o.shardMap) //nolint:gosec // G703: --shard-map is the operator's own CLI flag, read with the caller's rights.
	if err != nil {
		return fmt.Errorf("--shard-map: %w", err)
	}
	m, err := store.WriteManifest(ctx, o.platform, o.setID, backup.ManifestInput{
		ShardCount: o.shards, ShardMap: shardMap, OperatorVersion: currentOperatorVersion(), Deep: o.deep,
	})
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(m)
}

func (o *backupOptions) download(ctx context.Context, store *backup.Store, stdout io.Writer) error {
	m, err := store.ResolveSet(ctx, o.platform, o.setID)
	if err != nil {
		return err
	}
	if o.shard >= m.ShardCount {
		return fmt.Errorf("set %s has %d shards, no shard %d", m.SetID, m.ShardCount, o.shard)
	}
	rec := m.Shards[o.shard]
	if o.out != "" {
		return store.DownloadFile(ctx, rec, o.out)
	}
	return store.Download(ctx, rec, stdout)
}

func (o *backupOptions) list(ctx context.Context, store *backup.Store, stdout io.Writer) error {
	sets, err := store.ListSets(ctx, o.platform)
	if err != nil {
		return err
	}
	if o.output == "json" {
		return json.NewEncoder(stdout).Encode(sets)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "SET\tSTARTED\tCOMPLETE\tSHARDS\tBYTES\tREASON")
	for _, s := range sets {
		shards := "-"
		if s.Manifest != nil {
			shards = fmt.Sprint(s.Manifest.ShardCount)
		}
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%t\t%s\t%d\t%s\n", s.ID, s.StartedAt.Format(time.RFC3339), s.Complete, shards, s.Bytes, s.Reason)
	}
	return tw.Flush()
}

// currentOperatorVersion is operatorVersion, or the module version the
// binary was built from.
func currentOperatorVersion() string {
	if operatorVersion != "" {
		return operatorVersion
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.Main.Version
	}
	return "unknown"
}

// backupInstall copies this executable to the one path argument. The
// operator's image is distroless (no shell, no cp), and the shard's
// PostgreSQL image has pg_dump but not this binary: an init container runs
// `parser-operator backup install /backup-bin/parser-operator` into an
// emptyDir that the PostgreSQL container then runs it from.
func backupInstall(args []string, stderr io.Writer) int {
	if len(args) != 1 || args[0] == "" || args[0][0] == '-' {
		_, _ = fmt.Fprint(stderr, "Usage: parser-operator backup install PATH\n")
		return 2
	}
	if err := copyExecutable(args[0]); err != nil {
		_, _ = fmt.Fprintf(stderr, "parser-operator backup install: %v\n", err)
		return 1
	}
	return 0
}

func copyExecutable(dest string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	src, err := os.Open(self) //nolint:gosec // G304: the path is os.Executable(), this program's own binary.
	if err != nil {
		return err
	}
	defer func() { _ = src.Close() }()
	tmp, err := os.CreateTemp(filepath.Dir(dest), ".parser-operator-*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }() //nolint:gosec // G703: a temporary file next to the caller's CLI argument.
	if _, err := io.Copy(tmp, src); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o755); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dest) //nolint:gosec // G703: dest is the caller's CLI argument, written with the caller's rights.
}
