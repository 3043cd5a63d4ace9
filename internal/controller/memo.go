package controller

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// childMemo remembers, for each child, the state in which the childWriter
// last found it matching (or made it match) its desired state: the child's
// UID, resourceVersion and fingerprint, and a hash of what was desired.
// While the cache shows the same child with the same fingerprint (or the
// same resourceVersion) and the desired state hashes the same, the child
// needs nothing, and is neither read past the cache nor compared.
//
// It is held by the reconciler, for every platform; a platform's entries go
// with the platform, a child's when it is pruned, and an entry is replaced
// when its child is created anew (another UID). Empty after a restart: the
// platform's status keeps a digest of its entries (status.childrenDigest),
// and a restarted operator that finds every child in the state the digest
// names takes them as verified (seed); otherwise the first reconcile reads
// each slim child once past the cache.
type childMemo struct {
	mu        sync.Mutex
	platforms map[types.NamespacedName]map[string]memoEntry
}

type memoEntry struct {
	uid             types.UID
	resourceVersion string
	fingerprint     string
	desired         string // desiredHash
}

// memoKey names a child within its platform.
func memoKey(obj client.Object) string {
	return kindOf(obj) + "/" + obj.GetName()
}

// hit tells whether live (read from the cache, with its fingerprint) is in
// the state last verified for the same desired hash.
func (m *childMemo) hit(platform types.NamespacedName, live client.Object, desired string) bool {
	fp := cachedFingerprint(live)
	if fp == "" || desired == "" {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.platforms[platform][memoKey(live)]
	if !ok || e.uid != live.GetUID() || e.desired != desired {
		return false
	}
	switch {
	case e.fingerprint == fp:
		return true
	case e.resourceVersion == live.GetResourceVersion():
		// The very object written or read: the cache's fingerprint is
		// the one to compare from now on.
		e.fingerprint = fp
		m.platforms[platform][memoKey(live)] = e
		return true
	}
	return false
}

// record remembers that stored (as the API server returned it, or as the
// cache holds it when fp is given) matches the desired hash.
func (m *childMemo) record(platform types.NamespacedName, stored client.Object, fp, desired string) {
	if desired == "" || stored.GetUID() == "" {
		return
	}
	if fp == "" {
		fp = fingerprint(stored)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.platforms == nil {
		m.platforms = map[types.NamespacedName]map[string]memoEntry{}
	}
	children := m.platforms[platform]
	if children == nil {
		children = map[string]memoEntry{}
		m.platforms[platform] = children
	}
	children[memoKey(stored)] = memoEntry{uid: stored.GetUID(), resourceVersion: stored.GetResourceVersion(), fingerprint: fp, desired: desired}
}

// forget drops what is remembered of one child (it was deleted, or the
// comparison found it drifted).
func (m *childMemo) forget(platform types.NamespacedName, obj client.Object) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.platforms[platform], memoKey(obj))
}

// forgetPlatform drops every entry of a platform that is gone.
func (m *childMemo) forgetPlatform(platform types.NamespacedName) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.platforms, platform)
}

// digest is a digest of the entries of the children named by keys, "" unless
// the memo holds every one of them: the state in which they were all last
// found matching their desired state.
func (m *childMemo) digest(platform types.NamespacedName, keys []string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	entries := make(map[string]memoEntry, len(keys))
	for _, k := range keys {
		e, ok := m.platforms[platform][k]
		if !ok {
			return ""
		}
		entries[k] = e
	}
	return entriesDigest(entries)
}

// seed records candidates (by memo key) as verified when their digest is
// want, the digest of a state verified before: a restarted operator then
// finds its children as it left them without reading them past the cache.
// Only into an empty memo of the platform (a restart); tells whether it did.
func (m *childMemo) seed(platform types.NamespacedName, candidates map[string]memoEntry, want string) bool {
	if want == "" || len(candidates) == 0 || entriesDigest(candidates) != want {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.platforms[platform]) > 0 {
		return false
	}
	if m.platforms == nil {
		m.platforms = map[types.NamespacedName]map[string]memoEntry{}
	}
	m.platforms[platform] = maps.Clone(candidates)
	return true
}

// cold tells whether nothing is remembered of the platform (a restart).
func (m *childMemo) cold(platform types.NamespacedName) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.platforms[platform]) == 0
}

// entriesDigest digests each child's name, UID, fingerprint and desired
// hash, in the order of their names. The resourceVersion is left out: a
// restarted operator compares fingerprints.
func entriesDigest(entries map[string]memoEntry) string {
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(entries)) {
		e := entries[k]
		_, _ = fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00", k, e.uid, e.fingerprint, e.desired) // a hash takes every write
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// size is the number of children remembered (for tests).
func (m *childMemo) size() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, children := range m.platforms {
		n += len(children)
	}
	return n
}

// desiredHash is a digest of what the comparison and the update of a child
// depend on besides the live object: the desired object, the paths left
// out of the comparison, and whether an HPA owns its replicas. "" when it
// cannot be had (the memo is then not used).
func (w *childWriter) desiredHash(desired client.Object) string {
	h := sha256.New()
	if _, err := fmt.Fprintf(h, "%s\x00%v\x00%v\x00", kindOf(desired), w.skipPaths(desired), w.ownedByHPA(desired)); err != nil {
		return ""
	}
	if err := json.NewEncoder(h).Encode(desired); err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
