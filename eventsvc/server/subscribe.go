package server

import (
	"errors"
	"io"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Synchronize implements angzarr.EventQuery as a catch-up subscription. The
// first Query on the stream says what to follow (one aggregate from
// range.lower, optionally up to range.upper; a whole domain, resuming after
// the positions in `after`; or a correlation id); later messages are not read.
// The stream stays open until the client cancels it, or, for a range with
// an upper bound, until that sequence has been sent.
func (s *Server) Synchronize(stream pb.EventQuery_SynchronizeServer) error {
	ctx := stream.Context()
	req, err := stream.Recv()
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return err
	}
	q, err := parseQuery(req)
	if err == nil {
		err = checkAfter(s.store, q)
	}
	if err != nil {
		return s.fail(ctx, "Synchronize", err)
	}
	if q.sel.Set != nil || !q.sel.AsOf.IsZero() {
		return s.fail(ctx, "Synchronize", store.Invalid("selection", "Synchronize follows a range (or everything); sequences and as_of_time do not apply"))
	}
	if req.GetRaw() {
		ctx = store.WithRaw(ctx) // as stored, past the domain's upcasters
	}
	// Later messages are never read: a client may half-close or send more,
	// the subscription stands until the client cancels it.
	s.metrics.subscriptions.Add(ctx, 1)
	defer s.metrics.subscriptions.Add(ctx, -1)
	// Subscribe before the first read: an append after it wakes the loop.
	domain := q.domain
	if q.kind == byAggregate {
		domain = q.agg.Domain
	}
	sub := s.notify.subscribe(domain)
	defer sub.close()
	// Appends through other replicas: the store's blocking tail read of
	// the domain when it has one (in place before the first read), a poll
	// otherwise.
	var poll <-chan time.Time
	ready, release := s.tails.follow(domain)
	defer release()
	if ready == nil {
		tick := time.NewTicker(s.poll)
		defer tick.Stop()
		poll = tick.C
	} else {
		select {
		case <-ready:
		case <-ctx.Done():
			return nil
		case <-s.stopping:
			return status.Error(codes.Unavailable, "event service shutting down")
		}
	}

	f := newFeed(s.store, q)
	for {
		for {
			books, done, err := f.next(ctx)
			if err != nil {
				return s.fail(ctx, "Synchronize", err)
			}
			for _, b := range books {
				if err := stream.Send(b); err != nil {
					return err
				}
			}
			if done {
				return nil
			}
			if len(books) == 0 {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.stopping:
			return status.Error(codes.Unavailable, "event service shutting down")
		case <-sub.C:
		case <-poll:
		}
	}
}
