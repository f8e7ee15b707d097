package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/storetest"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// schemaBeforeVersions is the schema files were created with before the
// schema was versioned (user_version 0, no trace context columns), as the
// store of that time wrote it. Frozen here: the test is about such files.
const schemaBeforeVersions = `
CREATE TABLE aggregates (domain TEXT NOT NULL, root BLOB NOT NULL, next_seq INTEGER NOT NULL, PRIMARY KEY (domain, root)) WITHOUT ROWID;
CREATE TABLE events (
	pos INTEGER PRIMARY KEY AUTOINCREMENT, domain TEXT NOT NULL, root BLOB NOT NULL, seq INTEGER NOT NULL,
	created_at INTEGER NOT NULL, correlation_id TEXT NOT NULL, event BLOB NOT NULL, UNIQUE (domain, root, seq));
CREATE INDEX events_domain_pos ON events (domain, pos);
CREATE INDEX events_correlation ON events (correlation_id, pos);
CREATE TABLE snapshots (domain TEXT NOT NULL, root BLOB NOT NULL, seq INTEGER NOT NULL, state BLOB NOT NULL, PRIMARY KEY (domain, root)) WITHOUT ROWID;
CREATE TABLE idempotency (domain TEXT NOT NULL, root BLOB NOT NULL, key TEXT NOT NULL, first_seq INTEGER NOT NULL,
	count INTEGER NOT NULL, next_seq INTEGER NOT NULL, pos INTEGER NOT NULL, PRIMARY KEY (domain, root, key)) WITHOUT ROWID;
CREATE TABLE checkpoints (subscriber TEXT NOT NULL, domain TEXT NOT NULL, part INTEGER NOT NULL, after_pos INTEGER NOT NULL,
	PRIMARY KEY (subscriber, domain, part)) WITHOUT ROWID;
CREATE TABLE dead_letters (id INTEGER PRIMARY KEY AUTOINCREMENT, subscriber TEXT NOT NULL, record BLOB NOT NULL);
CREATE INDEX dead_letters_subscriber ON dead_letters (subscriber, id);
`

// TestMigrateUnversionedFile: a file of the unversioned schema, with an
// event and a checkpoint in it, opens; its event is fetched with no trace
// context, new appends keep theirs, the file is at the current version,
// and it opens again.
func TestMigrateUnversionedFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	old, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	agg := store.Aggregate{Domain: "order", Root: uuid.New()}
	ev, err := proto.Marshal(storetest.Event("old-0"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{schemaBeforeVersions, nil},
		{`INSERT INTO events (domain, root, seq, created_at, correlation_id, event) VALUES (?, ?, 0, 1700000000000000, 'c', ?)`, []any{agg.Domain, agg.Root[:], ev}},
		{`INSERT INTO aggregates (domain, root, next_seq) VALUES (?, ?, 1)`, []any{agg.Domain, agg.Root[:]}},
		{`INSERT INTO checkpoints (subscriber, domain, part, after_pos) VALUES ('view', 'order', 0, 0)`, nil},
	} {
		if _, err := old.ExecContext(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	for round := 0; round < 2; round++ {
		s, err := Open(ctx, path, Options{})
		if err != nil {
			t.Fatalf("open (round %d): %v", round, err)
		}
		var version int
		if err := s.w.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil || version != len(migrations) {
			t.Fatalf("user_version %d, %v; want %d", version, err, len(migrations))
		}
		if round == 0 {
			tc := store.TraceContext{Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", Tracestate: "k=v"}
			if _, err := s.Append(ctx, &store.AppendRequest{Aggregate: agg, CorrelationID: "c", Expected: 1, Pages: storetest.Pages(1, 1, "new"), Trace: tc}); err != nil {
				t.Fatal(err)
			}
		}
		entries, err := s.Fetch(ctx, "view", "order", 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 2 || storetest.Text(t, entries[0].Book.GetPages()[0]) != "old-0" || !entries[0].Trace.IsZero() ||
			storetest.Text(t, entries[1].Book.GetPages()[0]) != "new-1" || entries[1].Trace.Traceparent != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" || entries[1].Trace.Tracestate != "k=v" {
			t.Fatalf("round %d fetched %v", round, entries)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestHistoryBoundOfOlderAggregates: an aggregate stored before its size
// was kept (the unversioned schema), or appended to since by a writer of
// an earlier version, has its events summed when an append needs the
// bound: a fifth 1 MB event is refused, a small one stored, and the size
// is kept from then on.
func TestHistoryBoundOfOlderAggregates(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	old, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	agg := store.Aggregate{Domain: "order", Root: uuid.New()}
	mb, err := proto.Marshal(storetest.Event(strings.Repeat("m", 1000000)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.ExecContext(ctx, schemaBeforeVersions); err != nil {
		t.Fatal(err)
	}
	for seq := 0; seq < 4; seq++ {
		if _, err := old.ExecContext(ctx, `INSERT INTO events (domain, root, seq, created_at, correlation_id, event) VALUES (?, ?, ?, 1700000000000000, 'c', ?)`,
			agg.Domain, agg.Root[:], seq, mb); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := old.ExecContext(ctx, `INSERT INTO aggregates (domain, root, next_seq) VALUES (?, ?, 4)`, agg.Domain, agg.Root[:]); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	big := []*pb.EventPage{{Event: storetest.Event(strings.Repeat("m", 1000000))}}
	var he *store.HistoryError
	if _, err := s.Append(ctx, &store.AppendRequest{Aggregate: agg, Expected: 4, Pages: big}); !errors.As(err, &he) || he.Bytes != 4*len(mb) {
		t.Fatalf("fifth 1 MB event on an older aggregate: %v", err)
	}
	if _, err := s.Append(ctx, &store.AppendRequest{Aggregate: agg, Expected: 4, Pages: storetest.Pages(4, 1, "small")}); err != nil {
		t.Fatal(err)
	}
	var tail, tailNext sql.NullInt64
	if err := s.w.QueryRowContext(ctx, `SELECT tail_bytes, tail_next FROM aggregates WHERE domain = ? AND root = ?`, agg.Domain, agg.Root[:]).Scan(&tail, &tailNext); err != nil ||
		tail.Int64 <= int64(4*len(mb)) || tailNext.Int64 != 5 {
		t.Fatalf("kept size %v at %v, %v", tail, tailNext, err)
	}
	// An earlier version appends a 1 MB event (its size left behind): summed again.
	if _, err := s.w.ExecContext(ctx, `INSERT INTO events (domain, root, seq, created_at, correlation_id, event) VALUES (?, ?, 5, 1700000000000000, 'c', ?)`, agg.Domain, agg.Root[:], mb); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, `UPDATE aggregates SET next_seq = 6 WHERE domain = ? AND root = ?`, agg.Domain, agg.Root[:]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, &store.AppendRequest{Aggregate: agg, Expected: 6, Pages: storetest.Pages(6, 1, "small")}); !errors.As(err, &he) || he.Bytes < 5*len(mb) {
		t.Fatalf("append after an earlier version's: %v", err)
	}
}
