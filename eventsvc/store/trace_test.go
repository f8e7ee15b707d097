package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
)

func spanContext(t *testing.T, tid, sid string, flags trace.TraceFlags, state string) trace.SpanContext {
	t.Helper()
	ts, err := trace.ParseTraceState(state)
	if err != nil {
		t.Fatal(err)
	}
	traceID, err := trace.TraceIDFromHex(tid)
	if err != nil {
		t.Fatal(err)
	}
	spanID, err := trace.SpanIDFromHex(sid)
	if err != nil {
		t.Fatal(err)
	}
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, SpanID: spanID, TraceFlags: flags, TraceState: ts, Remote: true})
}

// TestTraceContextRoundTrip: TraceOf renders ctx's span context as the W3C
// headers, and SpanContext reads them back as the same remote span context.
func TestTraceContextRoundTrip(t *testing.T) {
	for _, c := range []struct {
		flags      trace.TraceFlags
		state      string
		wantParent string
	}{
		{trace.FlagsSampled, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		{0, "", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"},
	} {
		sc := spanContext(t, "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", c.flags, c.state)
		tc := store.TraceOf(trace.ContextWithSpanContext(context.Background(), sc))
		if tc.Traceparent != c.wantParent || tc.Tracestate != c.state {
			t.Fatalf("TraceOf = %+v, want traceparent %q tracestate %q", tc, c.wantParent, c.state)
		}
		if got := tc.SpanContext(); !got.Equal(sc) {
			t.Fatalf("SpanContext = %v, want %v", got, sc)
		}
	}
}

// TestTraceContextNone: no span context gives a zero trace context, and a
// zero or malformed one gives no (an invalid) span context; an oversized
// tracestate is left out rather than failing the append.
func TestTraceContextNone(t *testing.T) {
	if tc := store.TraceOf(context.Background()); !tc.IsZero() {
		t.Fatalf("TraceOf without a span: %+v", tc)
	}
	for _, tc := range []store.TraceContext{
		{},
		{Traceparent: "not a traceparent"},
		{Traceparent: "00-00000000000000000000000000000000-00f067aa0ba902b7-01"},
		{Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"},
		{Traceparent: "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		{Traceparent: "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"},
		{Tracestate: "k=v"},
	} {
		if sc := tc.SpanContext(); sc.IsValid() {
			t.Errorf("%+v gives the valid span context %v", tc, sc)
		}
	}
	members := make([]string, 32)
	for i := range members {
		members[i] = fmt.Sprintf("k%d=%s", i, strings.Repeat("v", 255))
	}
	sc := spanContext(t, "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", trace.FlagsSampled, strings.Join(members, ","))
	tc := store.TraceOf(trace.ContextWithSpanContext(context.Background(), sc))
	if tc.Traceparent == "" || tc.Tracestate != "" {
		t.Fatalf("TraceOf with a %d-byte tracestate: %+v, want the traceparent alone", len(sc.TraceState().String()), tc)
	}
}
