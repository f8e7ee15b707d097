package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"math"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Load implements store.Loader from one consistent read transaction.
func (s *Store) Load(ctx context.Context, agg store.Aggregate, idempotencyKey string) (*store.Loaded, error) {
	return s.load(ctx, agg, idempotencyKey, false)
}

// LoadEncoded implements store.EncodedLoader: Load writing the pages in
// their wire form straight from the rows.
func (s *Store) LoadEncoded(ctx context.Context, agg store.Aggregate, idempotencyKey string) (*store.Loaded, error) {
	return s.load(ctx, agg, idempotencyKey, true)
}

func (s *Store) load(ctx context.Context, agg store.Aggregate, idempotencyKey string, encoded bool) (*store.Loaded, error) {
	if err := store.ValidateDomain("cover.domain", agg.Domain); err != nil {
		return nil, err
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
	switch {
	case seq >= out.Next:
	case encoded:
		if out.Encoded, out.EncodedCount, err = encodedRange(ctx, tx, agg, seq, math.MaxUint32, int(out.Next-seq)); err != nil {
			return nil, err
		}
	default:
		if out.Pages, err = rangeQuery(ctx, tx, agg, seq, math.MaxUint32); err != nil {
			return nil, err
		}
	}
	if idempotencyKey != "" {
		if out.Prior, err = s.prior(ctx, tx, agg, idempotencyKey); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// encodedRange is rangeQuery writing the pages in their wire form
// (store.AppendEncodedPage) straight from the rows, events undecoded;
// about is the number of pages expected, to size the buffer.
func encodedRange(ctx context.Context, q querier, agg store.Aggregate, lo, hi uint32, about int) ([]byte, int, error) {
	rows, err := q.QueryContext(ctx, `SELECT seq, created_at, event FROM events
		WHERE domain = ? AND root = ? AND seq >= ? AND seq <= ? ORDER BY seq`, agg.Domain, agg.Root[:], lo, hi)
	if err != nil {
		return nil, 0, wrap("read events", err)
	}
	defer rows.Close()
	b := make([]byte, 0, store.EncodedPageSize(128)*about)
	n := 0
	// Declared once: Scan's pointers make them escape.
	var (
		seq int64 // not uint32: database/sql converts integers to unsigned ones through strings
		at  int64
		ev  sql.RawBytes // valid until the next row: copied into b
	)
	for rows.Next() {
		if err := rows.Scan(&seq, &at, &ev); err != nil {
			return nil, 0, wrap("read events", err)
		}
		b = store.AppendEncodedPage(b, uint32(seq), at, []byte(ev))
		n++
	}
	return b, n, wrap("read events", rows.Err())
}
