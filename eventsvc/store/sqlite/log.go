package sqlite

import (
	"context"

	"github.com/google/uuid"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// ReadLog implements store.LogReader. An entry is a run of consecutive
// events of one aggregate with the same correlation id; its position is the
// offset of its last event.
func (s *Store) ReadLog(ctx context.Context, domain string, partition uint32, after uint64, limit int) ([]*pb.EventBook, error) {
	if err := store.ValidateDomain("domain", domain); err != nil {
		return nil, err
	}
	if partition != 0 {
		return nil, store.Invalid("partition", "%d: the log has 1 partition", partition)
	}
	if limit <= 0 {
		limit = 1000
	}
	rows, err := s.r.QueryContext(ctx, `SELECT pos, root, seq, created_at, correlation_id, event FROM events
		WHERE domain = ? AND pos > ? ORDER BY pos LIMIT ?`, domain, int64(after), limit)
	if err != nil {
		return nil, wrap("read log", err)
	}
	defer rows.Close()
	var books []*pb.EventBook
	var last struct {
		root uuid.UUID
		cid  string
		seq  uint32
	}
	for rows.Next() {
		var (
			pos  int64
			root []byte
			seq  uint32
			at   int64
			cid  string
			ev   []byte
		)
		if err := rows.Scan(&pos, &root, &seq, &at, &cid, &ev); err != nil {
			return nil, wrap("read log", err)
		}
		p, err := page(seq, at, ev)
		if err != nil {
			return nil, err
		}
		r := uuid.UUID(root)
		if len(books) == 0 || r != last.root || cid != last.cid || seq != last.seq+1 {
			books = append(books, &pb.EventBook{Cover: store.Aggregate{Domain: domain, Root: r}.Cover(cid)})
		}
		last.root, last.cid, last.seq = r, cid, seq
		b := books[len(books)-1]
		b.Pages = append(b.Pages, p)
		b.Position = &pb.LogPosition{Offset: uint64(pos)}
	}
	return books, wrap("read log", rows.Err())
}
