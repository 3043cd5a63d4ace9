package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
)

// Latest asks ResolveSet for the newest complete set.
const Latest = "latest"

// ShardMeta is what the caller of UploadShard knows about a dump that the
// bytes do not say.
type ShardMeta struct {
	Position      *Position
	PgDumpVersion string
	StartedAt     time.Time
}

// UploadShard streams shard index's pg_dump -Fc archive from dump into set
// setID, checks the stored size, then writes the ShardRecord next to it.
// The record is the shard's "done": WriteManifest gathers the records.
func (s *Store) UploadShard(ctx context.Context, p Platform, setID string, index int, dump io.Reader, meta ShardMeta) (ShardRecord, error) {
	if err := checkSet(p, setID); err != nil {
		return ShardRecord{}, err
	}
	if index < 0 {
		return ShardRecord{}, fmt.Errorf("shard index %d", index)
	}
	if meta.StartedAt.IsZero() {
		meta.StartedAt = time.Now()
	}
	key := s.SetPrefix(p, setID) + ShardDumpObject(index)
	size, sum, err := s.putStream(ctx, key, dump)
	if err != nil {
		return ShardRecord{}, err
	}
	rec := ShardRecord{
		Index: index, Object: key, Size: size, SHA256: sum,
		Position: meta.Position, PgDumpVersion: meta.PgDumpVersion,
		StartedAt: meta.StartedAt.UTC(), FinishedAt: time.Now().UTC(),
	}
	if err := s.putJSON(ctx, s.SetPrefix(p, setID)+shardRecordObject(index), rec); err != nil {
		return ShardRecord{}, err
	}
	return rec, nil
}

func checkSet(p Platform, setID string) error {
	if err := p.validate(); err != nil {
		return err
	}
	_, err := ParseSetID(setID)
	return err
}

// ManifestInput is what WriteManifest needs besides the shard records.
type ManifestInput struct {
	ShardCount      int
	ShardMap        []byte
	OperatorVersion string
	// Deep re-reads every dump and compares its sha256 before the set is
	// declared complete, instead of only its size.
	Deep bool
}

// WriteManifest completes set setID: it reads every shard's record, checks
// each dump (size; sha256 too when in.Deep), and only then writes
// manifest.json. It fails naming the first shard that is missing or wrong,
// and then writes nothing, so the set stays incomplete.
func (s *Store) WriteManifest(ctx context.Context, p Platform, setID string, in ManifestInput) (*Manifest, error) {
	if err := checkSet(p, setID); err != nil {
		return nil, err
	}
	started, _ := ParseSetID(setID)
	m := &Manifest{
		FormatVersion: ManifestVersion, SetID: setID, Namespace: p.Namespace, Platform: p.Name,
		CreatedAt: time.Now().UTC(), ShardCount: in.ShardCount, ShardMap: json.RawMessage(in.ShardMap),
		Versions: Versions{Operator: in.OperatorVersion},
	}
	for i := range in.ShardCount {
		var rec ShardRecord
		if err := s.getJSON(ctx, s.SetPrefix(p, setID)+shardRecordObject(i), &rec); err != nil {
			return nil, fmt.Errorf("shard %d has not finished: %w", i, err)
		}
		if err := s.Verify(ctx, rec, in.Deep); err != nil {
			return nil, fmt.Errorf("shard %d: %w", i, err)
		}
		if rec.StartedAt.Before(started) {
			return nil, fmt.Errorf("shard %d: dump started %s, before set %s began", i, rec.StartedAt, setID)
		}
		m.Shards = append(m.Shards, rec)
	}
	m.Versions.PgDump = pgDumpVersions(m.Shards)
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if err := s.putJSON(ctx, s.SetPrefix(p, setID)+ManifestObject, m); err != nil {
		return nil, err
	}
	return m, nil
}

// pgDumpVersions is the one pg_dump version of the shards, or all of them
// joined when they differ (during an upgrade).
func pgDumpVersions(recs []ShardRecord) string {
	var vs []string
	for _, r := range recs {
		if r.PgDumpVersion != "" && !slices.Contains(vs, r.PgDumpVersion) {
			vs = append(vs, r.PgDumpVersion)
		}
	}
	return strings.Join(vs, ", ")
}

// SetInfo is one backup set as found in the store.
type SetInfo struct {
	ID        string
	StartedAt time.Time
	// Complete: the manifest validates and lists only objects present with
	// their listed sizes.
	Complete bool
	// Reason says why a set is not complete.
	Reason string
	// Manifest is set when the manifest could be read.
	Manifest *Manifest
	// Objects are every key under the set's folder (what deletion removes).
	Objects []string
	// Bytes is the total size of Objects.
	Bytes int64
}

// ListSets returns the platform's sets, oldest first, complete or not.
// Objects under the platform's folder that are not inside a set folder are
// ignored, never deleted.
func (s *Store) ListSets(ctx context.Context, p Platform) ([]SetInfo, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	base := s.platformPrefix(p)
	sizes := map[string]map[string]int64{} // set ID -> key -> size
	for obj := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: base, Recursive: true}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("listing %s: %w", base, obj.Err)
		}
		id, _, ok := strings.Cut(strings.TrimPrefix(obj.Key, base), "/")
		if !ok {
			continue
		}
		if _, err := ParseSetID(id); err != nil {
			continue
		}
		if sizes[id] == nil {
			sizes[id] = map[string]int64{}
		}
		sizes[id][obj.Key] = obj.Size
	}
	sets := make([]SetInfo, 0, len(sizes))
	for id, objs := range sizes {
		sets = append(sets, s.judgeSet(ctx, p, id, objs))
	}
	slices.SortFunc(sets, func(a, b SetInfo) int { return strings.Compare(a.ID, b.ID) })
	return sets, nil
}

// judgeSet decides whether a listed set is complete, from the listing and
// its manifest.
func (s *Store) judgeSet(ctx context.Context, p Platform, id string, objs map[string]int64) SetInfo {
	started, _ := ParseSetID(id)
	info := SetInfo{ID: id, StartedAt: started}
	for k, size := range objs {
		info.Objects = append(info.Objects, k)
		info.Bytes += size
	}
	slices.Sort(info.Objects)
	manifestKey := s.SetPrefix(p, id) + ManifestObject
	if _, ok := objs[manifestKey]; !ok {
		info.Reason = "no manifest (not finished, or failed)"
		return info
	}
	var m Manifest
	if err := s.getJSON(ctx, manifestKey, &m); err != nil {
		info.Reason = err.Error()
		return info
	}
	info.Manifest = &m
	info.Reason = checkManifest(&m, p, id, objs)
	info.Complete = info.Reason == ""
	return info
}

// checkManifest is the reason m does not describe a complete set id of p
// whose objects (key -> size) were listed, or "".
func checkManifest(m *Manifest, p Platform, id string, objs map[string]int64) string {
	if err := m.Validate(); err != nil {
		return err.Error()
	}
	if m.SetID != id || m.Namespace != p.Namespace || m.Platform != p.Name {
		return fmt.Sprintf("manifest is of set %s/%s/%s", m.Namespace, m.Platform, m.SetID)
	}
	for _, r := range m.Shards {
		size, ok := objs[r.Object]
		if !ok {
			return fmt.Sprintf("object %s: %v", r.Object, ErrObjectMissing)
		}
		if size != r.Size {
			return fmt.Sprintf("object %s: %v: stored %d bytes, want %d", r.Object, ErrSizeMismatch, size, r.Size)
		}
	}
	return ""
}

// ErrNoCompleteSet is returned by ResolveSet when a platform has no set to
// restore from.
var ErrNoCompleteSet = errors.New("no complete backup set")

// ResolveSet returns the manifest of set idOrLatest ("latest": the newest
// complete set), refusing a set that is not complete.
func (s *Store) ResolveSet(ctx context.Context, p Platform, idOrLatest string) (*Manifest, error) {
	if idOrLatest != Latest {
		if _, err := ParseSetID(idOrLatest); err != nil {
			return nil, err
		}
	}
	sets, err := s.ListSets(ctx, p)
	if err != nil {
		return nil, err
	}
	for i := len(sets) - 1; i >= 0; i-- {
		set := sets[i]
		switch {
		case idOrLatest == Latest && set.Complete:
			return set.Manifest, nil
		case set.ID == idOrLatest && !set.Complete:
			return nil, fmt.Errorf("backup set %s of %s/%s is not complete: %s", set.ID, p.Namespace, p.Name, set.Reason)
		case set.ID == idOrLatest:
			return set.Manifest, nil
		}
	}
	if idOrLatest == Latest {
		return nil, fmt.Errorf("%w for %s/%s in the object store", ErrNoCompleteSet, p.Namespace, p.Name)
	}
	return nil, fmt.Errorf("backup set %s of %s/%s not found", idOrLatest, p.Namespace, p.Name)
}
