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

// Append implements store.Appender: the request is validated and encoded
// here, then applied by the group committer in a writer transaction it
// may share with other appends (see groupcommit.go).
func (s *Store) Append(ctx context.Context, req *store.AppendRequest) (*store.AppendResult, error) {
	if err := req.Validate(s.limits); err != nil {
		return nil, err
	}
	p := &pending{ctx: ctx, req: req, events: make([][]byte, len(req.Pages)), done: make(chan outcome, 1)}
	for i, pg := range req.Pages {
		b, err := proto.Marshal(pg.GetEvent())
		if err != nil {
			return nil, store.Invalid("pages[].event", "%v", err)
		}
		p.events[i] = b
	}
	if req.Snapshot != nil {
		b, err := proto.Marshal(req.Snapshot)
		if err != nil {
			return nil, store.Invalid("snapshot_state", "%v", err)
		}
		p.snap = b
	}
	return s.commits.submit(p)
}

// apply applies one append inside the batch transaction tx. It writes
// nothing when it returns a conflict, a duplicate or an invalid error; on
// any other error the caller rolls the append's savepoint back.
func (s *Store) apply(ctx context.Context, tx *sql.Tx, st *stmts, p *pending, now time.Time) (*store.AppendResult, error) {
	req := p.req
	agg := req.Aggregate
	root := agg.Root[:]
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
	err := tx.StmtContext(ctx, st.next).QueryRowContext(ctx, agg.Domain, root).Scan(&next)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, wrap("read next sequence", err)
	}
	if req.Checked() && req.Expected != next {
		return nil, &store.ConflictError{Aggregate: agg, Expected: req.Expected, Next: next}
	}
	if uint64(next)+uint64(len(req.Pages)) > 1<<32-1 {
		return nil, store.Invalid("pages", "the aggregate's sequence space is exhausted")
	}
	if err := s.checkHistory(ctx, tx, st, p, next); err != nil {
		return nil, err
	}

	res := &store.AppendResult{First: next, Next: next + uint32(len(req.Pages)), Position: &pb.LogPosition{}}
	if len(p.events) > 0 {
		ins := tx.StmtContext(ctx, st.insertEvent)
		at := timestamppb.New(now)
		res.Pages = make([]*pb.EventPage, len(p.events))
		for i, ev := range p.events {
			seq := next + uint32(i)
			r, err := ins.ExecContext(ctx, agg.Domain, root, seq, now.UnixMicro(), req.CorrelationID, ev, req.Trace.Traceparent, req.Trace.Tracestate)
			if err != nil {
				return nil, wrap("insert event", err)
			}
			pos, err := r.LastInsertId()
			if err != nil {
				return nil, wrap("insert event", err)
			}
			res.Position.Offset = uint64(pos)
			res.Pages[i] = &pb.EventPage{Sequence: &pb.EventPage_Num{Num: seq}, CreatedAt: at, Event: req.Pages[i].GetEvent()}
		}
		if _, err := tx.StmtContext(ctx, st.setNext).ExecContext(ctx, agg.Domain, root, res.Next); err != nil {
			return nil, wrap("update aggregate", err)
		}
	}
	if p.snap != nil {
		if _, err := tx.StmtContext(ctx, st.setSnapshot).ExecContext(ctx, agg.Domain, root, res.Next, p.snap); err != nil {
			return nil, wrap("store snapshot", err)
		}
	}
	if req.IdempotencyKey != "" {
		if _, err := tx.StmtContext(ctx, st.insertIdem).ExecContext(ctx,
			agg.Domain, root, req.IdempotencyKey, res.First, len(req.Pages), res.Next, res.Position.Offset); err != nil {
			return nil, wrap("record idempotency key", err)
		}
	}
	return res, nil
}

// checkHistory refuses an append without a snapshot that would take the
// aggregate's events after its snapshot beyond Limits.MaxHistoryBytes. The
// sum is read only when the events there could reach the bound (each is
// at most MaxEventBytes).
func (s *Store) checkHistory(ctx context.Context, tx *sql.Tx, st *stmts, p *pending, next uint32) error {
	bound := s.limits.HistoryBound()
	if bound == 0 || p.snap != nil || len(p.events) == 0 {
		return nil
	}
	add := 0
	for _, ev := range p.events {
		add += len(ev)
	}
	if uint64(next)*uint64(s.limits.MaxEventBytes)+uint64(add) <= uint64(bound) {
		return nil
	}
	agg := p.req.Aggregate
	var cur int
	if err := tx.StmtContext(ctx, st.tail).QueryRowContext(ctx, agg.Domain, agg.Root[:], agg.Domain, agg.Root[:]).Scan(&cur); err != nil {
		return wrap("read history size", err)
	}
	if cur+add > bound {
		return &store.HistoryError{Aggregate: agg, Bytes: cur, Adding: add, Limit: bound}
	}
	return nil
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
