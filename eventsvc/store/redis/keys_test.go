package redis

import (
	"encoding/hex"
	"hash/fnv"
	"testing"

	"github.com/google/uuid"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
)

// TestKeys: the keys built in one buffer are the keys as the key
// functions and the documented layout spell them, and the partition is
// FNV-1a of the root as hash/fnv computes it.
func TestKeys(t *testing.T) {
	for _, parts := range []uint32{1, 7, 4096} {
		s := &Store{partitions: parts}
		for _, domain := range []string{"order", "x", "a-much-longer-domain-name"} {
			for range 20 {
				agg := store.Aggregate{Domain: domain, Root: uuid.New()}
				h := fnv.New32a()
				h.Write(agg.Root[:])
				p := h.Sum32() % parts
				if got := s.partition(agg); got != p {
					t.Fatalf("partition(%v) = %d, want %d", agg, got, p)
				}
				tg, root := tag(domain, p), hex.EncodeToString(agg.Root[:])
				want := aggKeys{
					p:      p,
					events: eventsKey(domain, p, agg.Root[:]),
					snap:   "az:snap:" + tg + ":" + root,
					idem:   "az:idem:" + tg + ":" + root,
					log:    "az:log:" + tg,
					roots:  rootsKey(domain, p),
					corrs:  "az:corr:" + tg + ":",
					size:   "az:size:" + tg + ":" + root,
				}
				if got := s.keys(agg); got != want {
					t.Fatalf("keys(%v) =\n%+v, want\n%+v", agg, got, want)
				}
			}
		}
	}
}
