package sqlite

import (
	"context"
	"database/sql"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Range implements store.Reader.
func (s *Store) Range(ctx context.Context, agg store.Aggregate, lo, hi uint32) ([]*pb.EventBook, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT seq, created_at, correlation_id, event FROM events
		WHERE domain = ? AND root = ? AND seq >= ? AND seq <= ? ORDER BY seq`, agg.Domain, agg.Root[:], lo, hi)
	if err != nil {
		return nil, wrap("read events", err)
	}
	defer rows.Close()
	var books []*pb.EventBook
	for rows.Next() {
		var (
			seq uint32
			at  int64
			cid string
			ev  []byte
		)
		if err := rows.Scan(&seq, &at, &cid, &ev); err != nil {
			return nil, wrap("read events", err)
		}
		p, err := page(seq, at, ev)
		if err != nil {
			return nil, err
		}
		books = store.AppendPage(books, agg, cid, p)
	}
	return books, wrap("read events", rows.Err())
}

func rangeQuery(ctx context.Context, q querier, agg store.Aggregate, lo, hi uint32) ([]*pb.EventPage, error) {
	rows, err := q.QueryContext(ctx, `SELECT seq, created_at, event FROM events
		WHERE domain = ? AND root = ? AND seq >= ? AND seq <= ? ORDER BY seq`, agg.Domain, agg.Root[:], lo, hi)
	if err != nil {
		return nil, wrap("read events", err)
	}
	defer rows.Close()
	var pages []*pb.EventPage
	for rows.Next() {
		var (
			seq uint32
			at  int64
			ev  []byte
		)
		if err := rows.Scan(&seq, &at, &ev); err != nil {
			return nil, wrap("read events", err)
		}
		p, err := page(seq, at, ev)
		if err != nil {
			return nil, err
		}
		pages = append(pages, p)
	}
	return pages, wrap("read events", rows.Err())
}

func page(seq uint32, at int64, ev []byte) (*pb.EventPage, error) {
	a := &anypb.Any{}
	if err := proto.Unmarshal(ev, a); err != nil {
		return nil, wrap("decode event", err)
	}
	return &pb.EventPage{
		Sequence:  &pb.EventPage_Num{Num: seq},
		CreatedAt: timestamppb.New(store.Micros(at)),
		Event:     a,
	}, nil
}

// ByCorrelation implements store.Reader: the events table's key is the
// global append order.
func (s *Store) ByCorrelation(ctx context.Context, correlationID string) ([]*pb.EventBook, error) {
	if correlationID == "" {
		return nil, store.Invalid("cover.correlation_id", "required")
	}
	rows, err := s.r.QueryContext(ctx, `SELECT domain, root, seq, created_at, event FROM events
		WHERE correlation_id = ? ORDER BY pos`, correlationID)
	if err != nil {
		return nil, wrap("read correlation", err)
	}
	defer rows.Close()
	var books []*pb.EventBook
	var last store.Aggregate
	for rows.Next() {
		var (
			domain string
			root   []byte
			seq    uint32
			at     int64
			ev     []byte
		)
		if err := rows.Scan(&domain, &root, &seq, &at, &ev); err != nil {
			return nil, wrap("read correlation", err)
		}
		p, err := page(seq, at, ev)
		if err != nil {
			return nil, err
		}
		agg := store.Aggregate{Domain: domain, Root: uuid.UUID(root)}
		if len(books) == 0 || agg != last {
			books = append(books, &pb.EventBook{Cover: agg.Cover(correlationID)})
			last = agg
		}
		b := books[len(books)-1]
		b.Pages = append(b.Pages, p)
	}
	return books, wrap("read correlation", rows.Err())
}

// Roots implements store.Reader: one range of the aggregates table's
// primary key (domain, root).
func (s *Store) Roots(ctx context.Context, domain string, after store.Aggregate, limit int) ([]store.Aggregate, error) {
	limit = max(1, min(limit, store.RootsLimit))
	var (
		rows *sql.Rows
		err  error
	)
	switch {
	case domain == "":
		rows, err = s.r.QueryContext(ctx, `SELECT domain, root FROM aggregates
			WHERE (domain, root) > (?, ?) ORDER BY domain, root LIMIT ?`, after.Domain, after.Root[:], limit)
	case after.Domain < domain:
		rows, err = s.r.QueryContext(ctx, `SELECT domain, root FROM aggregates
			WHERE domain = ? ORDER BY root LIMIT ?`, domain, limit)
	case after.Domain == domain:
		rows, err = s.r.QueryContext(ctx, `SELECT domain, root FROM aggregates
			WHERE domain = ? AND root > ? ORDER BY root LIMIT ?`, domain, after.Root[:], limit)
	default:
		return nil, nil // after the whole domain
	}
	if err != nil {
		return nil, wrap("read roots", err)
	}
	defer rows.Close()
	var out []store.Aggregate
	for rows.Next() {
		var (
			d string
			r []byte
		)
		if err := rows.Scan(&d, &r); err != nil {
			return nil, wrap("read roots", err)
		}
		out = append(out, store.Aggregate{Domain: d, Root: uuid.UUID(r)})
	}
	return out, wrap("read roots", rows.Err())
}
