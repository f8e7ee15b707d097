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
	if seq < out.Next {
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
