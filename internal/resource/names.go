// Package resource holds one pure builder per child of a ParserPlatform: the
// platform goes in, the desired object comes out. Nothing here talks to the
// API server, so every builder is unit-tested without one.
package resource

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Kubernetes limits that child names must respect.
const (
	// MaxNameLength is the DNS-1035 label limit that Service names (and label
	// values) must fit.
	MaxNameLength = 63
	// MaxStatefulSetNameLength leaves room for the "-<ordinal>" pod suffix and
	// the "-<hash>" that the StatefulSet controller appends in the
	// controller-revision-hash label, which must also fit 63 characters.
	MaxStatefulSetNameLength = 52
	// hashSuffixLength is how many hex digits of sha256 keep shortened names
	// unique.
	hashSuffixLength = 8
)

// ChildName is the one place child names are made: "<platform>-<parts...>".
// A name longer than budget is cut and ends in a hash of the full name, so the
// result is deterministic, unique and always fits.
func ChildName(budget int, platform string, parts ...string) string {
	full := strings.Join(append([]string{platform}, parts...), "-")
	if len(full) <= budget {
		return full
	}
	sum := sha256.Sum256([]byte(full))
	suffix := hex.EncodeToString(sum[:])[:hashSuffixLength]
	head := strings.TrimRight(full[:budget-hashSuffixLength-1], "-")
	return head + "-" + suffix
}

// Name is ChildName with the label budget, for every child but StatefulSets.
func Name(platform string, parts ...string) string {
	return ChildName(MaxNameLength, platform, parts...)
}

// StatefulSetName is ChildName with the StatefulSet budget.
func StatefulSetName(platform string, parts ...string) string {
	return ChildName(MaxStatefulSetNameLength, platform, parts...)
}
