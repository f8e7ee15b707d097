package fanout

import (
	"context"
	"errors"
	"fmt"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// open makes sure the worker's checkpoint exists (created at the start or
// the end of the log by the subscription's start position), retrying with
// backoff until it succeeds or ctx is done.
func (w *worker) open(ctx context.Context) bool {
	for attempt := 1; ; attempt++ {
		created, err := w.d.st.OpenCheckpoint(ctx, w.sub.GetName(), w.domain, w.partition, startsLatest(w.sub))
		if err == nil {
			if created {
				w.d.log.Debug("fanout checkpoint created", "subscriber", w.sub.GetName(), "domain", w.domain, "partition", w.partition, "latest", startsLatest(w.sub))
			}
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		w.d.log.Warn("fanout open checkpoint failed", "subscriber", w.sub.GetName(), "domain", w.domain, "partition", w.partition, "err", err)
		if !w.d.backoff.sleep(ctx, attempt) {
			return false
		}
	}
}

// commit records a handled batch, fenced by h's lease when it has one,
// retrying with backoff until it succeeds, the lease is lost or ctx is
// done.
func (w *worker) commit(ctx context.Context, h *held, offsets []uint64) bool {
	for attempt := 1; ; attempt++ {
		var err error
		if h.fenced {
			err = w.d.leases.ls.CommitFenced(ctx, h.lease, w.sub.GetName(), offsets)
		} else {
			err = w.d.st.Commit(ctx, w.sub.GetName(), w.domain, w.partition, offsets)
		}
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if errors.Is(err, store.ErrFenced) {
			w.lost(h)
			return false
		}
		w.d.log.Warn("fanout commit failed", "subscriber", w.sub.GetName(), "domain", w.domain, "partition", w.partition, "err", err)
		if !w.d.backoff.sleep(ctx, attempt) {
			return false
		}
	}
}

// Reset moves the projector named name back to the beginning of every
// partition of its source domains (a rebuild): its workers stop, the
// checkpoints are reset, the workers start again. It returns the progress
// right after the reset: End is what the rebuild must reach.
func (d *Dispatcher) Reset(ctx context.Context, name string) (*pb.SubscriberProgress, error) {
	d.mu.Lock()
	r, ok := d.runners[name]
	if !ok {
		d.mu.Unlock()
		return nil, fmt.Errorf("%w %q: not in the fan-out configuration", ErrUnknownSubscriber, name)
	}
	if r.sub.GetKind() != pb.SubscriberKind_SUBSCRIBER_KIND_PROJECTOR {
		d.mu.Unlock()
		return nil, fmt.Errorf("%w: %q is a saga", ErrNotProjector, name)
	}
	r.stop()
	var errs []error
	for _, domain := range r.sub.GetSourceDomains() {
		for p := uint32(0); p < d.st.Partitions(); p++ {
			if err := d.st.ResetCheckpoint(ctx, name, domain, p); err != nil {
				errs = append(errs, fmt.Errorf("reset %s partition %d: %w", domain, p, err))
			}
		}
	}
	d.runners[name] = d.start(r.sub)
	d.mu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	d.log.Info("fanout subscriber reset", "subscriber", name)
	return d.Progress(ctx, name)
}

// Progress reports how far the subscriber named name has read each
// partition of its source domains (partitions without a checkpoint yet
// report 0 for both offsets and Started false).
func (d *Dispatcher) Progress(ctx context.Context, name string) (*pb.SubscriberProgress, error) {
	sub, err := d.subscription(name)
	if err != nil {
		return nil, err
	}
	out := &pb.SubscriberProgress{Name: name}
	for _, domain := range sub.GetSourceDomains() {
		for p := uint32(0); p < d.st.Partitions(); p++ {
			pr, err := d.st.Progress(ctx, name, domain, p)
			switch {
			case errors.Is(err, store.ErrNoCheckpoint):
				pr = &pb.PartitionProgress{Domain: domain, Partition: p}
			case err != nil:
				return nil, err
			default:
				pr.Started = true
			}
			out.Partitions = append(out.Partitions, pr)
		}
	}
	return out, nil
}
