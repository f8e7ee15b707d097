package storetest

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// fetchAll fetches every partition once for sub and returns the books and
// the offsets per partition.
func fetchAll(t *testing.T, c store.Checkpointer, parts uint32, sub, domain string) ([]*pb.EventBook, map[uint32][]uint64) {
	t.Helper()
	var books []*pb.EventBook
	offs := map[uint32][]uint64{}
	for p := uint32(0); p < parts; p++ {
		got, err := c.Fetch(ctx(t), sub, domain, p, 100)
		if err != nil {
			t.Fatalf("fetch %s partition %d: %v", sub, p, err)
		}
		for _, e := range got {
			b := e.Book
			if b.GetPosition().GetPartition() != p {
				t.Fatalf("partition %d returned position %v", p, b.GetPosition())
			}
			offs[p] = append(offs[p], b.GetPosition().GetOffset())
			books = append(books, b)
		}
	}
	return books, offs
}

// pageTexts lists the payloads of books' pages.
func pageTexts(t *testing.T, books []*pb.EventBook) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, b := range books {
		for _, p := range b.GetPages() {
			out[Text(t, p)]++
		}
	}
	return out
}

func commitAll(t *testing.T, c store.Checkpointer, sub, domain string, offs map[uint32][]uint64) {
	t.Helper()
	for p, o := range offs {
		if err := c.Commit(ctx(t), sub, domain, p, o); err != nil {
			t.Fatalf("commit %s partition %d: %v", sub, p, err)
		}
	}
}

func testCheckpoints(t *testing.T, s store.Store) {
	c, ok := s.(store.Checkpointer)
	if !ok {
		t.Fatalf("%T does not implement store.Checkpointer", s)
	}
	domain := Domain(t)
	early, late := "early-"+domain, "late-"+domain
	parts := s.Partitions()
	aggs := []store.Aggregate{{Domain: domain, Root: uuid.New()}, {Domain: domain, Root: uuid.New()}}
	mustAppend(t, s, &store.AppendRequest{Aggregate: aggs[0], Pages: Pages(0, 2, "a")})
	mustAppend(t, s, &store.AppendRequest{Aggregate: aggs[1], Pages: Pages(0, 1, "b")})

	if _, err := c.Fetch(ctx(t), early, domain, 0, 10); !errors.Is(err, store.ErrNoCheckpoint) {
		t.Fatalf("fetch without checkpoint: %v", err)
	}
	if _, err := c.Progress(ctx(t), early, domain, 0); !errors.Is(err, store.ErrNoCheckpoint) {
		t.Fatalf("progress without checkpoint: %v", err)
	}
	if _, err := c.OpenCheckpoint(ctx(t), early, domain, parts, false); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("checkpoint on partition %d of %d: %v", parts, parts, err)
	}
	for p := uint32(0); p < parts; p++ {
		for _, sub := range []string{early, late} {
			created, err := c.OpenCheckpoint(ctx(t), sub, domain, p, sub == late)
			if err != nil || !created {
				t.Fatalf("open %s partition %d: created %v, %v", sub, p, created, err)
			}
		}
		if created, err := c.OpenCheckpoint(ctx(t), early, domain, p, true); err != nil || created {
			t.Fatalf("open again: created %v, %v", created, err)
		}
	}

	// Earliest sees the history; fetched and not committed comes back.
	books, offs := fetchAll(t, c, parts, early, domain)
	want := map[string]int{"a-0": 1, "a-1": 1, "b-0": 1}
	if got := pageTexts(t, books); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("earliest fetched %v, want %v", got, want)
	}
	again, _ := fetchAll(t, c, parts, early, domain)
	if got := pageTexts(t, again); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("uncommitted entries fetched again as %v, want %v", got, want)
	}
	commitAll(t, c, early, domain, offs)
	if books, _ := fetchAll(t, c, parts, early, domain); len(books) != 0 {
		t.Fatalf("after commit fetched %d books", len(books))
	}
	var end uint64
	for p := uint32(0); p < parts; p++ {
		pr, err := c.Progress(ctx(t), early, domain, p)
		if err != nil {
			t.Fatal(err)
		}
		if pr.GetCommitted() != pr.GetEnd() || pr.GetDomain() != domain || pr.GetPartition() != p {
			t.Fatalf("progress after commit: %v", pr)
		}
		end += pr.GetEnd()
	}
	if end == 0 {
		t.Fatal("progress reports an empty log")
	}

	// Latest saw nothing of the history; both see what comes next.
	if books, _ := fetchAll(t, c, parts, late, domain); len(books) != 0 {
		t.Fatalf("latest fetched %d books of the history", len(books))
	}
	mustAppend(t, s, &store.AppendRequest{Aggregate: aggs[0], Expected: 2, Pages: Pages(2, 1, "a")})
	mustAppend(t, s, &store.AppendRequest{Aggregate: aggs[0], Expected: 3, Pages: Pages(3, 1, "a")})
	want = map[string]int{"a-2": 1, "a-3": 1}
	for _, sub := range []string{early, late} {
		books, offs := fetchAll(t, c, parts, sub, domain)
		if got := pageTexts(t, books); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s fetched %v, want %v", sub, got, want)
		}
		commitAll(t, c, sub, domain, offs)
	}

	// A limit splits a partition's entries; nothing is lost or repeated.
	p := s.Partitions() - 1
	for i := range aggs {
		for {
			res := mustAppend(t, s, &store.AppendRequest{Aggregate: store.Aggregate{Domain: domain, Root: uuid.New()}, Pages: Pages(0, 1, fmt.Sprint("l", i))})
			if res.Position.GetPartition() == p {
				break
			}
		}
	}
	var seen []string
	for {
		books, err := c.Fetch(ctx(t), late, domain, p, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(books) == 0 {
			break
		}
		if len(books) != 1 {
			t.Fatalf("limit 1 fetched %d", len(books))
		}
		seen = append(seen, Text(t, books[0].Book.GetPages()[0]))
		if err := c.Commit(ctx(t), late, domain, p, []uint64{books[0].Book.GetPosition().GetOffset()}); err != nil {
			t.Fatal(err)
		}
	}
	if fmt.Sprint(seen) != "[l0-0 l1-0]" {
		t.Fatalf("fetched one at a time: %v", seen)
	}

	// A reset starts from the beginning again.
	for p := uint32(0); p < parts; p++ {
		if err := c.ResetCheckpoint(ctx(t), early, domain, p); err != nil {
			t.Fatal(err)
		}
	}
	books, _ = fetchAll(t, c, parts, early, domain)
	if got := pageTexts(t, books); got["a-0"] != 1 || got["a-3"] != 1 || got["b-0"] != 1 {
		t.Fatalf("after reset fetched %v", got)
	}
	if err := c.ResetCheckpoint(ctx(t), "new-"+domain, domain, 0); err != nil {
		t.Fatalf("reset creates a checkpoint: %v", err)
	}
	if pr, err := c.Progress(ctx(t), "new-"+domain, domain, 0); err != nil || pr.GetCommitted() != 0 {
		t.Fatalf("progress after reset: %v, %v", pr, err)
	}
}

func testDeadLetters(t *testing.T, s store.Store) {
	d, ok := s.(store.DeadLetters)
	if !ok {
		t.Fatalf("%T does not implement store.DeadLetters", s)
	}
	sub := "dl-" + Domain(t)
	agg := newAgg(t)
	var ids []string
	var want []*pb.DeadLetter
	for i := 0; i < 3; i++ {
		dl := &pb.DeadLetter{
			Subscriber: sub, Kind: pb.SubscriberKind_SUBSCRIBER_KIND_PROJECTOR,
			Book:  &pb.EventBook{Cover: agg.Cover("c"), Pages: Pages(uint32(i), 1, "p"), Position: &pb.LogPosition{Offset: uint64(i + 1)}},
			Error: fmt.Sprint("boom ", i), Attempts: 5, DeadAt: timestamppb.Now(),
		}
		id, err := d.AddDeadLetter(ctx(t), dl)
		if err != nil || id == "" {
			t.Fatalf("add: %q, %v", id, err)
		}
		ids = append(ids, id)
		dl.Id = id
		want = append(want, dl)
	}
	got, err := d.ListDeadLetters(ctx(t), sub, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("listed %d dead letters, want %d", len(got), len(want))
	}
	for i := range got {
		if !proto.Equal(got[i], want[i]) {
			t.Fatalf("dead letter %d: got %v, want %v", i, got[i], want[i])
		}
	}
	if got, err := d.ListDeadLetters(ctx(t), sub, 2); err != nil || len(got) != 2 {
		t.Fatalf("limit 2: %d, %v", len(got), err)
	}
	all, err := d.ListDeadLetters(ctx(t), "", 100000)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, dl := range all {
		if dl.GetSubscriber() == sub {
			n++
		}
	}
	if n != 3 {
		t.Fatalf("every subscriber's list has %d of %s's, want 3", n, sub)
	}
	if err := d.RemoveDeadLetter(ctx(t), sub, ids[1]); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{ids[1], "bogus", "999999999-0", "12345678"} {
		if err := d.RemoveDeadLetter(ctx(t), sub, id); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("remove %q: %v", id, err)
		}
	}
	if err := d.RemoveDeadLetter(ctx(t), "other-"+sub, ids[0]); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("remove another subscriber's: %v", err)
	}
	got, err = d.ListDeadLetters(ctx(t), sub, 0)
	if err != nil || len(got) != 2 || got[0].GetId() != ids[0] || got[1].GetId() != ids[2] {
		t.Fatalf("after remove: %v, %v", got, err)
	}
	if _, err := d.AddDeadLetter(ctx(t), &pb.DeadLetter{Subscriber: "bad name!"}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("bad subscriber name: %v", err)
	}
}
