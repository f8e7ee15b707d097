package fanout

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// deliverer hands one log entry to a subscriber; an error means it was not
// (completely) handled and the entry is to be delivered again.
type deliverer interface {
	deliver(ctx context.Context, book *pb.EventBook) error
}

// deliverer returns the delivery for sub's kind.
func (d *Dispatcher) deliverer(sub *pb.Subscription) deliverer {
	switch sub.GetKind() {
	case pb.SubscriberKind_SUBSCRIBER_KIND_SAGA:
		return &sagaDelivery{d: d, sub: sub}
	case pb.SubscriberKind_SUBSCRIBER_KIND_PROCESS_MANAGER:
		return newPMDelivery(d, sub)
	}
	return &projectorDelivery{d: d, sub: sub}
}

// deliver delivers a log entry with retries and backoff, in the trace of
// the append that wrote it (deliveryContext). When it still fails after
// the last attempt (at once for a refused saga command) it is parked in
// the dead-letter log; an entry of several pages (an append of several
// events, or on SQLite consecutive appends of one aggregate in one trace
// context) is first split into its pages, each delivered with the same
// retries, so that only the failing events are parked and the others flow.
// It returns when the entry was handled either way, or ctx is done.
func (w *worker) deliver(ctx context.Context, e store.LogEntry) {
	ctx = deliveryContext(ctx, e)
	book := e.Book
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
// and the last error. It runs in the span saga.orchestrate (sagas) or
// projector.handle (projectors), a child of ctx's span (the append's, see
// deliveryContext); a saga's attempts after the first run in child spans
// saga.retry, a projector's are span events.
func (w *worker) attempt(ctx context.Context, book *pb.EventBook) (int, error) {
	name := w.sub.GetName()
	saga := w.sub.GetKind() == pb.SubscriberKind_SUBSCRIBER_KIND_SAGA
	spanName := spanProjector
	switch w.sub.GetKind() {
	case pb.SubscriberKind_SUBSCRIBER_KIND_SAGA:
		spanName = spanSagaOrchestrate
	case pb.SubscriberKind_SUBSCRIBER_KIND_PROCESS_MANAGER:
		spanName = spanPMOrchestrate
	}
	ctx, span := w.d.tracer.Start(ctx, spanName,
		trace.WithAttributes(append(bookAttrs(book), attribute.String("subscriber", name))...))
	start := time.Now()
	done := func(attempts int, err error) (int, error) {
		w.d.metrics.handled(ctx, w.sub, w.domain, time.Since(start), attempts, err)
		span.SetAttributes(attribute.Int("attempts", attempts))
		endSpan(span, err)
		return attempts, err
	}
	for attempt := 1; ; attempt++ {
		actx := ctx
		var retry trace.Span
		if attempt > 1 {
			if saga {
				actx, retry = w.d.tracer.Start(ctx, spanSagaRetry, trace.WithAttributes(append(bookAttrs(book), attribute.String("subscriber", name), attribute.Int("attempt", attempt))...))
			} else {
				span.AddEvent("retry", trace.WithAttributes(attribute.Int("attempt", attempt)))
			}
		}
		err := w.dl.deliver(actx, book)
		if retry != nil {
			endSpan(retry, err)
		}
		if err == nil {
			w.d.metrics.delivered(ctx, name, "ok")
			if pages := book.GetPages(); len(pages) > 0 {
				since := time.Since(pages[len(pages)-1].GetCreatedAt().AsTime())
				w.d.metrics.lag(ctx, name, since)
				w.d.metrics.published(ctx, w.sub, w.domain, since)
			}
			return done(attempt, nil)
		}
		if ctx.Err() != nil {
			return done(attempt, err)
		}
		if errors.Is(err, ErrRefused) || attempt >= w.d.opts.MaxAttempts {
			w.d.metrics.delivered(ctx, name, "failed")
			return done(attempt, err)
		}
		w.d.metrics.delivered(ctx, name, "retry")
		w.d.log.DebugContext(ctx, "fanout delivery failed", "subscriber", name, "domain", w.domain, "position", book.GetPosition(), "attempt", attempt, "err", err)
		if !w.d.backoff.sleep(ctx, attempt) {
			return done(attempt, err)
		}
	}
}
