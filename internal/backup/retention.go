package backup

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/minio/minio-go/v7"
)

// PlanRetention chooses the sets to delete so that the newest retain
// complete sets remain. It never chooses the newest complete set (retain
// below 1 counts as 1), and of the incomplete sets only those older than the
// newest complete one: a newer incomplete set may be a backup still being
// written. Sets may come in any order; the result is oldest first.
func PlanRetention(sets []SetInfo, retain int) []string {
	retain = max(retain, 1)
	sorted := slices.Clone(sets)
	slices.SortFunc(sorted, func(a, b SetInfo) int { return strings.Compare(a.ID, b.ID) })
	newestComplete := ""
	kept := 0
	keep := map[string]bool{}
	for i := len(sorted) - 1; i >= 0; i-- {
		if !sorted[i].Complete {
			continue
		}
		if newestComplete == "" {
			newestComplete = sorted[i].ID
		}
		if kept < retain {
			keep[sorted[i].ID] = true
			kept++
		}
	}
	var del []string
	for _, set := range sorted {
		switch {
		case newestComplete == "" || keep[set.ID]:
		case set.Complete || set.ID < newestComplete:
			del = append(del, set.ID)
		}
	}
	return del
}

// Prune deletes the sets PlanRetention chooses and returns their IDs.
func (s *Store) Prune(ctx context.Context, p Platform, retain int) ([]string, error) {
	sets, err := s.ListSets(ctx, p)
	if err != nil {
		return nil, err
	}
	byID := map[string]SetInfo{}
	for _, set := range sets {
		byID[set.ID] = set
	}
	var deleted []string
	for _, id := range PlanRetention(sets, retain) {
		if err := s.deleteSet(ctx, p, byID[id]); err != nil {
			return deleted, err
		}
		deleted = append(deleted, id)
	}
	return deleted, nil
}

// deleteSet removes the manifest first, so that a deletion cut short leaves
// an incomplete set (pruned next time), never a "complete" one with holes.
func (s *Store) deleteSet(ctx context.Context, p Platform, set SetInfo) error {
	manifest := s.SetPrefix(p, set.ID) + ManifestObject
	rest := make([]string, 0, len(set.Objects))
	for _, k := range set.Objects {
		if k == manifest {
			if err := s.client.RemoveObject(ctx, s.bucket, k, minio.RemoveObjectOptions{}); err != nil {
				return fmt.Errorf("deleting set %s: %w", set.ID, objectErr(k, err))
			}
			continue
		}
		rest = append(rest, k)
	}
	for _, k := range rest {
		if err := s.client.RemoveObject(ctx, s.bucket, k, minio.RemoveObjectOptions{}); err != nil {
			return fmt.Errorf("deleting set %s: %w", set.ID, objectErr(k, err))
		}
	}
	return nil
}
