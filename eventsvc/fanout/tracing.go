package fanout

import (
	"context"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/stats"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	"github.com/angzarr-mesh/angzarr/internal/telemetry"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Span names of the dispatcher (docs/observability.md).
const (
	spanSagaOrchestrate = "saga.orchestrate"
	spanSagaRetry       = "saga.retry"
	spanExecute         = "orchestration.execute"
	spanProjector       = "projector.handle"
	spanPMOrchestrate   = "pm.orchestrate"
	spanFetch           = "orchestration.fetch"
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

// correlationStats is the otelgrpc client handler of the dispatcher's
// calls, tagging each call's span with the correlation id its context
// carries (deliveryContext, sagaDelivery.execute), as every other span of
// the workflow is.
type correlationStats struct{ stats.Handler }

// TagRPC implements stats.Handler.
func (h correlationStats) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	ctx = h.Handler.TagRPC(ctx, info)
	if id := telemetry.CorrelationID(ctx); id != "" {
		trace.SpanFromContext(ctx).SetAttributes(attribute.String(telemetry.CorrelationKey, id))
	}
	return ctx
}

// deliveryContext returns ctx with the trace context stored with the entry
// (the span of the Append call that wrote it) as the remote parent, and
// the entry's correlation id for the logs. Without a stored trace
// context, or with a malformed one, the delivery's span is the root of a
// trace of its own.
func deliveryContext(ctx context.Context, e store.LogEntry) context.Context {
	ctx = telemetry.WithCorrelationID(ctx, e.Book.GetCover().GetCorrelationId())
	if sc := e.Trace.SpanContext(); sc.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
	}
	return ctx
}
