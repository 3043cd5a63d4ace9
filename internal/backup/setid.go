package backup

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"time"
)

// setIDTime is the time part of a set ID: UTC, to the second, in a form
// whose string order is time order.
const setIDTime = "20060102T150405Z"

var setIDPattern = regexp.MustCompile(`^\d{8}T\d{6}Z-[0-9a-f]{6}$`)

// NewSetID names a new backup set started at t: 20261201T203000Z-1a2b3c.
// The time makes IDs sort in the order the sets were started (so listing
// needs no extra metadata) and tells a person reading the bucket what they
// see; the random suffix keeps a scheduled and an on-demand backup started
// in the same second apart.
func NewSetID(t time.Time) string {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return t.UTC().Format(setIDTime) + "-" + hex.EncodeToString(b[:])
}

// ParseSetID returns the time a set was started, or an error when id is not
// a set ID (which is also how listing tells sets from stray objects).
func ParseSetID(id string) (time.Time, error) {
	if !setIDPattern.MatchString(id) {
		return time.Time{}, fmt.Errorf("backup set ID %q: want %s-xxxxxx (UTC time, 6 hex digits)", id, setIDTime)
	}
	t, err := time.Parse(setIDTime, id[:len(setIDTime)])
	if err != nil {
		return time.Time{}, fmt.Errorf("backup set ID %q: %w", id, err)
	}
	return t, nil
}
