package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
)

// Group commit: appends that arrive while the writer is busy share its next
// transaction, so one WAL fsync (synchronous=FULL) makes a whole batch
// durable. Each append of a batch runs inside its own SAVEPOINT and is
// checked against its own expected sequence, after the appends before it
// in the batch: an append that fails is rolled back to its savepoint alone
// and its neighbours commit. No append is answered before the batch's
// COMMIT returned; when COMMIT (or the transaction) fails, every append of
// the batch gets that error and none is stored.

// Batch bounds: a batch takes at most maxBatch appends, and no further
// append once it holds maxBatchPages pages.
const (
	maxBatch      = 256
	maxBatchPages = 8192
)

var errClosed = errors.New("sqlite store closed")

// pending is one append waiting for its batch.
type pending struct {
	ctx    context.Context
	req    *store.AppendRequest
	events [][]byte // the encoded events
	snap   []byte   // the encoded snapshot, nil for none
	// state: 0 queued, 1 taken into a batch, 2 withdrawn by its caller
	// (context done before it was taken: nothing was stored).
	state atomic.Int32
	done  chan outcome // buffered: the committer never blocks on it
}

type outcome struct {
	res *store.AppendResult
	err error
}

// stmts are the writer's statements, prepared once on the writer
// connection and bound to each batch transaction.
type stmts struct {
	next, insertEvent, setNext, setSnapshot, insertIdem *sql.Stmt
	tail, resetTail                                     *sql.Stmt
	savepoint, release, rollbackTo                      *sql.Stmt
}

func prepare(ctx context.Context, w *sql.DB) (*stmts, error) {
	st := &stmts{}
	for _, q := range []struct {
		dst **sql.Stmt
		sql string
	}{
		{&st.next, `SELECT next_seq, tail_bytes, tail_next FROM aggregates WHERE domain = ? AND root = ?`},
		{&st.insertEvent, `INSERT INTO events (domain, root, seq, created_at, correlation_id, event, traceparent, tracestate) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`},
		{&st.setNext, `INSERT INTO aggregates (domain, root, next_seq, tail_bytes, tail_next) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (domain, root) DO UPDATE SET next_seq = excluded.next_seq, tail_bytes = excluded.tail_bytes, tail_next = excluded.tail_next`},
		{&st.resetTail, `UPDATE aggregates SET tail_bytes = 0, tail_next = next_seq WHERE domain = ? AND root = ?`},
		{&st.setSnapshot, `INSERT INTO snapshots (domain, root, seq, state) VALUES (?, ?, ?, ?)
			ON CONFLICT (domain, root) DO UPDATE SET seq = excluded.seq, state = excluded.state`},
		{&st.tail, `SELECT COALESCE(SUM(length(event)), 0) FROM events WHERE domain = ? AND root = ?
			AND seq >= COALESCE((SELECT seq FROM snapshots WHERE domain = ? AND root = ?), 0)`},
		{&st.insertIdem, `INSERT INTO idempotency (domain, root, key, first_seq, count, next_seq, pos) VALUES (?, ?, ?, ?, ?, ?, ?)`},
		{&st.savepoint, `SAVEPOINT append`},
		{&st.release, `RELEASE append`},
		{&st.rollbackTo, `ROLLBACK TO append`},
	} {
		s, err := w.PrepareContext(ctx, q.sql)
		if err != nil {
			st.close()
			return nil, fmt.Errorf("prepare %q: %w", q.sql, err)
		}
		*q.dst = s
	}
	return st, nil
}

func (st *stmts) close() {
	for _, s := range []*sql.Stmt{st.next, st.insertEvent, st.setNext, st.setSnapshot, st.insertIdem, st.tail, st.resetTail, st.savepoint, st.release, st.rollbackTo} {
		if s != nil {
			s.Close()
		}
	}
}

// committer is the single goroutine that writes appends, a batch per
// transaction.
type committer struct {
	s     *Store
	st    *stmts
	queue chan *pending // unbuffered: a send succeeds only into a running committer
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
}

func newCommitter(s *Store, st *stmts) *committer {
	c := &committer{s: s, st: st, queue: make(chan *pending), stop: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c
}

// close stops the committer after the batch in progress.
func (c *committer) close() {
	c.once.Do(func() {
		close(c.stop)
		<-c.done
		c.st.close()
	})
}

// submit queues p and returns its outcome. A caller whose context ends
// before its append was taken into a batch gets the context's error and
// nothing is stored; once taken, the caller waits for the batch's answer
// (bounded by the database's busy timeout), so that the answer it gives is
// the true one.
func (c *committer) submit(p *pending) (*store.AppendResult, error) {
	select {
	case c.queue <- p:
	case <-c.stop:
		return nil, store.Unavailable(errClosed)
	case <-p.ctx.Done():
		return nil, p.ctx.Err()
	}
	select {
	case o := <-p.done:
		return o.res, o.err
	case <-p.ctx.Done():
		if p.state.CompareAndSwap(0, 2) {
			return nil, p.ctx.Err()
		}
		o := <-p.done
		return o.res, o.err
	}
}

func (c *committer) run() {
	defer close(c.done)
	batch := make([]*pending, 0, maxBatch)
	for {
		batch = batch[:0]
		select {
		case p := <-c.queue:
			batch = append(batch, p)
		case <-c.stop:
			return
		}
		pages := len(batch[0].events)
	drain:
		for len(batch) < maxBatch && pages < maxBatchPages {
			select {
			case p := <-c.queue:
				batch = append(batch, p)
				pages += len(p.events)
			default:
				break drain
			}
		}
		c.commit(batch)
	}
}

// commit applies a batch in one transaction and answers each append.
func (c *committer) commit(batch []*pending) {
	taken := batch[:0]
	for _, p := range batch {
		if p.state.CompareAndSwap(0, 1) {
			taken = append(taken, p)
		}
	}
	if len(taken) == 0 {
		return
	}
	outs, err := c.apply(taken)
	for i, p := range taken {
		if err != nil {
			p.done <- outcome{err: err}
		} else {
			p.done <- outs[i]
		}
	}
}

// apply runs the batch's transaction: each append in its own savepoint,
// then one COMMIT. A non-nil error means nothing was stored.
func (c *committer) apply(batch []*pending) ([]outcome, error) {
	// One caller's cancellation must not abort its neighbours' transaction:
	// the batch runs to its end (or the busy timeout) on its own context.
	ctx := context.Background()
	tx, err := c.s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, wrap("begin", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	st := c.st
	now := time.Now().UTC().Truncate(time.Microsecond)
	outs := make([]outcome, len(batch))
	for i, p := range batch {
		if _, err := tx.StmtContext(ctx, st.savepoint).ExecContext(ctx); err != nil {
			return nil, wrap("savepoint", err)
		}
		res, err := c.s.apply(ctx, tx, st, p, now)
		if err != nil {
			// Undo whatever this append wrote; an error here means the
			// transaction itself is gone (SQLite rolls back the whole
			// transaction on some I/O errors): the batch fails.
			if _, rerr := tx.StmtContext(ctx, st.rollbackTo).ExecContext(ctx); rerr != nil {
				return nil, wrap("roll back append", errors.Join(err, rerr))
			}
		}
		if _, rerr := tx.StmtContext(ctx, st.release).ExecContext(ctx); rerr != nil {
			return nil, wrap("release savepoint", rerr)
		}
		outs[i] = outcome{res, err}
	}
	if err := tx.Commit(); err != nil {
		return nil, wrap("commit", err)
	}
	return outs, nil
}
