package fanout

import (
	"context"
	"errors"
	"sync"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/status"

	"github.com/angzarr-mesh/angzarr/internal/telemetry"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Span names of the dispatcher (docs/observability.md).
const (
	spanSagaOrchestrate = "saga.orchestrate"
	spanSagaRetry       = "saga.retry"
	spanExecute         = "orchestration.execute"
	spanProjector       = "projector.handle"
)

// tracerName is the instrumentation scope of the dispatcher's spans.
const tracerName = "github.com/angzarr-mesh/angzarr/eventsvc/fanout"

// bookAttrs are the attributes of a span about a log entry.
func bookAttrs(book *pb.EventBook) []attribute.KeyValue {
	c := book.GetCover()
	return []attribute.KeyValue{
		attribute.String("domain", c.GetDomain()),
		attribute.String("root", rootString(c.GetRoot())),
		attribute.String(telemetry.CorrelationKey, c.GetCorrelationId()),
		attribute.Int("log.partition", int(book.GetPosition().GetPartition())),
		attribute.Int64("log.offset", int64(book.GetPosition().GetOffset())),
		attribute.Int("events", len(book.GetPages())),
	}
}

// rootString renders a root as a UUID ("" when it is not one).
func rootString(r *pb.UUID) string {
	u, err := uuid.FromBytes(r.GetValue())
	if err != nil {
		return ""
	}
	return u.String()
}

// endSpan ends span with err's status.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// errorCode names err for the reason label: "refused" for a refused saga
// command, else the gRPC code of the failure in snake case ("unknown" for
// errors without one).
func errorCode(err error) string {
	if errors.Is(err, ErrRefused) {
		return "refused"
	}
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		return snake(se.GRPCStatus().Code().String())
	}
	return "unknown"
}

// snake turns a gRPC code name (FailedPrecondition) into failed_precondition.
func snake(s string) string {
	out := make([]byte, 0, len(s)+4)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			if i > 0 {
				out = append(out, '_')
			}
			c += 'a' - 'A'
		}
		out = append(out, c)
	}
	return string(out)
}

// traceKey identifies a log entry.
type traceKey struct {
	domain    string
	partition uint32
	offset    uint64
}

// traceLinks remembers the trace context of the appends made through this
// process by the log position they got, so that the delivery of an entry
// continues the trace of the command that appended it. It is bounded
// (oldest forgotten first) and not durable: entries appended through
// another replica, or before a restart, start a trace of their own.
type traceLinks struct {
	mu   sync.Mutex
	m    map[traceKey]trace.SpanContext
	ring []traceKey
	next int
}

// traceLinkCapacity is how many appends' trace contexts are remembered.
const traceLinkCapacity = 1 << 14

func newTraceLinks(capacity int) *traceLinks {
	return &traceLinks{m: make(map[traceKey]trace.SpanContext, capacity), ring: make([]traceKey, capacity)}
}

func (l *traceLinks) put(k traceKey, sc trace.SpanContext) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if old := l.ring[l.next]; old != (traceKey{}) {
		delete(l.m, old)
	}
	l.ring[l.next] = k
	l.next = (l.next + 1) % len(l.ring)
	l.m[k] = sc
}

func (l *traceLinks) get(k traceKey) (trace.SpanContext, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	sc, ok := l.m[k]
	return sc, ok
}

// Appended records that an append through this process stored entries of
// domain at position, in the trace of ctx: the deliveries of that entry
// become part of that trace. NotifyingStore calls it.
func (d *Dispatcher) Appended(ctx context.Context, domain string, position *pb.LogPosition) {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() || position.GetOffset() == 0 {
		return
	}
	d.links.put(traceKey{domain, position.GetPartition(), position.GetOffset()}, sc)
}

// settle waits until the appends in flight through this process have
// recorded their trace links: a worker calls it after a fetch, because an
// entry it fetched may have been committed by an append that has not
// recorded its link yet.
func (d *Dispatcher) settle() {
	d.linking.Lock()
	//lint:ignore SA2001 an empty critical section is the point: it waits for the appends holding the read lock
	d.linking.Unlock()
}

// deliveryContext returns ctx with the trace context of the append that
// stored book (when this process remembers it) as the remote parent, and
// the book's correlation id for the logs.
func (d *Dispatcher) deliveryContext(ctx context.Context, book *pb.EventBook) context.Context {
	ctx = telemetry.WithCorrelationID(ctx, book.GetCover().GetCorrelationId())
	p := book.GetPosition()
	if sc, ok := d.links.get(traceKey{book.GetCover().GetDomain(), p.GetPartition(), p.GetOffset()}); ok {
		ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
	}
	return ctx
}
