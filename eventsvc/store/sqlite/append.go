package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Append implements store.Appender in one writer transaction.
func (s *Store) Append(ctx context.Context, req *store.AppendRequest) (*store.AppendResult, error) {
	if err := req.Validate(s.limits); err != nil {
		return nil, err
	}
	events := make([][]byte, len(req.Pages))
	for i, p := range req.Pages {
		b, err := proto.Marshal(p.GetEvent())
		if err != nil {
			return nil, store.Invalid("pages[].event", "%v", err)
		}
		events[i] = b
	}
	var snap []byte
	if req.Snapshot != nil {
		b, err := proto.Marshal(req.Snapshot)
		if err != nil {
			return nil, store.Invalid("snapshot_state", "%v", err)
		}
		snap = b
	}
	agg := req.Aggregate
	root := agg.Root[:]

	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, wrap("begin", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit

	if req.IdempotencyKey != "" {
		prior, err := s.prior(ctx, tx, agg, req.IdempotencyKey)
		if err != nil {
			return nil, err
		}
		if prior != nil {
			return prior, nil
		}
	}

	var next uint32
	err = tx.QueryRowContext(ctx, `SELECT next_seq FROM aggregates WHERE domain = ? AND root = ?`, agg.Domain, root).Scan(&next)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, wrap("read next sequence", err)
	}
	if req.Checked() && req.Expected != next {
		return nil, &store.ConflictError{Aggregate: agg, Expected: req.Expected, Next: next}
	}
	if uint64(next)+uint64(len(req.Pages)) > 1<<32-1 {
		return nil, store.Invalid("pages", "the aggregate's sequence space is exhausted")
	}

	now := time.Now().UTC().Truncate(time.Microsecond)
	res := &store.AppendResult{First: next, Next: next + uint32(len(req.Pages)), Position: &pb.LogPosition{}}
	if len(events) > 0 {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO events (domain, root, seq, created_at, correlation_id, event, traceparent, tracestate) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return nil, wrap("prepare insert", err)
		}
		defer stmt.Close()
		for i, ev := range events {
			seq := next + uint32(i)
			r, err := stmt.ExecContext(ctx, agg.Domain, root, seq, now.UnixMicro(), req.CorrelationID, ev, req.Trace.Traceparent, req.Trace.Tracestate)
			if err != nil {
				return nil, wrap("insert event", err)
			}
			pos, err := r.LastInsertId()
			if err != nil {
				return nil, wrap("insert event", err)
			}
			res.Position.Offset = uint64(pos)
			res.Pages = append(res.Pages, &pb.EventPage{
				Sequence:  &pb.EventPage_Num{Num: seq},
				CreatedAt: timestamppb.New(now),
				Event:     req.Pages[i].GetEvent(),
			})
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO aggregates (domain, root, next_seq) VALUES (?, ?, ?)
			ON CONFLICT (domain, root) DO UPDATE SET next_seq = excluded.next_seq`, agg.Domain, root, res.Next); err != nil {
			return nil, wrap("update aggregate", err)
		}
	}
	if snap != nil {
		if _, err := tx.ExecContext(ctx, `INSERT INTO snapshots (domain, root, seq, state) VALUES (?, ?, ?, ?)
			ON CONFLICT (domain, root) DO UPDATE SET seq = excluded.seq, state = excluded.state`, agg.Domain, root, res.Next, snap); err != nil {
			return nil, wrap("store snapshot", err)
		}
	}
	if req.IdempotencyKey != "" {
		if _, err := tx.ExecContext(ctx, `INSERT INTO idempotency (domain, root, key, first_seq, count, next_seq, pos) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			agg.Domain, root, req.IdempotencyKey, res.First, len(req.Pages), res.Next, res.Position.Offset); err != nil {
			return nil, wrap("record idempotency key", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, wrap("commit", err)
	}
	return res, nil
}

// querier is what prior needs of a *sql.Tx.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// prior returns the result of the earlier append with key, or nil.
func (s *Store) prior(ctx context.Context, q querier, agg store.Aggregate, key string) (*store.AppendResult, error) {
	var first, count, next uint32
	var pos uint64
	err := q.QueryRowContext(ctx, `SELECT first_seq, count, next_seq, pos FROM idempotency WHERE domain = ? AND root = ? AND key = ?`,
		agg.Domain, agg.Root[:], key).Scan(&first, &count, &next, &pos)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, wrap("read idempotency key", err)
	}
	res := &store.AppendResult{First: first, Next: next, Duplicate: true, Position: &pb.LogPosition{Offset: pos}}
	if count > 0 {
		pages, err := rangeQuery(ctx, q, agg, first, first+count-1)
		if err != nil {
			return nil, err
		}
		res.Pages = pages
	}
	return res, nil
}
