package filter

import (
	"fmt"
	"strings"
	"testing"

	"github.com/angzarr-mesh/angzarr/filter/internal/counter"
	"github.com/angzarr-mesh/angzarr/filter/internal/wire"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	"google.golang.org/protobuf/proto"
)

// otherWriter appends a +delta event to counter aggregate r behind the
// filter's back, as another proxy replica would.
func (hs *harness) otherWriter(r byte, delta int64) {
	hs.t.Helper()
	c := &pb.Cover{Domain: counter.Domain, Root: root(r)}
	next := uint32(len(hs.stored(r)))
	if _, st := hs.store.append(&pb.AppendRequest{Cover: c, ExpectedSequence: next, Pages: []*pb.EventPage{counter.Event(delta)}}); st != nil {
		hs.t.Fatalf("other writer: %v", st)
	}
}

// freshHistory is what a load of counter aggregate r answers now (without
// counting as one of the filter's loads).
func (hs *harness) freshHistory(c *pb.Cover) *pb.EventBook {
	a := hs.store.agg(c)
	book := &pb.EventBook{Snapshot: a.snapshot}
	from := uint32(0)
	if a.snapshot != nil {
		from = a.snapshot.GetSequence()
	}
	book.Pages = append(book.Pages, a.pages[from:]...)
	return book
}

func TestCacheSkipsTheLoadOfAHotAggregate(t *testing.T) {
	forModes(t, func(t *testing.T, mode guestMode) {
		hs := newHarnessIn(t, mode, counterConfig)
		decide := hs.logic
		hs.logic = func(cc *pb.ContextualCommand) (*pb.EventBook, *Status) {
			// Whatever the history came from, the logic sees exactly what a
			// load would answer, and the command's cover.
			want := hs.freshHistory(cc.GetCommand().GetCover())
			got := &pb.EventBook{Snapshot: cc.GetEvents().GetSnapshot(), Pages: cc.GetEvents().GetPages()}
			if !proto.Equal(got, want) {
				t.Fatalf("logic saw history %v, a load answers %v", got, want)
			}
			if c := cc.GetEvents().GetCover(); c.GetCorrelationId() == "" || !proto.Equal(c.GetRoot(), cc.GetCommand().GetCover().GetRoot()) {
				t.Fatalf("history cover %v", c)
			}
			return decide(cc)
		}
		for seq := uint32(0); seq < 5; seq++ {
			wantCode(t, hs.handle(cmd(1, seq, 2)), OK, "")
		}
		if hs.store.loads != 1 {
			t.Fatalf("%d loads for 5 commands in a row, want 1", hs.store.loads)
		}
		if n := len(hs.stored(1)); n != 5 {
			t.Fatalf("%d events stored, want 5", n)
		}
		// A second aggregate has its own entry.
		wantCode(t, hs.handle(cmd(2, 0, 1)), OK, "")
		wantCode(t, hs.handle(cmd(2, 1, 1)), OK, "")
		if hs.store.loads != 2 {
			t.Fatalf("loads %d, want 2", hs.store.loads)
		}
		if hs.p != nil && hs.p.cache.len() != 2 {
			t.Fatalf("cache entries %d, want 2", hs.p.cache.len())
		}
	})
}

func TestCacheOff(t *testing.T) {
	forModes(t, func(t *testing.T, mode guestMode) {
		hs := newHarnessIn(t, mode, `{"domains":["counter"],"aggregate_cache_bytes":-1}`)
		for seq := uint32(0); seq < 3; seq++ {
			wantCode(t, hs.handle(cmd(1, seq, 1)), OK, "")
		}
		if hs.store.loads != 3 {
			t.Fatalf("loads %d, want 3", hs.store.loads)
		}
		if hs.p != nil && hs.p.cache != nil {
			t.Fatalf("cache %v", hs.p.cache)
		}
	})
}

func TestCacheStaleEntryNeverChangesAnAnswer(t *testing.T) {
	forModes(t, func(t *testing.T, mode guestMode) {
		t.Run("accepted decision: the append conflicts, ABORTED", func(t *testing.T) {
			hs := newHarnessIn(t, mode, counterConfig)
			wantCode(t, hs.handle(cmd(1, 0, 1)), OK, "")
			hs.otherWriter(1, 5)
			// The client is as stale as the cache: the right answer is ABORTED
			// with the aggregate's real next sequence.
			r := hs.handle(cmd(1, 1, 1))
			wantCode(t, r, Aborted, "the command expected 1, the aggregate's next sequence is 2")
			if n := len(hs.stored(1)); n != 2 {
				t.Fatalf("%d events stored, want 2", n)
			}
			// The conflict's load refreshed the entry: the next command hits.
			loads := hs.store.loads
			wantCode(t, hs.handle(cmd(1, 2, 1)), OK, "")
			if hs.store.loads != loads {
				t.Fatal("the command after the conflict loaded again")
			}
		})
		t.Run("rejection on the stale history: ABORTED, not the rejection", func(t *testing.T) {
			hs := newHarnessIn(t, mode, counterConfig)
			wantCode(t, hs.handle(cmd(1, 0, 1)), OK, "")
			hs.otherWriter(1, 5)
			// On the cached history (sum 1) -3 goes below zero; on the real one
			// (sum 6) it would not: the command's sequence is stale.
			wantCode(t, hs.handle(cmd(1, 1, -3)), Aborted, "the aggregate's next sequence is 2")
			if n := len(hs.stored(1)); n != 2 {
				t.Fatalf("%d events stored, want 2", n)
			}
		})
		t.Run("rejection on a current history passes through", func(t *testing.T) {
			hs := newHarnessIn(t, mode, counterConfig)
			wantCode(t, hs.handle(cmd(1, 0, 1)), OK, "")
			loads := hs.store.loads
			r := hs.handle(cmd(1, 1, -3))
			wantCode(t, r, FailedPrecondition, "counter: 1-3 would go below zero")
			if hs.store.loads != loads+1 {
				t.Fatalf("%d loads to check the rejection, want 1", hs.store.loads-loads)
			}
			if r.headers[CorrelationHeader] == "" {
				t.Fatal("rejection lost its correlation header")
			}
		})
		t.Run("empty decision on the stale history: ABORTED", func(t *testing.T) {
			hs := newHarnessIn(t, mode, counterConfig)
			decide := hs.logic
			wantCode(t, hs.handle(cmd(1, 0, 1)), OK, "")
			hs.logic = func(cc *pb.ContextualCommand) (*pb.EventBook, *Status) { return &pb.EventBook{}, nil }
			hs.otherWriter(1, 5)
			wantCode(t, hs.handle(cmd(1, 1, 1)), Aborted, "the aggregate's next sequence is 2")
			// On a current history the empty decision stands.
			wantCode(t, hs.handle(cmd(1, 2, 1)), OK, "")
			hs.logic = decide
			if n := len(hs.stored(1)); n != 2 {
				t.Fatalf("%d events stored, want 2", n)
			}
		})
		t.Run("client ahead of the cache: loads", func(t *testing.T) {
			hs := newHarnessIn(t, mode, counterConfig)
			wantCode(t, hs.handle(cmd(1, 0, 1)), OK, "")
			hs.otherWriter(1, 5)
			loads := hs.store.loads
			wantCode(t, hs.handle(cmd(1, 2, 1)), OK, "")
			if hs.store.loads != loads+1 {
				t.Fatal("a command expecting another sequence than the entry did not load")
			}
		})
	})
}

func TestCacheBypassedOrDropped(t *testing.T) {
	forModes(t, func(t *testing.T, mode guestMode) {
		countLoads := func(t *testing.T, hs *harness, f func()) int {
			t.Helper()
			before := hs.store.loads
			f()
			return hs.store.loads - before
		}
		t.Run("idempotency key", func(t *testing.T) {
			hs := newHarnessIn(t, mode, counterConfig)
			wantCode(t, hs.handle(cmd(1, 0, 1)), OK, "")
			c := cmd(1, 1, 1)
			c.IdempotencyKey = "k1"
			if n := countLoads(t, hs, func() { wantCode(t, hs.handle(c), OK, "") }); n != 1 {
				t.Fatalf("%d loads, want 1 (the key's check)", n)
			}
			if n := countLoads(t, hs, func() { wantCode(t, hs.handle(c), OK, "") }); n != 1 || len(hs.stored(1)) != 2 {
				t.Fatalf("repeat: %d loads, %d events", n, len(hs.stored(1)))
			}
		})
		t.Run("auto_resequence", func(t *testing.T) {
			hs := newHarnessIn(t, mode, counterConfig)
			wantCode(t, hs.handle(cmd(1, 0, 1)), OK, "")
			c := cmd(1, 0, 1)
			c.AutoResequence = true
			if n := countLoads(t, hs, func() { wantCode(t, hs.handle(c), OK, "") }); n != 1 {
				t.Fatalf("%d loads, want 1", n)
			}
		})
		t.Run("record drops the entry", func(t *testing.T) {
			hs := newHarnessIn(t, mode, typedConfig)
			wantCode(t, hs.handle(cmd(1, 0, 1)), OK, "")
			book := &pb.EventBook{Cover: &pb.Cover{Domain: counter.Domain, Root: root(1)}, Pages: []*pb.EventPage{counter.Event(4)}}
			book.Pages[0].Sequence = &pb.EventPage_Num{Num: 1}
			wantCode(t, hs.send(PathRecord, frame(t, book)), OK, "")
			if n := countLoads(t, hs, func() { wantCode(t, hs.handle(cmd(1, 2, 1)), OK, "") }); n != 1 {
				t.Fatalf("%d loads after a Record, want 1", n)
			}
		})
		t.Run("snapshot drops the entry", func(t *testing.T) {
			hs := newHarnessIn(t, mode, counterConfig)
			hs.logic = func(cc *pb.ContextualCommand) (*pb.EventBook, *Status) {
				b, err := counter.Decide(cc, 2)
				if err != nil {
					t.Fatal(err)
				}
				return b, nil
			}
			wantCode(t, hs.handle(cmd(1, 0, 1)), OK, "")
			// The second event crosses the snapshot boundary.
			if n := countLoads(t, hs, func() { wantCode(t, hs.handle(cmd(1, 1, 1)), OK, "") }); n != 0 {
				t.Fatalf("%d loads before the snapshot, want 0", n)
			}
			if n := countLoads(t, hs, func() { wantCode(t, hs.handle(cmd(1, 2, 1)), OK, "") }); n != 1 {
				t.Fatalf("%d loads after a snapshot, want 1", n)
			}
		})
		t.Run("event service failure drops the entry", func(t *testing.T) {
			hs := newHarnessIn(t, mode, counterConfig)
			wantCode(t, hs.handle(cmd(1, 0, 1)), OK, "")
			hs.beforeCall = func(c *fakeCall) bool {
				if c.method == "Append" {
					hs.g.OnGrpcClose(c.token, DeadlineExceeded, "timeout")
					return false
				}
				return true
			}
			wantCode(t, hs.handle(cmd(1, 1, 1)), Unavailable, "")
			hs.beforeCall = nil
			if hs.p != nil && hs.p.cache.len() != 0 {
				t.Fatal("entry kept after an append of unknown outcome")
			}
			if n := countLoads(t, hs, func() { wantCode(t, hs.handle(cmd(1, 1, 1)), OK, "") }); n != 1 {
				t.Fatalf("%d loads after an append of unknown outcome, want 1", n)
			}
		})
	})
}

func TestAggCacheBounds(t *testing.T) {
	c := newAggCache(8 * (entryOverhead + 100))
	book := func(n int) []byte { return []byte(strings.Repeat("x", n)) }
	c.put("a", book(90), 1)
	c.put("b", book(90), 1)
	if c.len() != 2 || c.used != c.entries["a"].size()+c.entries["b"].size() || c.used < 2*(90+entryOverhead) {
		t.Fatalf("len %d used %d", c.len(), c.used)
	}
	// Larger than an eighth of the cache: not kept.
	c.put("big", book(200), 1)
	if _, ok := c.get("big"); ok {
		t.Fatal("oversized entry admitted")
	}
	// Fill up; "a" is touched, so "b" is the least recently used.
	c.get("a")
	for i := 0; i < 7; i++ {
		c.put(string(rune('c'+i)), book(90), 1)
	}
	if _, ok := c.get("b"); ok {
		t.Fatal("least recently used entry not evicted")
	}
	if _, ok := c.get("a"); !ok {
		t.Fatal("recently used entry evicted")
	}
	if c.used > c.max {
		t.Fatalf("used %d > max %d", c.used, c.max)
	}
	// extend at the entry's sequence grows it; at another drops it.
	c.extend("a", 1, []byte("yy"), 2)
	if e, _ := c.get("a"); e == nil || e.next != 2 || !strings.HasSuffix(string(e.book), "yy") {
		t.Fatalf("extend: %+v", e)
	}
	c.extend("a", 5, []byte("zz"), 6)
	if _, ok := c.get("a"); ok {
		t.Fatal("extend at another sequence kept the entry")
	}
	// extend past an eighth of the cache drops the entry; within it, the
	// grown entry makes room by evicting from the cold end.
	consistent := func(c *aggCache, what string) {
		t.Helper()
		sum, ring := 0, 0
		for e := c.lru.after; e != &c.lru; e = e.after {
			if c.entries[e.key] != e {
				t.Fatalf("%s: ring entry %q not in the map", what, e.key)
			}
			sum += e.size()
			ring++
		}
		if ring != c.len() || sum != c.used || c.used > c.max {
			t.Fatalf("%s: %d in the ring, %d in the map, used %d of %d for %d", what, ring, c.len(), c.used, c.max, sum)
		}
	}
	c.extend("c", 1, book(c.max/8), 2)
	if _, ok := c.get("c"); ok {
		t.Fatal("entry extended past an eighth of the cache kept")
	}
	consistent(c, "after an oversized extend")
	g := newAggCache(8 * 1000)
	g.put("x", book(100), 1)
	for i := 0; g.len() == i+1; i++ { // until a put evicts
		g.put(fmt.Sprint("f", i), book(100), 1)
		g.get("x")
	}
	cold := g.lru.before.key
	g.extend("x", 1, book(300), 2)
	if e, ok := g.get("x"); !ok || e.next != 2 || len(e.book) != 400 {
		t.Fatal("grown entry not kept")
	}
	if _, ok := g.entries[cold]; ok {
		t.Fatalf("the coldest entry %q was not evicted to make room", cold)
	}
	consistent(g, "after a growing extend")
	for c.len() > 0 {
		c.drop(c.lru.after.key)
	}
	if c.used != 0 {
		t.Fatalf("used %d after dropping everything", c.used)
	}
	var off *aggCache // switched off: every method is a no-op
	off.put("a", nil, 0)
	off.extend("a", 0, nil, 1)
	if _, ok := off.get("a"); ok || off.len() != 0 {
		t.Fatal("nil cache holds entries")
	}
}

func TestPageFields(t *testing.T) {
	book := &pb.EventBook{Cover: &pb.Cover{Domain: "d"}, Pages: []*pb.EventPage{counter.Event(1), counter.Event(2)}}
	b, _ := proto.Marshal(book)
	pages, err := wire.PageFields(b)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := proto.Marshal(&pb.EventBook{Pages: []*pb.EventPage{counter.Event(7)}})
	got := &pb.EventBook{}
	if err := proto.Unmarshal(append(other, pages...), got); err != nil {
		t.Fatal(err)
	}
	if len(got.Pages) != 3 || got.Cover != nil {
		t.Fatalf("appended pages: %v", got)
	}
	if _, err := wire.PageFields([]byte{0x1a, 0x05, 0x01}); err == nil {
		t.Fatal("truncated book accepted")
	}
}
