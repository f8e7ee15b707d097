package redis

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/storetest"
	"github.com/angzarr-mesh/angzarr/internal/testredis"
)

// TestGroupFailureStaysLocal sends one group of appends to one slot (one
// appendScript call) in which two appends meet keys of the wrong type (the
// events list of one, the correlation list of another): those two fail
// and write nothing, their neighbours are stored, a later append of the
// group sees an earlier one, a stale one conflicts, and a repeated
// idempotency key is a duplicate of the append before it in the group.
func TestGroupFailureStaysLocal(t *testing.T) {
	ctx := context.Background()
	addr := testredis.Start(t)
	s, err := Open(ctx, Options{Addrs: []string{addr}, Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	domain := storetest.Domain(t)
	agg := func() store.Aggregate { return store.Aggregate{Domain: domain, Root: uuid.New()} }
	a, b, c, e := agg(), agg(), agg(), agg()
	if err := s.c.Set(ctx, s.keys(b).events, "not a list", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.c.Set(ctx, s.keys(e).corrs+"poison", "not a list", 0).Err(); err != nil {
		t.Fatal(err)
	}
	reqs := []*store.AppendRequest{
		{Aggregate: a, Pages: storetest.Pages(0, 2, "a")},
		{Aggregate: b, Pages: storetest.Pages(0, 2, "b")},
		{Aggregate: a, Expected: 2, Pages: storetest.Pages(2, 1, "a")},
		{Aggregate: a, Pages: storetest.Pages(0, 1, "late")},
		{Aggregate: c, IdempotencyKey: "k", Pages: storetest.Pages(0, 1, "c")},
		{Aggregate: e, CorrelationID: "poison", Pages: storetest.Pages(0, 1, "e")},
		{Aggregate: c, IdempotencyKey: "k", Pages: storetest.Pages(0, 1, "again")},
	}
	batch := make([]*call, len(reqs))
	for i, r := range reqs {
		ac, err := s.appendCall(r)
		if err != nil {
			t.Fatal(err)
		}
		batch[i] = &call{ctx: ctx, app: ac, reply: make(chan scriptReply, 1)}
	}
	if us := units(batch); len(us) != 1 {
		t.Fatalf("%d script calls for appends to one slot, want 1", len(us))
	}
	if err := s.registerDomain(ctx, domain); err != nil {
		t.Fatal(err)
	}
	s.pipe.exec(batch)
	res := make([]*store.AppendResult, len(reqs))
	errs := make([]error, len(reqs))
	for i, cl := range batch {
		r := <-cl.reply
		if r.err != nil {
			t.Fatalf("append %d: the whole group failed: %v", i, r.err)
		}
		res[i], errs[i] = s.appendResult(reqs[i], r.val)
	}
	for _, i := range []int{0, 2, 4, 6} {
		if errs[i] != nil {
			t.Fatalf("append %d next to the failing ones: %v", i, errs[i])
		}
	}
	for _, i := range []int{1, 5} {
		if errs[i] == nil || !strings.Contains(errs[i].Error(), "WRONGTYPE") {
			t.Fatalf("append %d on a key of the wrong type: %v", i, errs[i])
		}
	}
	var ce *store.ConflictError
	if !errors.As(errs[3], &ce) || ce.Next != 3 {
		t.Fatalf("stale append in the group: %v, want a conflict at next 3", errs[3])
	}
	if res[2].First != 2 || res[2].Next != 3 {
		t.Fatalf("second append to a: %+v", res[2])
	}
	if r := res[6]; !r.Duplicate || r.Position.GetOffset() != res[4].Position.GetOffset() || storetest.Text(t, r.Pages[0]) != "c-0" {
		t.Fatalf("repeated key in the group: %+v", r)
	}
	for _, w := range []struct {
		agg   store.Aggregate
		texts []string
	}{
		{a, []string{"a-0", "a-1", "a-2"}},
		{c, []string{"c-0"}},
		{e, nil},
	} {
		l, err := s.Load(ctx, w.agg, store.LoadQuery{})
		if err != nil {
			t.Fatal(err)
		}
		pages := l.Pages
		if len(pages) != len(w.texts) || l.Next != uint32(len(w.texts)) {
			t.Fatalf("%s: %d pages, next %d, want %v", w.agg, len(pages), l.Next, w.texts)
		}
		for i, p := range pages {
			if storetest.Text(t, p) != w.texts[i] {
				t.Fatalf("%s page %d: %q, want %q", w.agg, i, storetest.Text(t, p), w.texts[i])
			}
		}
	}
	// The log holds one entry per stored append (a, a, c), none for the
	// failed ones.
	books, err := s.ReadLog(ctx, domain, 0, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(books) != 3 {
		t.Fatalf("%d log entries, want 3", len(books))
	}
}
