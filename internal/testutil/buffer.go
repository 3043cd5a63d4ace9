// Package testutil holds small helpers that several packages' tests share.
package testutil

import (
	"bytes"
	"strings"
	"sync"
)

// SyncBuffer collects the output of a process (a redis-server, the operator
// binary) that writes from its own goroutines while a test reads it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String is everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Contains tells whether the output so far holds s.
func (b *SyncBuffer) Contains(s string) bool { return strings.Contains(b.String(), s) }
