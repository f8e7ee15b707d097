package fanout

import (
	"fmt"
	"testing"
)

// TestOwnsSpreadsAndMovesLittle: rendezvous hashing gives every partition
// one owner, spreads them over the replicas, and a replica that joins
// takes partitions only from the others' share (none move between the
// others).
func TestOwnsSpreadsAndMovesLittle(t *testing.T) {
	owner := func(members []string, pt part) string {
		found := ""
		for _, m := range members {
			if owns(members, m, pt) {
				if found != "" {
					t.Fatalf("%v owned by %s and %s", pt, found, m)
				}
				found = m
			}
		}
		return found
	}
	three := []string{"eventsvc-0-1a2b", "eventsvc-1-3c4d", "eventsvc-2-5e6f"}
	four := append(three[:3:3], "eventsvc-3-7a8b")
	count := map[string]int{}
	moved := 0
	for d := range 4 {
		for p := range uint32(16) {
			pt := part{fmt.Sprint("domain", d), p}
			before, after := owner(three, pt), owner(four, pt)
			count[before]++
			if before != after {
				if after != four[3] {
					t.Fatalf("%v moved from %s to %s, not to the new replica", pt, before, after)
				}
				moved++
			}
		}
	}
	for _, m := range three {
		if count[m] < 64/3/2 {
			t.Fatalf("uneven spread over 3 replicas: %v", count)
		}
	}
	if moved == 0 || moved > 64/2 {
		t.Fatalf("%d of 64 partitions moved to the fourth replica", moved)
	}
}
