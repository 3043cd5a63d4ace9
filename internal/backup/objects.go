package backup

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	"github.com/minio/minio-go/v7"
)

// Errors a caller can tell apart with errors.Is; they arrive wrapped in an
// *ObjectError that names the key.
var (
	ErrObjectMissing    = errors.New("object missing")
	ErrSizeMismatch     = errors.New("size differs from the manifest")
	ErrChecksumMismatch = errors.New("sha256 differs from the manifest")
	ErrNotADump         = errors.New("not a pg_dump custom-format archive")
)

// ObjectError names the object a store operation failed on, so that a
// restore that refuses a set says which object to look at.
type ObjectError struct {
	Key string
	Err error
}

func (e *ObjectError) Error() string { return fmt.Sprintf("object %s: %v", e.Key, e.Err) }
func (e *ObjectError) Unwrap() error { return e.Err }

func objectErr(key string, err error) error {
	if err == nil {
		return nil
	}
	var resp minio.ErrorResponse
	if errors.As(err, &resp) && (resp.Code == minio.NoSuchKey || resp.StatusCode == 404) {
		err = fmt.Errorf("%w: %w", ErrObjectMissing, err)
	}
	return &ObjectError{Key: key, Err: err}
}

// pgdumpMagic starts every pg_dump -Fc archive. Checking it refuses, before
// anything is stored as a backup, a plain-text dump or the error text of a
// pg_dump that failed in a pipe.
var pgdumpMagic = []byte("PGDMP")

// hashingReader counts and hashes what passes through it.
type hashingReader struct {
	r    io.Reader
	h    hash.Hash
	size int64
}

func newHashingReader(r io.Reader) *hashingReader { return &hashingReader{r: r, h: sha256.New()} }

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.size += int64(n)
	h.h.Write(p[:n])
	return n, err
}

func (h *hashingReader) sum() string { return hex.EncodeToString(h.h.Sum(nil)) }

// putStream uploads r to key without knowing its length: minio-go sends it
// as a multipart upload, one part of s.partSize in memory at a time, with a
// per-part checksum the server verifies. The size and sha256 are computed
// on the way; the returned size is then compared with the stored object's.
func (s *Store) putStream(ctx context.Context, key string, r io.Reader) (size int64, sum string, err error) {
	br := bufio.NewReader(r)
	head, _ := br.Peek(len(pgdumpMagic))
	if !bytes.Equal(head, pgdumpMagic) {
		return 0, "", &ObjectError{Key: key, Err: fmt.Errorf("%w: the input starts with %q (use pg_dump -Fc)", ErrNotADump, head)}
	}
	hr := newHashingReader(br)
	_, err = s.client.PutObject(ctx, s.bucket, key, hr, -1, minio.PutObjectOptions{
		PartSize:    s.partSize,
		ContentType: "application/octet-stream",
	})
	if err != nil {
		return 0, "", objectErr(key, fmt.Errorf("upload: %w", err))
	}
	if err := s.statSize(ctx, key, hr.size); err != nil {
		return 0, "", err
	}
	return hr.size, hr.sum(), nil
}

// statSize checks that key exists with size bytes.
func (s *Store) statSize(ctx context.Context, key string, size int64) error {
	info, err := s.client.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return objectErr(key, err)
	}
	if info.Size != size {
		return &ObjectError{Key: key, Err: fmt.Errorf("%w: stored %d bytes, want %d", ErrSizeMismatch, info.Size, size)}
	}
	return nil
}

// putJSON writes a small document in one request.
func (s *Store) putJSON(ctx context.Context, key string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = s.client.PutObject(ctx, s.bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{
		ContentType: "application/json",
	})
	return objectErr(key, err)
}

// getJSON reads a small document, refusing one above 16 MiB (a manifest of
// 64 shards with a shard map is a few KiB).
func (s *Store) getJSON(ctx context.Context, key string, v any) error {
	obj, err := s.client.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return objectErr(key, err)
	}
	defer func() { _ = obj.Close() }()
	data, err := io.ReadAll(io.LimitReader(obj, 16<<20))
	if err != nil {
		return objectErr(key, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return &ObjectError{Key: key, Err: fmt.Errorf("decoding: %w", err)}
	}
	return nil
}

// Verify checks that the shard's dump exists with the recorded size and,
// when deep, re-reads it and compares its sha256.
func (s *Store) Verify(ctx context.Context, rec ShardRecord, deep bool) error {
	if !deep {
		return s.statSize(ctx, rec.Object, rec.Size)
	}
	_, err := s.copyVerified(ctx, rec, io.Discard, "")
	return err
}

// Download writes the shard's dump to w only after proving it intact: a
// first pass reads the whole object and compares size and sha256 with the
// record; the second pass streams it to w, pinned to the ETag the first pass
// saw (so the object cannot be swapped in between) and hashed again. A
// restore reading w therefore never sees a byte of an object that does not
// match the manifest; the cost is reading the object twice, in exchange for
// needing no local disk the size of the dump. DownloadFile reads it once.
func (s *Store) Download(ctx context.Context, rec ShardRecord, w io.Writer) error {
	etag, err := s.copyVerified(ctx, rec, io.Discard, "")
	if err != nil {
		return err
	}
	_, err = s.copyVerified(ctx, rec, w, etag)
	return err
}

// DownloadFile writes the shard's dump to path, in one pass: it is written
// to path.partial, verified, and renamed only when it matches, so path exists
// only holding a verified dump (pg_restore -j needs a file, not a pipe).
func (s *Store) DownloadFile(ctx context.Context, rec ShardRecord, path string) (err error) {
	tmp := path + ".partial"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600) //nolint:gosec // G304: the restore Job's own download path.
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err = s.copyVerified(ctx, rec, f, ""); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// copyVerified copies the object to w, hashing it, and fails naming the key
// when its size or sha256 differs from rec. With etag set the read fails if
// the object changed since. It returns the ETag it read.
func (s *Store) copyVerified(ctx context.Context, rec ShardRecord, w io.Writer, etag string) (string, error) {
	opts := minio.GetObjectOptions{}
	if etag != "" {
		if err := opts.SetMatchETag(etag); err != nil {
			return "", objectErr(rec.Object, err)
		}
	}
	obj, err := s.client.GetObject(ctx, s.bucket, rec.Object, opts)
	if err != nil {
		return "", objectErr(rec.Object, err)
	}
	defer func() { _ = obj.Close() }()
	info, err := obj.Stat()
	if err != nil {
		return "", objectErr(rec.Object, err)
	}
	if info.Size != rec.Size {
		return "", &ObjectError{Key: rec.Object, Err: fmt.Errorf("%w: stored %d bytes, the manifest says %d", ErrSizeMismatch, info.Size, rec.Size)}
	}
	hr := newHashingReader(obj)
	if _, err := io.Copy(w, hr); err != nil {
		return "", objectErr(rec.Object, fmt.Errorf("reading: %w", err))
	}
	if hr.size != rec.Size {
		return "", &ObjectError{Key: rec.Object, Err: fmt.Errorf("%w: read %d bytes, the manifest says %d", ErrSizeMismatch, hr.size, rec.Size)}
	}
	if got := hr.sum(); got != rec.SHA256 {
		return "", &ObjectError{Key: rec.Object, Err: fmt.Errorf("%w: read %s, the manifest says %s", ErrChecksumMismatch, got, rec.SHA256)}
	}
	return info.ETag, nil
}
