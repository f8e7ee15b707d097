package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"
)

// CorrelationKey is the attribute key (and baggage member) of the
// correlation id on spans and log records.
const CorrelationKey = "correlation_id"

type correlationKey struct{}

// WithCorrelationID returns ctx carrying the correlation id (unchanged when
// id is empty).
func WithCorrelationID(ctx context.Context, id string) context.Context {
	if id == "" {
		return ctx
	}
	return context.WithValue(ctx, correlationKey{}, id)
}

// CorrelationID returns the correlation id ctx carries: the one set by
// WithCorrelationID, else the correlation_id baggage member, else "".
func CorrelationID(ctx context.Context) string {
	if id, ok := ctx.Value(correlationKey{}).(string); ok {
		return id
	}
	return baggage.FromContext(ctx).Member(CorrelationKey).Value()
}

// TraceParent renders the span context of ctx as a W3C traceparent header
// value, "" when ctx has no valid span context.
func TraceParent(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return ""
	}
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + sc.TraceFlags().String()
}
