package instrumented

import (
	"context"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	"github.com/angzarr-mesh/angzarr/internal/telemetry"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Backend is what the decorator wraps: a store with fan-out checkpoints and
// a dead-letter log, as both backends (sqlite, redis) are.
type Backend interface {
	store.Store
	store.Checkpointer
	store.DeadLetters
}

var (
	_ Backend             = (*Store)(nil)
	_ store.EncodedLoader = (*Store)(nil)
)

// Options configure the decorator.
type Options struct {
	// MeterProvider provides the instruments. Default: no metrics.
	MeterProvider metric.MeterProvider
	// TracerProvider provides the spans. Default: the global one
	// (otel.GetTracerProvider).
	TracerProvider trace.TracerProvider
}

// Store is an instrumented Backend.
type Store struct {
	inner   Backend
	metrics *metrics
	tracer  trace.Tracer
}

// New wraps inner, a backend of kind backend (the backend label, e.g.
// "sqlite" or "redis").
func New(inner Backend, backend string, opts Options) (*Store, error) {
	m, err := newMetrics(opts.MeterProvider, backend)
	if err != nil {
		return nil, err
	}
	tp := opts.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return &Store{inner: inner, metrics: m, tracer: tp.Tracer("github.com/angzarr-mesh/angzarr/eventsvc/store/instrumented")}, nil
}

// Unwrap returns the wrapped backend.
func (s *Store) Unwrap() Backend { return s.inner }

// span starts a span about one aggregate.
//
// The attributes are set after the start, and only on a span that records:
// a span that is not sampled (or no tracer at all) then costs no root
// rendering and no attribute slice on every append and load. (No sampler
// of ours looks at start attributes.)
func (s *Store) span(ctx context.Context, name string, agg store.Aggregate, correlationID string) (context.Context, trace.Span) {
	ctx, span := s.tracer.Start(ctx, name)
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("domain", agg.Domain),
			attribute.String("root", agg.Root.String()),
			attribute.String(telemetry.CorrelationKey, correlationID),
		)
	}
	return ctx, span
}

// end ends a span with the operation's outcome.
func end(span trace.Span, outcome string, err error) {
	if !span.IsRecording() {
		span.End()
		return
	}
	span.SetAttributes(attribute.String("outcome", outcome))
	if err != nil && outcome != "conflict" && outcome != "invalid" {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// Append implements store.Appender in the span aggregate.persist.
func (s *Store) Append(ctx context.Context, req *store.AppendRequest) (*store.AppendResult, error) {
	start := time.Now()
	ctx, span := s.span(ctx, "aggregate.persist", req.Aggregate, req.CorrelationID)
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("expected_sequence", int(req.Expected)), attribute.Int("events", len(req.Pages)))
	}
	res, err := s.inner.Append(ctx, req)
	outcome := Outcome(err)
	if err == nil && res.Duplicate {
		outcome = "duplicate"
	}
	s.metrics.observe(ctx, opAppend, start, outcome)
	if outcome == "ok" {
		s.metrics.count(ctx, s.metrics.stored, len(res.Pages), req.Aggregate.Domain)
		if req.Snapshot != nil {
			s.metrics.count(ctx, s.metrics.snapshots, 1, req.Aggregate.Domain)
		}
		if span.IsRecording() {
			span.SetAttributes(attribute.Int("next_sequence", int(res.Next)))
		}
	}
	end(span, outcome, err)
	return res, err
}

// Load implements store.Loader in the span aggregate.load_events.
func (s *Store) Load(ctx context.Context, agg store.Aggregate, q store.LoadQuery) (*store.Loaded, error) {
	return s.load(ctx, agg, q, s.inner.Load)
}

// LoadEncoded implements store.EncodedLoader (the backend's, or its Load
// when it has none) in the span aggregate.load_events.
func (s *Store) LoadEncoded(ctx context.Context, agg store.Aggregate, q store.LoadQuery) (*store.Loaded, error) {
	if el, ok := s.inner.(store.EncodedLoader); ok {
		return s.load(ctx, agg, q, el.LoadEncoded)
	}
	return s.load(ctx, agg, q, s.inner.Load)
}

func (s *Store) load(ctx context.Context, agg store.Aggregate, q store.LoadQuery, load func(context.Context, store.Aggregate, store.LoadQuery) (*store.Loaded, error)) (*store.Loaded, error) {
	start := time.Now()
	ctx, span := s.span(ctx, "aggregate.load_events", agg, telemetry.CorrelationID(ctx))
	l, err := load(ctx, agg, q)
	outcome := Outcome(err)
	s.metrics.observe(ctx, opLoad, start, outcome)
	if err == nil {
		s.metrics.count(ctx, s.metrics.loaded, l.PageCount(), agg.Domain)
		if span.IsRecording() {
			span.SetAttributes(attribute.Int("events", l.PageCount()), attribute.Bool("snapshot", l.Snapshot != nil), attribute.Int("next_sequence", int(l.Next)))
		}
	}
	end(span, outcome, err)
	return l, err
}

// Range implements store.Reader.
func (s *Store) Range(ctx context.Context, agg store.Aggregate, lo, hi uint32) ([]*pb.EventBook, error) {
	start := time.Now()
	books, err := s.inner.Range(ctx, agg, lo, hi)
	s.metrics.observe(ctx, opRange, start, Outcome(err))
	return books, err
}

// ByCorrelation implements store.Reader.
func (s *Store) ByCorrelation(ctx context.Context, correlationID string) ([]*pb.EventBook, error) {
	start := time.Now()
	books, err := s.inner.ByCorrelation(ctx, correlationID)
	s.metrics.observe(ctx, opByCorrelation, start, Outcome(err))
	return books, err
}

// Roots implements store.Reader.
func (s *Store) Roots(ctx context.Context, domain string, after store.Aggregate, limit int) ([]store.Aggregate, error) {
	start := time.Now()
	aggs, err := s.inner.Roots(ctx, domain, after, limit)
	s.metrics.observe(ctx, opRoots, start, Outcome(err))
	return aggs, err
}

// Partitions implements store.LogReader.
func (s *Store) Partitions() uint32 { return s.inner.Partitions() }

// ReadLog implements store.LogReader.
func (s *Store) ReadLog(ctx context.Context, domain string, partition uint32, after uint64, limit int) ([]*pb.EventBook, error) {
	start := time.Now()
	books, err := s.inner.ReadLog(ctx, domain, partition, after, limit)
	s.metrics.observe(ctx, opReadLog, start, Outcome(err))
	return books, err
}

// Close implements store.Store.
func (s *Store) Close() error { return s.inner.Close() }

// OpenCheckpoint implements store.Checkpointer.
func (s *Store) OpenCheckpoint(ctx context.Context, subscriber, domain string, partition uint32, latest bool) (bool, error) {
	start := time.Now()
	created, err := s.inner.OpenCheckpoint(ctx, subscriber, domain, partition, latest)
	s.metrics.observe(ctx, opOpenCheckpoint, start, Outcome(err))
	return created, err
}

// Fetch implements store.Checkpointer.
func (s *Store) Fetch(ctx context.Context, subscriber, domain string, partition uint32, limit int) ([]store.LogEntry, error) {
	start := time.Now()
	entries, err := s.inner.Fetch(ctx, subscriber, domain, partition, limit)
	s.metrics.observe(ctx, opFetch, start, Outcome(err))
	return entries, err
}

// Commit implements store.Checkpointer; it counts
// angzarr.positions.updated_total.
func (s *Store) Commit(ctx context.Context, subscriber, domain string, partition uint32, offsets []uint64) error {
	start := time.Now()
	err := s.inner.Commit(ctx, subscriber, domain, partition, offsets)
	outcome := Outcome(err)
	s.metrics.observe(ctx, opCommit, start, outcome)
	s.metrics.count(ctx, s.metrics.positions, 1, domain, attribute.String("subscriber", subscriber), attribute.String("outcome", outcome))
	return err
}

// Progress implements store.Checkpointer.
func (s *Store) Progress(ctx context.Context, subscriber, domain string, partition uint32) (*pb.PartitionProgress, error) {
	start := time.Now()
	p, err := s.inner.Progress(ctx, subscriber, domain, partition)
	s.metrics.observe(ctx, opProgress, start, Outcome(err))
	return p, err
}

// ResetCheckpoint implements store.Checkpointer.
func (s *Store) ResetCheckpoint(ctx context.Context, subscriber, domain string, partition uint32) error {
	start := time.Now()
	err := s.inner.ResetCheckpoint(ctx, subscriber, domain, partition)
	s.metrics.observe(ctx, opResetCheckpoint, start, Outcome(err))
	return err
}

// AddDeadLetter implements store.DeadLetters.
func (s *Store) AddDeadLetter(ctx context.Context, dl *pb.DeadLetter) (string, error) {
	start := time.Now()
	id, err := s.inner.AddDeadLetter(ctx, dl)
	s.metrics.observe(ctx, opAddDeadLetter, start, Outcome(err))
	return id, err
}

// ListDeadLetters implements store.DeadLetters.
func (s *Store) ListDeadLetters(ctx context.Context, subscriber string, limit int) ([]*pb.DeadLetter, error) {
	start := time.Now()
	dls, err := s.inner.ListDeadLetters(ctx, subscriber, limit)
	s.metrics.observe(ctx, opListDeadLetters, start, Outcome(err))
	return dls, err
}

// RemoveDeadLetter implements store.DeadLetters.
func (s *Store) RemoveDeadLetter(ctx context.Context, subscriber, id string) error {
	start := time.Now()
	err := s.inner.RemoveDeadLetter(ctx, subscriber, id)
	s.metrics.observe(ctx, opRemoveDeadLetter, start, Outcome(err))
	return err
}
