package server

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/status"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	"github.com/angzarr-mesh/angzarr/internal/telemetry"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Append implements angzarr.EventStore.
func (s *Server) Append(ctx context.Context, req *pb.AppendRequest) (*pb.AppendResponse, error) {
	start := time.Now()
	ctx = withCorrelation(ctx, req.GetCover().GetCorrelationId())
	r, err := appendRequest(req, store.TraceOf(ctx), s.limits)
	if err == nil {
		var resp *pb.AppendResponse
		resp, err = s.doAppend(ctx, r)
		if err == nil {
			o := "ok"
			if resp.GetDuplicate() {
				o = "duplicate"
			}
			s.metrics.observe(ctx, s.metrics.appends, s.metrics.appendSeconds, start, o)
			return resp, nil
		}
	}
	s.metrics.observe(ctx, s.metrics.appends, s.metrics.appendSeconds, start, outcome(err))
	return nil, s.fail(ctx, "Append", err)
}

func (s *Server) doAppend(ctx context.Context, r *store.AppendRequest) (*pb.AppendResponse, error) {
	res, err := s.store.Append(ctx, r)
	if err != nil {
		return nil, err
	}
	if !res.Duplicate && len(res.Pages) > 0 {
		s.metrics.events.Add(ctx, int64(len(res.Pages)))
		s.notify.notify(r.Aggregate.Domain)
	}
	return &pb.AppendResponse{
		Book:         &pb.EventBook{Cover: r.Aggregate.Cover(r.CorrelationID), Pages: res.Pages},
		NextSequence: res.Next,
		Duplicate:    res.Duplicate,
		Position:     res.Position,
	}, nil
}

// Load implements angzarr.EventStore.
func (s *Server) Load(ctx context.Context, req *pb.LoadRequest) (*pb.LoadResponse, error) {
	start := time.Now()
	ctx = withCorrelation(ctx, req.GetCover().GetCorrelationId())
	agg, err := loadRequest(req)
	if err != nil {
		s.metrics.observe(ctx, s.metrics.loads, s.metrics.loadSeconds, start, outcome(err))
		return nil, s.fail(ctx, "Load", err)
	}
	if d := req.GetDelayMs(); d > 0 {
		if err := wait(ctx, time.Duration(d)*time.Millisecond); err != nil {
			return nil, status.FromContextError(err).Err()
		}
		start = time.Now() // the wait is not the load's latency
	}
	var l *store.Loaded
	q := store.LoadQuery{MaxBytes: s.limits.LoadPageBytes}
	if q.From = req.GetFromSequence(); q.From > 0 {
		q.To = req.GetToSequence()
	} else {
		q.IdempotencyKey = req.GetIdempotencyKey()
	}
	if el, ok := s.store.(store.EncodedLoader); ok {
		l, err = el.LoadEncoded(ctx, agg, q)
	} else {
		l, err = s.store.Load(ctx, agg, q)
	}
	s.metrics.observe(ctx, s.metrics.loads, s.metrics.loadSeconds, start, outcome(err))
	if err != nil {
		return nil, s.fail(ctx, "Load", err)
	}
	resp := &pb.LoadResponse{
		Book:         &pb.EventBook{Cover: agg.Cover(req.GetCover().GetCorrelationId()), Snapshot: l.Snapshot, Pages: l.Pages},
		NextSequence: l.Next,
		MoreFrom:     l.More,
	}
	if l.Encoded != nil {
		// The pages in their wire form go out as the book's unknown fields,
		// which the marshaller writes verbatim: a client decodes them as
		// the book's pages, with no decode and encode in between.
		resp.Book.ProtoReflect().SetUnknown(l.Encoded)
	}
	if p := l.Prior; p != nil {
		resp.Prior = &pb.AppendResponse{
			Book:         &pb.EventBook{Cover: agg.Cover(req.GetCover().GetCorrelationId()), Pages: p.Pages},
			NextSequence: p.Next,
			Duplicate:    true,
			Position:     p.Position,
		}
	}
	return resp, nil
}

// withCorrelation returns ctx carrying the request's correlation id (for
// the logs and the store's spans) and tags the call's server span with it,
// so every span of a command carries it.
func withCorrelation(ctx context.Context, id string) context.Context {
	if id == "" {
		return ctx
	}
	trace.SpanFromContext(ctx).SetAttributes(attribute.String(telemetry.CorrelationKey, id))
	return telemetry.WithCorrelationID(ctx, id)
}

// ReadLog implements angzarr.EventStore.
func (s *Server) ReadLog(ctx context.Context, req *pb.ReadLogRequest) (*pb.ReadLogResponse, error) {
	limit, err := readLogRequest(req, s.store.Partitions())
	if err != nil {
		return nil, s.fail(ctx, "ReadLog", err)
	}
	books, err := s.store.ReadLog(ctx, req.GetDomain(), req.GetPartition(), req.GetAfter(), limit)
	if err != nil {
		return nil, s.fail(ctx, "ReadLog", err)
	}
	return &pb.ReadLogResponse{Books: books, Partitions: s.store.Partitions()}, nil
}

// wait waits for d, or less when ctx ends first (its error).
func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
