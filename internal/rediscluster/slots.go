package rediscluster

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// SlotCount is the number of hash slots of every Redis Cluster: the planner
// is done only when all of them are served.
const SlotCount = 16384

// SlotRange is an inclusive range of hash slots, as CLUSTER NODES prints and
// CLUSTER ADDSLOTSRANGE takes them, so plans stay short and readable.
type SlotRange struct {
	// Start and End are the first and the last slot, both included.
	Start, End int
}

// Len is how many slots the range holds, for counting shares.
func (r SlotRange) Len() int { return r.End - r.Start + 1 }

// String prints the range as Redis does: "5" or "0-5460".
func (r SlotRange) String() string {
	if r.Start == r.End {
		return strconv.Itoa(r.Start)
	}
	return fmt.Sprintf("%d-%d", r.Start, r.End)
}

// Ranges compresses a list of slots into sorted ranges; it is how the
// planner turns per-slot decisions into steps.
func Ranges(slots []int) []SlotRange {
	s := slices.Clone(slots)
	slices.Sort(s)
	s = slices.Compact(s)
	var out []SlotRange
	for _, slot := range s {
		if n := len(out); n > 0 && out[n-1].End == slot-1 {
			out[n-1].End = slot
			continue
		}
		out = append(out, SlotRange{slot, slot})
	}
	return out
}

// Slots expands ranges into single slots, the unit the executor migrates.
func Slots(ranges []SlotRange) []int {
	var out []int
	for _, r := range ranges {
		for s := r.Start; s <= r.End; s++ {
			out = append(out, s)
		}
	}
	return out
}

// CountSlots is the number of slots in ranges.
func CountSlots(ranges []SlotRange) int {
	n := 0
	for _, r := range ranges {
		n += r.Len()
	}
	return n
}

func formatRanges(ranges []SlotRange) string {
	parts := make([]string, len(ranges))
	for i, r := range ranges {
		parts[i] = r.String()
	}
	return strings.Join(parts, ",")
}

func parseSlotRange(s string) (SlotRange, error) {
	lo, hi, found := strings.Cut(s, "-")
	start, err := parseSlot(lo)
	if err != nil {
		return SlotRange{}, err
	}
	end := start
	if found {
		if end, err = parseSlot(hi); err != nil {
			return SlotRange{}, err
		}
	}
	if end < start {
		return SlotRange{}, fmt.Errorf("slot range %q ends before it starts", s)
	}
	return SlotRange{start, end}, nil
}

func parseSlot(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n >= SlotCount {
		return 0, fmt.Errorf("slot %q is not in 0..%d", s, SlotCount-1)
	}
	return n, nil
}
