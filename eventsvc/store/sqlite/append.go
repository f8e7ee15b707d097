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

	var (
		next               uint32
		tailBytes, tailEnd sql.NullInt64
	)
	err := tx.StmtContext(ctx, st.next).QueryRowContext(ctx, agg.Domain, root).Scan(&next, &tailBytes, &tailEnd)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, wrap("read next sequence", err)
	}
	// A new aggregate's history is empty; an old one's size is known while
	// no writer of an earlier version appended since it was kept.
	tail := sql.NullInt64{Valid: next == 0}
	if tailBytes.Valid && tailEnd.Valid && tailEnd.Int64 == int64(next) {
		tail = tailBytes
	}
	if req.Checked() && req.Expected != next {
		return nil, &store.ConflictError{Aggregate: agg, Expected: req.Expected, Next: next}
	}
	if uint64(next)+uint64(len(req.Pages)) > 1<<32-1 {
		return nil, store.Invalid("pages", "the aggregate's sequence space is exhausted")
	}
	if tail, err = s.history(ctx, tx, st, p, tail); err != nil {
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
		tailNext := sql.NullInt64{Int64: int64(res.Next), Valid: tail.Valid}
		if _, err := tx.StmtContext(ctx, st.setNext).ExecContext(ctx, agg.Domain, root, res.Next, tail, tailNext); err != nil {
			return nil, wrap("update aggregate", err)
		}
	}
	if p.snap != nil {
		if _, err := tx.StmtContext(ctx, st.setSnapshot).ExecContext(ctx, agg.Domain, root, res.Next, p.snap); err != nil {
			return nil, wrap("store snapshot", err)
		}
		if len(p.events) == 0 {
			if _, err := tx.StmtContext(ctx, st.resetTail).ExecContext(ctx, agg.Domain, root); err != nil {
				return nil, wrap("update aggregate", err)
			}
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

// history returns the bytes of the aggregate's events after its snapshot
// once p is appended (invalid when unknown and not needed), refusing with
// a *HistoryError an append without a snapshot that would take them
// beyond Limits.MaxHistoryBytes. tail is the size before the append; when
// it is unknown (an aggregate stored before the size was kept, or
// appended to by an earlier version since) and a bound applies, the
// events are summed once.
func (s *Store) history(ctx context.Context, tx *sql.Tx, st *stmts, p *pending, tail sql.NullInt64) (sql.NullInt64, error) {
	if p.snap != nil {
		return sql.NullInt64{Valid: true}, nil // the snapshot covers every event
	}
	bound := s.limits.HistoryBound()
	if !tail.Valid {
		if bound == 0 {
			return tail, nil
		}
		agg := p.req.Aggregate
		if err := tx.StmtContext(ctx, st.tail).QueryRowContext(ctx, agg.Domain, agg.Root[:], agg.Domain, agg.Root[:]).Scan(&tail.Int64); err != nil {
			return tail, wrap("read history size", err)
		}
		tail.Valid = true
	}
	add := 0
	for _, ev := range p.events {
		add += len(ev)
	}
	if bound > 0 && int(tail.Int64)+add > bound {
		return tail, &store.HistoryError{Aggregate: p.req.Aggregate, Bytes: int(tail.Int64), Adding: add, Limit: bound}
	}
	tail.Int64 += int64(add)
	return tail, nil
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
