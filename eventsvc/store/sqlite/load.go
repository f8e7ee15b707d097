package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Load implements store.Loader from one consistent read transaction.
func (s *Store) Load(ctx context.Context, agg store.Aggregate, q store.LoadQuery) (*store.Loaded, error) {
	return s.load(ctx, agg, q, false)
}

// LoadEncoded implements store.EncodedLoader: Load writing the pages in
// their wire form straight from the rows.
func (s *Store) LoadEncoded(ctx context.Context, agg store.Aggregate, q store.LoadQuery) (*store.Loaded, error) {
	return s.load(ctx, agg, q, true)
}

func (s *Store) load(ctx context.Context, agg store.Aggregate, q store.LoadQuery, encoded bool) (*store.Loaded, error) {
	if err := store.ValidateDomain("cover.domain", agg.Domain); err != nil {
		return nil, err
	}
	if q.From > 0 {
		// A continuation: events only, which never change once stored.
		out := &store.Loaded{Next: q.To}
		if q.From >= q.To {
			return out, nil
		}
		return out, s.pages(ctx, s.r, agg, q.From, q.To, q.MaxBytes, encoded, out)
	}
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, wrap("begin", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	root := agg.Root[:]
	out := &store.Loaded{}
	err = tx.QueryRowContext(ctx, `SELECT next_seq FROM aggregates WHERE domain = ? AND root = ?`, agg.Domain, root).Scan(&out.Next)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, wrap("read next sequence", err)
	}
	var (
		seq   uint32
		state []byte
	)
	err = tx.QueryRowContext(ctx, `SELECT seq, state FROM snapshots WHERE domain = ? AND root = ?`, agg.Domain, root).Scan(&seq, &state)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return nil, wrap("read snapshot", err)
	default:
		st := &anypb.Any{}
		if err := proto.Unmarshal(state, st); err != nil {
			return nil, wrap("decode snapshot", err)
		}
		out.Snapshot = &pb.Snapshot{Sequence: seq, State: st}
	}
	if seq < out.Next {
		budget := q.MaxBytes
		if budget > 0 {
			// The snapshot counts against the page (at least one event still comes).
			budget = max(1, budget-len(state))
		}
		if err := s.pages(ctx, tx, agg, seq, out.Next, budget, encoded, out); err != nil {
			return nil, err
		}
	}
	if q.IdempotencyKey != "" {
		if out.Prior, err = s.prior(ctx, tx, agg, q.IdempotencyKey); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// pages reads the events lo <= sequence < hi into out (Encoded or Pages),
// as many as fit in maxBytes (0: all; at least one), and sets out.More
// when it stops before hi. The encoded form is written straight from the
// rows (store.AppendEncodedPage), events undecoded.
func (s *Store) pages(ctx context.Context, q querier, agg store.Aggregate, lo, hi uint32, maxBytes int, encoded bool, out *store.Loaded) error {
	rows, err := q.QueryContext(ctx, `SELECT seq, created_at, event FROM events
		WHERE domain = ? AND root = ? AND seq >= ? AND seq < ? ORDER BY seq`, agg.Domain, agg.Root[:], lo, hi)
	if err != nil {
		return wrap("read events", err)
	}
	defer rows.Close()
	if encoded {
		out.Encoded = make([]byte, 0, store.EncodedPageSize(128)*min(int(hi-lo), 4096))
	}
	used := 0
	// Declared once: Scan's pointers make them escape.
	var (
		seq int64 // not uint32: database/sql converts integers to unsigned ones through strings
		at  int64
		ev  sql.RawBytes // valid until the next row: copied
	)
	for rows.Next() {
		if err := rows.Scan(&seq, &at, &ev); err != nil {
			return wrap("read events", err)
		}
		n := store.EventBytes(len(ev))
		if maxBytes > 0 && used > 0 && used+n > maxBytes {
			out.More = uint32(seq)
			break
		}
		used += n
		if encoded {
			out.Encoded = store.AppendEncodedPage(out.Encoded, uint32(seq), at, []byte(ev))
			out.EncodedCount++
			continue
		}
		p, err := page(uint32(seq), at, ev)
		if err != nil {
			return err
		}
		out.Pages = append(out.Pages, p)
	}
	return wrap("read events", rows.Err())
}
