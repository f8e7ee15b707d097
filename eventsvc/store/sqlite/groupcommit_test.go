package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/storetest"
)

// pendingOf encodes req as Append does.
func pendingOf(t *testing.T, req *store.AppendRequest) *pending {
	t.Helper()
	p := &pending{ctx: context.Background(), req: req, done: make(chan outcome, 1)}
	for _, pg := range req.Pages {
		b, err := proto.Marshal(pg.GetEvent())
		if err != nil {
			t.Fatal(err)
		}
		p.events = append(p.events, b)
	}
	return p
}

// TestBatchFailureStaysLocal commits one batch by hand in which an append
// fails inside SQLite (a trigger aborts the insert of its second event)
// between appends that depend on each other: the failing append leaves
// nothing behind, its neighbours commit, a later append of the batch sees
// an earlier one, a stale one conflicts, and a repeated idempotency key is
// a duplicate of the append before it in the same batch.
func TestBatchFailureStaysLocal(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "events.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.w.ExecContext(ctx, `CREATE TRIGGER poison BEFORE INSERT ON events
		WHEN NEW.correlation_id = 'poison' AND NEW.seq = 1 BEGIN SELECT RAISE(ABORT, 'poisoned'); END`); err != nil {
		t.Fatal(err)
	}
	domain := storetest.Domain(t)
	a, b, c := store.Aggregate{Domain: domain, Root: uuid.New()}, store.Aggregate{Domain: domain, Root: uuid.New()}, store.Aggregate{Domain: domain, Root: uuid.New()}
	batch := []*pending{
		pendingOf(t, &store.AppendRequest{Aggregate: a, Pages: storetest.Pages(0, 2, "a")}),
		pendingOf(t, &store.AppendRequest{Aggregate: b, CorrelationID: "poison", Pages: storetest.Pages(0, 2, "b")}),
		pendingOf(t, &store.AppendRequest{Aggregate: a, Expected: 2, Pages: storetest.Pages(2, 1, "a")}),
		pendingOf(t, &store.AppendRequest{Aggregate: a, Expected: 0, Pages: storetest.Pages(0, 1, "late")}),
		pendingOf(t, &store.AppendRequest{Aggregate: c, IdempotencyKey: "k", Pages: storetest.Pages(0, 1, "c")}),
		pendingOf(t, &store.AppendRequest{Aggregate: c, IdempotencyKey: "k", Pages: storetest.Pages(0, 1, "again")}),
	}
	s.commits.commit(batch)
	outs := make([]outcome, len(batch))
	for i, p := range batch {
		outs[i] = <-p.done
	}
	if outs[0].err != nil || outs[2].err != nil || outs[4].err != nil {
		t.Fatalf("neighbours of the failing append failed: %v, %v, %v", outs[0].err, outs[2].err, outs[4].err)
	}
	if outs[1].err == nil || !strings.Contains(outs[1].err.Error(), "poisoned") {
		t.Fatalf("poisoned append: %v", outs[1].err)
	}
	var ce *store.ConflictError
	if !errors.As(outs[3].err, &ce) || ce.Next != 3 {
		t.Fatalf("stale append in the batch: %v, want a conflict at next 3", outs[3].err)
	}
	if outs[2].res.First != 2 || outs[2].res.Next != 3 {
		t.Fatalf("second append to a: %+v", outs[2].res)
	}
	if r := outs[5].res; outs[5].err != nil || !r.Duplicate || r.Position.GetOffset() != outs[4].res.Position.GetOffset() || storetest.Text(t, r.Pages[0]) != "c-0" {
		t.Fatalf("repeated key in the batch: %+v, %v", r, outs[5].err)
	}
	for _, w := range []struct {
		agg    store.Aggregate
		texts  []string
		absent bool
	}{
		{a, []string{"a-0", "a-1", "a-2"}, false},
		{b, nil, true},
		{c, []string{"c-0"}, false},
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
	var rows int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM events WHERE root = ?`, b.Root[:]).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("the failed append left %d rows (%v)", rows, err)
	}
}
