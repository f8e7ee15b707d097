package fanout

import (
	"context"
	"errors"
	"time"

	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// deliverer hands one log entry to a subscriber; an error means it was not
// (completely) handled and the entry is to be delivered again.
type deliverer interface {
	deliver(ctx context.Context, book *pb.EventBook) error
}

// deliverer returns the delivery for sub's kind.
func (d *Dispatcher) deliverer(sub *pb.Subscription) deliverer {
	if sub.GetKind() == pb.SubscriberKind_SUBSCRIBER_KIND_SAGA {
		return &sagaDelivery{d: d, sub: sub}
	}
	return &projectorDelivery{d: d, sub: sub}
}

// deliver delivers book with retries and backoff. When it still fails
// after the last attempt (at once for a refused saga command) it is parked
// in the dead-letter log; an entry of several pages (an append of several
// events, or on SQLite consecutive appends of one aggregate) is first split
// into its pages, each delivered with the same retries, so that only the
// failing events are parked and the others flow. It returns when book was
// handled either way, or ctx is done.
func (w *worker) deliver(ctx context.Context, book *pb.EventBook) {
	attempts, err := w.attempt(ctx, book)
	if err == nil || ctx.Err() != nil {
		return
	}
	if len(book.GetPages()) < 2 {
		w.park(ctx, book, err, attempts)
		return
	}
	for _, page := range book.GetPages() {
		single := &pb.EventBook{Cover: book.GetCover(), Pages: []*pb.EventPage{page}, Position: book.GetPosition()}
		if attempts, err := w.attempt(ctx, single); err != nil && ctx.Err() == nil {
			w.park(ctx, single, err, attempts)
		}
	}
}

// attempt delivers book until it succeeds, MaxAttempts were made, the
// error is a refusal, or ctx is done; it returns the number of attempts
// and the last error.
func (w *worker) attempt(ctx context.Context, book *pb.EventBook) (int, error) {
	name := w.sub.GetName()
	for attempt := 1; ; attempt++ {
		err := w.dl.deliver(ctx, book)
		if err == nil {
			w.d.metrics.delivered(ctx, name, "ok")
			if pages := book.GetPages(); len(pages) > 0 {
				w.d.metrics.lag(ctx, name, time.Since(pages[len(pages)-1].GetCreatedAt().AsTime()))
			}
			return attempt, nil
		}
		if ctx.Err() != nil {
			return attempt, err
		}
		if errors.Is(err, ErrRefused) || attempt >= w.d.opts.MaxAttempts {
			w.d.metrics.delivered(ctx, name, "failed")
			return attempt, err
		}
		w.d.metrics.delivered(ctx, name, "retry")
		w.d.log.Debug("fanout delivery failed", "subscriber", name, "domain", w.domain, "position", book.GetPosition(), "attempt", attempt, "err", err)
		if !w.d.backoff.sleep(ctx, attempt) {
			return attempt, err
		}
	}
}
