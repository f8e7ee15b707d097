package fanout

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// runner runs one subscriber: a worker per source domain and partition.
type runner struct {
	sub    *pb.Subscription
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// start starts sub's workers under the dispatcher's Run context. The caller
// holds d.mu.
func (d *Dispatcher) start(sub *pb.Subscription) *runner {
	ctx, cancel := context.WithCancel(d.base)
	r := &runner{sub: sub, cancel: cancel}
	dl := d.deliverer(sub)
	for _, domain := range sub.GetSourceDomains() {
		for p := uint32(0); p < d.st.Partitions(); p++ {
			w := &worker{d: d, sub: sub, dl: dl, domain: domain, partition: p}
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				w.run(ctx)
			}()
		}
	}
	return r
}

// stop cancels the workers and waits for them. Entries they fetched and
// did not commit are delivered again by the next run.
func (r *runner) stop() {
	r.cancel()
	r.wg.Wait()
}

// worker reads one partition of one domain's log for one subscriber, in
// order: fetch a batch, deliver it, commit it.
type worker struct {
	d         *Dispatcher
	sub       *pb.Subscription
	dl        deliverer
	domain    string
	partition uint32
}

func (w *worker) run(ctx context.Context) {
	wake := w.d.wake.subscribe(w.domain, w.partition)
	defer wake.close()
	if !w.open(ctx) {
		return
	}
	for {
		h := w.d.leases.wait(ctx, part{w.domain, w.partition})
		if h == nil {
			return
		}
		w.dispatch(ctx, h, wake)
		h.users.Done()
	}
}

// dispatch reads the partition while this replica holds it: until the
// lease is lost (then at once, even in the middle of a batch: its
// deliveries are refused), drained (after the current batch) or ctx is
// done. Idle, it waits for a wake: an append through this process, the
// store's tail watch or, on a store without one, the poll interval.
func (w *worker) dispatch(parent context.Context, h *held, wake *wakeup) {
	ctx, cancel := h.fencedContext(parent)
	defer cancel()
	var poll <-chan time.Time
	var idle *time.Timer
	if w.d.leases.polls() {
		idle = time.NewTimer(w.d.opts.PollInterval)
		defer idle.Stop()
	}
	failures := 0
	for ctx.Err() == nil {
		select {
		case <-h.drain:
			return
		default:
		}
		entries, err := w.fetch(ctx, h)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, store.ErrFenced) {
				w.lost(h)
				return
			}
			failures++
			w.d.log.Warn("fanout fetch failed", "subscriber", w.sub.GetName(), "domain", w.domain, "partition", w.partition, "err", err)
			if errors.Is(err, store.ErrNoCheckpoint) && !w.open(ctx) {
				return
			}
			w.d.backoff.sleep(ctx, failures)
			continue
		}
		failures = 0
		if len(entries) == 0 {
			if idle != nil {
				idle.Reset(w.d.opts.PollInterval)
				poll = idle.C
			}
			select {
			case <-wake.C:
			case <-poll:
			case <-h.drain:
				return
			case <-ctx.Done():
				return
			}
			continue
		}
		offsets := w.handle(ctx, entries)
		if ctx.Err() != nil {
			return // not committed: delivered again by the next holder
		}
		if !w.commit(ctx, h, offsets) {
			return
		}
	}
}

// fetch reads the next batch, fenced by h's lease when it has one.
func (w *worker) fetch(ctx context.Context, h *held) ([]store.LogEntry, error) {
	if h.fenced {
		return w.d.leases.ls.FetchFenced(ctx, h.lease, w.sub.GetName(), w.d.opts.BatchSize)
	}
	return w.d.st.Fetch(ctx, w.sub.GetName(), w.domain, w.partition, w.d.opts.BatchSize)
}

// lost stops every worker of h's partition: the store refused its lease.
func (w *worker) lost(h *held) {
	w.d.log.Warn("fanout partition lease lost: stopping", "subscriber", w.sub.GetName(), "domain", w.domain, "partition", w.partition, "token", h.lease.Token)
	h.lose()
}

// handle delivers a batch: aggregates in parallel, each aggregate's
// entries in order. It returns the batch's offsets once every entry was
// delivered or dead-lettered (or ctx is done).
func (w *worker) handle(ctx context.Context, entries []store.LogEntry) []uint64 {
	offsets := make([]uint64, len(entries))
	var order []string
	groups := map[string][]store.LogEntry{}
	for i, e := range entries {
		offsets[i] = e.Book.GetPosition().GetOffset()
		k := string(e.Book.GetCover().GetRoot().GetValue())
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], e)
	}
	run := func(group []store.LogEntry) {
		for _, e := range group {
			if ctx.Err() != nil {
				return
			}
			w.deliver(ctx, e)
		}
	}
	if len(order) == 1 {
		run(groups[order[0]])
		return offsets
	}
	sem := make(chan struct{}, w.d.opts.Concurrency)
	var wg sync.WaitGroup
	for _, k := range order {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			run(groups[k])
		}()
	}
	wg.Wait()
	return offsets
}
