package sqlite

import (
	"context"

	"github.com/google/uuid"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// ReadLog implements store.LogReader: readLog without the trace contexts.
func (s *Store) ReadLog(ctx context.Context, domain string, partition uint32, after uint64, limit int) ([]*pb.EventBook, error) {
	entries, err := s.readLog(ctx, domain, partition, after, limit)
	if err != nil {
		return nil, err
	}
	books := make([]*pb.EventBook, len(entries))
	for i, e := range entries {
		books[i] = e.Book
	}
	return books, nil
}

// readLog reads up to limit events of domain's log after offset after. An
// entry is a run of consecutive events of one aggregate with the same
// correlation id and trace context (with tracing on, one append's events);
// its position is the offset of its last event.
func (s *Store) readLog(ctx context.Context, domain string, partition uint32, after uint64, limit int) ([]store.LogEntry, error) {
	if err := store.ValidateDomain("domain", domain); err != nil {
		return nil, err
	}
	if partition != 0 {
		return nil, store.Invalid("partition", "%d: the log has 1 partition", partition)
	}
	if limit <= 0 {
		limit = 1000
	}
	rows, err := s.r.QueryContext(ctx, `SELECT pos, root, seq, created_at, correlation_id, event, traceparent, tracestate FROM events
		WHERE domain = ? AND pos > ? ORDER BY pos LIMIT ?`, domain, int64(after), limit)
	if err != nil {
		return nil, wrap("read log", err)
	}
	defer rows.Close()
	var entries []store.LogEntry
	var last struct {
		root  uuid.UUID
		cid   string
		seq   uint32
		trace store.TraceContext
	}
	for rows.Next() {
		var (
			pos   int64
			root  []byte
			seq   uint32
			at    int64
			cid   string
			ev    []byte
			trace store.TraceContext
		)
		if err := rows.Scan(&pos, &root, &seq, &at, &cid, &ev, &trace.Traceparent, &trace.Tracestate); err != nil {
			return nil, wrap("read log", err)
		}
		p, err := page(seq, at, ev)
		if err != nil {
			return nil, err
		}
		r := uuid.UUID(root)
		if len(entries) == 0 || r != last.root || cid != last.cid || seq != last.seq+1 || trace != last.trace {
			entries = append(entries, store.LogEntry{Book: &pb.EventBook{Cover: store.Aggregate{Domain: domain, Root: r}.Cover(cid)}, Trace: trace})
		}
		last.root, last.cid, last.seq, last.trace = r, cid, seq, trace
		b := entries[len(entries)-1].Book
		b.Pages = append(b.Pages, p)
		b.Position = &pb.LogPosition{Offset: uint64(pos)}
	}
	return entries, wrap("read log", rows.Err())
}
