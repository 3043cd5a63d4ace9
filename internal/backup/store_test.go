package backup_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/vkparser/parser-operator/internal/backup"
	"github.com/vkparser/parser-operator/internal/backup/s3test"
	"github.com/vkparser/parser-operator/internal/sharding"
)

var platform = backup.Platform{Namespace: "parser", Name: "vk"}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func newStore(t *testing.T, s *s3test.Server, partSize uint64) *backup.Store {
	t.Helper()
	cfg := s.ObjectStore("backups/prod")
	cfg.PartSize = partSize
	st, err := backup.NewStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// fakeDump is n bytes that start like a pg_dump custom archive; the store
// does not parse further, so random bytes exercise it as well as a dump.
func fakeDump(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	copy(b, "PGDMP")
	return b
}

func shardMapJSON(t *testing.T, n int) []byte {
	t.Helper()
	var shards []sharding.Shard
	for i := range n {
		shards = append(shards, sharding.Shard{Index: i, Host: "vk-db-" + string(rune('0'+i)), Port: 5432, Database: "parser", SecretName: "vk-db"})
	}
	b, err := json.Marshal(sharding.NewMap(shards...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeSet uploads a complete set of shards shards of size bytes each.
func writeSet(t *testing.T, ctx context.Context, st *backup.Store, at time.Time, shards, size int) *backup.Manifest {
	t.Helper()
	id := backup.NewSetID(at)
	for i := range shards {
		if _, err := st.UploadShard(ctx, platform, id, i, bytes.NewReader(fakeDump(t, size)), backup.ShardMeta{StartedAt: at}); err != nil {
			t.Fatal(err)
		}
	}
	m, err := st.WriteManifest(ctx, platform, id, backup.ManifestInput{ShardCount: shards, ShardMap: shardMapJSON(t, shards), OperatorVersion: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestStreamingMultipartUploadAndVerifiedDownload sends a dump larger than
// two parts through a reader that hides its length, so minio-go must stream
// it as a multipart upload, and reads it back byte for byte.
func TestStreamingMultipartUploadAndVerifiedDownload(t *testing.T) {
	srv := s3test.Start(t)
	ctx := testContext(t)
	const partSize = 5 << 20 // S3's smallest part
	st := newStore(t, srv, partSize)
	data := fakeDump(t, 2*partSize+12345)
	id := backup.NewSetID(time.Now())

	start := time.Now()
	rec, err := st.UploadShard(ctx, platform, id, 0, io.MultiReader(bytes.NewReader(data)), backup.ShardMeta{})
	if err != nil {
		t.Fatal(err)
	}
	up := time.Since(start)
	sum := sha256.Sum256(data)
	if rec.Size != int64(len(data)) || rec.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("record %+v, want size %d sha256 %x", rec, len(data), sum)
	}
	if want := "backups/prod/parser/vk/" + id + "/shard-0.dump"; rec.Object != want {
		t.Errorf("object %s, want %s", rec.Object, want)
	}
	// A multipart object's ETag is "<md5 of part md5s>-<parts>".
	info, err := srv.Client(t).StatObject(ctx, srv.Bucket, rec.Object, minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(info.ETag, "-3") {
		t.Errorf("ETag %s: want a 3-part multipart upload", info.ETag)
	}
	var got bytes.Buffer
	start = time.Now()
	if err := st.Download(ctx, rec, &got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatal("downloaded bytes differ from the upload")
	}
	file := t.TempDir() + "/shard-0.dump"
	if err := st.DownloadFile(ctx, rec, file); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(file); !bytes.Equal(b, data) {
		t.Fatal("downloaded file differs from the upload")
	}
	t.Logf("%d bytes in 3 parts: upload %.2fs, verified download (two passes) + file download %.2fs", len(data), up.Seconds(), time.Since(start).Seconds())
}

func TestUploadRefusesWhatIsNotACustomFormatDump(t *testing.T) {
	srv := s3test.Start(t)
	ctx := testContext(t)
	st := newStore(t, srv, 0)
	id := backup.NewSetID(time.Now())
	for name, in := range map[string]string{"empty": "", "plain SQL": "--\n-- PostgreSQL database dump\n", "error text": "pg_dump: error: connection refused"} {
		_, err := st.UploadShard(ctx, platform, id, 0, strings.NewReader(in), backup.ShardMeta{})
		if !errors.Is(err, backup.ErrNotADump) {
			t.Errorf("%s: %v, want ErrNotADump", name, err)
		}
	}
	sets, err := st.ListSets(ctx, platform)
	if err != nil || len(sets) != 0 {
		t.Errorf("refused uploads left sets %+v (%v)", sets, err)
	}
}

// TestCorruptedObjectIsRefusedBeforeAnyByteIsWritten flips one byte of a
// stored dump in the server's backing directory: its size is unchanged, so
// only the sha256 can tell, and Download must write nothing.
func TestCorruptedObjectIsRefusedBeforeAnyByteIsWritten(t *testing.T) {
	srv := s3test.Start(t)
	ctx := testContext(t)
	st := newStore(t, srv, 0)
	m := writeSet(t, ctx, st, time.Now(), 2, 100_000)
	rec := m.Shards[1]

	f, err := os.OpenFile(srv.ObjectPath(rec.Object), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := []byte{0}
	if _, err := f.ReadAt(b, 54321); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x01
	if _, err := f.WriteAt(b, 54321); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()

	var out bytes.Buffer
	err = st.Download(ctx, rec, &out)
	if !errors.Is(err, backup.ErrChecksumMismatch) || !strings.Contains(err.Error(), rec.Object) {
		t.Fatalf("Download of the corrupted object: %v, want a checksum mismatch naming %s", err, rec.Object)
	}
	if out.Len() != 0 {
		t.Errorf("Download wrote %d bytes of a corrupted object", out.Len())
	}
	file := t.TempDir() + "/dump"
	if err := st.DownloadFile(ctx, rec, file); !errors.Is(err, backup.ErrChecksumMismatch) {
		t.Errorf("DownloadFile: %v", err)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("DownloadFile left %s behind: %v", file, err)
	}
	if _, err := os.Stat(file + ".partial"); !os.IsNotExist(err) {
		t.Errorf("DownloadFile left its partial file: %v", err)
	}
	// A deep check finds it too; a size check cannot.
	if err := st.Verify(ctx, rec, false); err != nil {
		t.Errorf("size check: %v", err)
	}
	if err := st.Verify(ctx, rec, true); !errors.Is(err, backup.ErrChecksumMismatch) {
		t.Errorf("deep check: %v", err)
	}
	// The other shard is intact.
	if err := st.Download(ctx, m.Shards[0], io.Discard); err != nil {
		t.Errorf("intact shard: %v", err)
	}
}

// TestObjectReplacedThroughTheAPI overwrites a dump through S3 itself (same
// length, other bytes), and deletes another: both refusals name the object.
func TestObjectReplacedOrDeletedThroughTheAPI(t *testing.T) {
	srv := s3test.Start(t)
	ctx := testContext(t)
	st := newStore(t, srv, 0)
	m := writeSet(t, ctx, st, time.Now(), 3, 50_000)
	c := srv.Client(t)
	other := fakeDump(t, int(m.Shards[0].Size))
	if _, err := c.PutObject(ctx, srv.Bucket, m.Shards[0].Object, bytes.NewReader(other), int64(len(other)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := st.Download(ctx, m.Shards[0], io.Discard); !errors.Is(err, backup.ErrChecksumMismatch) || !strings.Contains(err.Error(), m.Shards[0].Object) {
		t.Errorf("replaced object: %v", err)
	}
	if err := c.RemoveObject(ctx, srv.Bucket, m.Shards[2].Object, minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	err := st.Download(ctx, m.Shards[2], io.Discard)
	if !errors.Is(err, backup.ErrObjectMissing) || !strings.Contains(err.Error(), m.Shards[2].Object) {
		t.Errorf("deleted object: %v", err)
	}
	// The set lost an object: it is no longer complete, and latest skips it.
	sets, err := st.ListSets(ctx, platform)
	if err != nil {
		t.Fatal(err)
	}
	if len(sets) != 1 || sets[0].Complete || !strings.Contains(sets[0].Reason, m.Shards[2].Object) {
		t.Fatalf("sets %+v: want one incomplete set naming %s", sets, m.Shards[2].Object)
	}
	if _, err := st.ResolveSet(ctx, platform, backup.Latest); !errors.Is(err, backup.ErrNoCompleteSet) {
		t.Errorf("latest: %v", err)
	}
	if _, err := st.ResolveSet(ctx, platform, m.SetID); err == nil || !strings.Contains(err.Error(), "not complete") {
		t.Errorf("explicit ID of an incomplete set: %v", err)
	}
}

func TestManifestIsWrittenOnlyWhenEveryShardIsThere(t *testing.T) {
	srv := s3test.Start(t)
	ctx := testContext(t)
	st := newStore(t, srv, 0)
	id := backup.NewSetID(time.Now())
	in := backup.ManifestInput{ShardCount: 2, ShardMap: shardMapJSON(t, 2), OperatorVersion: "test"}
	if _, err := st.UploadShard(ctx, platform, id, 0, bytes.NewReader(fakeDump(t, 1000)), backup.ShardMeta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.WriteManifest(ctx, platform, id, in); err == nil || !strings.Contains(err.Error(), "shard 1 has not finished") {
		t.Fatalf("manifest with shard 1 missing: %v", err)
	}
	sets, _ := st.ListSets(ctx, platform)
	if len(sets) != 1 || sets[0].Complete {
		t.Fatalf("sets %+v: want one incomplete set", sets)
	}
	rec, err := st.UploadShard(ctx, platform, id, 1, bytes.NewReader(fakeDump(t, 2000)), backup.ShardMeta{})
	if err != nil {
		t.Fatal(err)
	}
	// A dump truncated after its record was written fails the size check.
	c := srv.Client(t)
	short := fakeDump(t, 1999)
	if _, err := c.PutObject(ctx, srv.Bucket, rec.Object, bytes.NewReader(short), int64(len(short)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.WriteManifest(ctx, platform, id, in); !errors.Is(err, backup.ErrSizeMismatch) || !strings.Contains(err.Error(), rec.Object) {
		t.Fatalf("manifest over a truncated dump: %v", err)
	}
	if _, err := st.UploadShard(ctx, platform, id, 1, bytes.NewReader(fakeDump(t, 2000)), backup.ShardMeta{}); err != nil {
		t.Fatal(err)
	}
	m, err := st.WriteManifest(ctx, platform, id, in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := st.ResolveSet(ctx, platform, backup.Latest)
	if err != nil || got.SetID != m.SetID || len(got.Shards) != 2 {
		t.Fatalf("latest = %+v, %v", got, err)
	}
}

// TestRetentionOnTheStore: five complete sets and incomplete ones around
// them; prune with retain 2 leaves exactly the newest two complete sets and
// the incomplete set newer than them; pruning again deletes nothing.
func TestRetentionOnTheStore(t *testing.T) {
	srv := s3test.Start(t)
	ctx := testContext(t)
	st := newStore(t, srv, 0)
	base := time.Now().UTC().Add(-time.Hour)
	var complete []string
	incompleteAt := func(at time.Time) string {
		id := backup.NewSetID(at)
		if _, err := st.UploadShard(ctx, platform, id, 0, bytes.NewReader(fakeDump(t, 500)), backup.ShardMeta{StartedAt: at}); err != nil {
			t.Fatal(err)
		}
		return id
	}
	oldFailed := incompleteAt(base)
	for i := range 5 {
		complete = append(complete, writeSet(t, ctx, st, base.Add(time.Duration(i+1)*time.Minute), 2, 500).SetID)
	}
	running := incompleteAt(base.Add(10 * time.Minute))
	// A stray object beside the sets is not the pruner's to delete.
	stray := "backups/prod/parser/vk/README"
	if _, err := srv.Client(t).PutObject(ctx, srv.Bucket, stray, strings.NewReader("x"), 1, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	// Another platform's sets are out of reach.
	otherPlatform := backup.Platform{Namespace: "parser", Name: "vk2"}
	otherID := backup.NewSetID(base)
	if _, err := st.UploadShard(ctx, otherPlatform, otherID, 0, bytes.NewReader(fakeDump(t, 500)), backup.ShardMeta{}); err != nil {
		t.Fatal(err)
	}

	deleted, err := st.Prune(ctx, platform, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{oldFailed, complete[0], complete[1], complete[2]}
	if !slices.Equal(deleted, want) {
		t.Fatalf("deleted %v, want %v", deleted, want)
	}
	sets, err := st.ListSets(ctx, platform)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, s := range sets {
		left = append(left, s.ID)
	}
	if !slices.Equal(left, []string{complete[3], complete[4], running}) {
		t.Fatalf("left %v, want the newest two complete sets and the running one", left)
	}
	for _, id := range want {
		objs := listKeys(t, ctx, srv, path.Join("backups/prod/parser/vk", id)+"/")
		if len(objs) != 0 {
			t.Errorf("set %s still has objects %v", id, objs)
		}
	}
	if keys := listKeys(t, ctx, srv, stray); len(keys) != 1 {
		t.Errorf("the stray object was deleted")
	}
	if keys := listKeys(t, ctx, srv, "backups/prod/parser/vk2/"); len(keys) != 2 {
		t.Errorf("the other platform's set lost objects: %v", keys)
	}
	if again, err := st.Prune(ctx, platform, 2); err != nil || len(again) != 0 {
		t.Errorf("second prune deleted %v (%v)", again, err)
	}
	// retain 1 never deletes the newest complete set.
	if _, err := st.Prune(ctx, platform, 1); err != nil {
		t.Fatal(err)
	}
	m, err := st.ResolveSet(ctx, platform, backup.Latest)
	if err != nil || m.SetID != complete[4] {
		t.Fatalf("after retain 1, latest = %v, %v; want %s", m, err, complete[4])
	}
}

func listKeys(t *testing.T, ctx context.Context, srv *s3test.Server, prefix string) []string {
	t.Helper()
	var keys []string
	for o := range srv.Client(t).ListObjects(ctx, srv.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		keys = append(keys, o.Key)
	}
	return keys
}

// TestTLSTrustsOnlyTheGivenCA: an HTTPS store with a private CA is reached
// with that CA (caSecretRef) or with insecureSkipTLSVerify, and refused
// with neither: the system roots do not vouch for it.
func TestTLSTrustsOnlyTheGivenCA(t *testing.T) {
	srv, caPEM := s3test.StartTLS(t)
	ctx := testContext(t)
	try := func(cfg backup.ObjectStore) error {
		st, err := backup.NewStore(cfg)
		if err != nil {
			return err
		}
		_, err = st.ListSets(ctx, platform)
		return err
	}
	cfg := srv.ObjectStore("tls")
	if err := try(cfg); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("without the CA: %v, want a certificate error", err)
	}
	withCA := cfg
	withCA.CAPEM = caPEM
	if err := try(withCA); err != nil {
		t.Errorf("with the CA: %v", err)
	}
	insecure := cfg
	insecure.InsecureSkipTLSVerify = true
	if err := try(insecure); err != nil {
		t.Errorf("with insecureSkipTLSVerify: %v", err)
	}
	_, otherCA := s3test.StartTLS(t)
	wrongCA := cfg
	wrongCA.CAPEM = otherCA
	if err := try(wrongCA); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("with another CA: %v, want a certificate error", err)
	}
	wrongCA.CAPEM = []byte("not a certificate")
	if _, err := backup.NewStore(wrongCA); err == nil {
		t.Error("a CA bundle without a certificate was accepted")
	}
	// A full round trip over TLS with the CA.
	st, err := backup.NewStore(withCA)
	if err != nil {
		t.Fatal(err)
	}
	m := writeSet(t, ctx, st, time.Now(), 1, 10_000)
	if err := st.Download(ctx, m.Shards[0], io.Discard); err != nil {
		t.Fatal(err)
	}
}
