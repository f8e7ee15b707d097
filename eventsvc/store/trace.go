package store

import (
	"context"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// TraceContext is the W3C trace context (https://www.w3.org/TR/trace-context/)
// of an append in its header form. A backend stores it, verbatim, with the
// append's log entry and returns it with the entry (LogEntry), so that
// whichever process delivers the entry later, after a restart too,
// continues the trace of the command that appended it. The zero value
// means none; a malformed value is stored and returned like any other, and
// its reader treats it as none (SpanContext).
type TraceContext struct {
	// Traceparent is the traceparent header, e.g.
	// "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01". At most
	// MaxTraceparentLen bytes.
	Traceparent string
	// Tracestate is the tracestate header, "" when there is none. At most
	// MaxTracestateLen bytes.
	Tracestate string
}

// Bounds of a stored trace context.
const (
	// MaxTraceparentLen leaves room for later versions of the header
	// (version 00 has 55 bytes).
	MaxTraceparentLen = 256
	// MaxTracestateLen is the largest tracestate the filter forwards.
	MaxTracestateLen = 8192
)

// w3c reads and writes the traceparent and tracestate headers.
var w3c propagation.TraceContext

// TraceOf returns the trace context of ctx's span: the event service's
// Append handler takes it from the call's server span, which continues the
// caller's traceparent. It is zero when ctx has no valid span context; a
// tracestate longer than MaxTracestateLen is left out.
func TraceOf(ctx context.Context) TraceContext {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return TraceContext{}
	}
	c := headerCarrier{}
	w3c.Inject(ctx, &c)
	if len(c.tracestate) > MaxTracestateLen {
		c.tracestate = ""
	}
	return TraceContext{Traceparent: c.traceparent, Tracestate: c.tracestate}
}

// IsZero reports whether tc is the zero value (no trace context).
func (tc TraceContext) IsZero() bool { return tc == TraceContext{} }

// SpanContext parses tc into the remote span context it names: the parent
// of the spans that deliver the entry. It is invalid (IsValid false) when
// tc is zero or malformed.
func (tc TraceContext) SpanContext() trace.SpanContext {
	if tc.Traceparent == "" {
		return trace.SpanContext{}
	}
	c := headerCarrier{traceparent: tc.Traceparent, tracestate: tc.Tracestate}
	return trace.SpanContextFromContext(w3c.Extract(context.Background(), &c))
}

// validate checks the bounds of tc for AppendRequest.Validate.
func (tc TraceContext) validate() error {
	if len(tc.Traceparent) > MaxTraceparentLen {
		return Invalid("trace.traceparent", "longer than %d bytes", MaxTraceparentLen)
	}
	if len(tc.Tracestate) > MaxTracestateLen {
		return Invalid("trace.tracestate", "longer than %d bytes", MaxTracestateLen)
	}
	return nil
}

// headerCarrier carries the two W3C headers without a map.
type headerCarrier struct{ traceparent, tracestate string }

func (c *headerCarrier) Get(key string) string {
	switch key {
	case "traceparent":
		return c.traceparent
	case "tracestate":
		return c.tracestate
	}
	return ""
}

func (c *headerCarrier) Set(key, value string) {
	switch key {
	case "traceparent":
		c.traceparent = value
	case "tracestate":
		c.tracestate = value
	}
}

func (c *headerCarrier) Keys() []string { return []string{"traceparent", "tracestate"} }
