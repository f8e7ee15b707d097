package storetest

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
)

// Trace contexts of the conformance suite: two well-formed ones (one with
// a tracestate) and one that is not a traceparent at all, which a store
// keeps verbatim like the others.
var (
	traceA = store.TraceContext{
		Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		Tracestate:  "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
	}
	traceB   = store.TraceContext{Traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}
	traceBad = store.TraceContext{Traceparent: "not a traceparent", Tracestate: "x=1"}
)

// testTraceContext: every log entry comes back from Fetch with the trace
// context of the append that wrote it, also when consecutive appends of
// one aggregate and correlation id differ only in it; appends without one
// give a zero one; oversized ones are refused.
func testTraceContext(t *testing.T, s store.Store) {
	c, ok := s.(store.Checkpointer)
	if !ok {
		t.Fatalf("%T does not implement store.Checkpointer", s)
	}
	agg := newAgg(t)
	sub := "trace-" + agg.Domain
	for p := uint32(0); p < s.Partitions(); p++ {
		if _, err := c.OpenCheckpoint(ctx(t), sub, agg.Domain, p, false); err != nil {
			t.Fatal(err)
		}
	}
	appends := []struct {
		n     int
		trace store.TraceContext
	}{{2, traceA}, {1, traceB}, {1, store.TraceContext{}}, {1, traceBad}, {1, traceA}}
	var next uint32
	for _, a := range appends {
		res := mustAppend(t, s, &store.AppendRequest{Aggregate: agg, CorrelationID: "c", Expected: next, Pages: Pages(next, a.n, "a"), Trace: a.trace})
		next = res.Next
	}
	// A repeat of an idempotency key logs nothing, whatever its trace.
	mustAppend(t, s, &store.AppendRequest{Aggregate: agg, CorrelationID: "c", Expected: next, Pages: Pages(next, 1, "k"), IdempotencyKey: "k", Trace: traceB})
	if res := mustAppend(t, s, &store.AppendRequest{Aggregate: agg, CorrelationID: "c", Expected: next, Pages: Pages(next, 1, "k"), IdempotencyKey: "k", Trace: traceA}); !res.Duplicate {
		t.Fatal("the repeat of an idempotency key was not a duplicate")
	}

	var got []string
	for p := uint32(0); p < s.Partitions(); p++ {
		entries, err := c.Fetch(ctx(t), sub, agg.Domain, p, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			var texts []string
			for _, pg := range e.Book.GetPages() {
				texts = append(texts, Text(t, pg))
			}
			got = append(got, fmt.Sprintf("%v %q %q", texts, e.Trace.Traceparent, e.Trace.Tracestate))
		}
	}
	want := []string{
		fmt.Sprintf("[a-0 a-1] %q %q", traceA.Traceparent, traceA.Tracestate),
		fmt.Sprintf("[a-2] %q %q", traceB.Traceparent, ""),
		`[a-3] "" ""`,
		fmt.Sprintf("[a-4] %q %q", traceBad.Traceparent, traceBad.Tracestate),
		fmt.Sprintf("[a-5] %q %q", traceA.Traceparent, traceA.Tracestate),
		fmt.Sprintf("[k-6] %q %q", traceB.Traceparent, ""),
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("fetched entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	for _, tc := range []store.TraceContext{
		{Traceparent: strings.Repeat("0", store.MaxTraceparentLen+1)},
		{Traceparent: traceA.Traceparent, Tracestate: strings.Repeat("a", store.MaxTracestateLen+1)},
	} {
		_, err := s.Append(ctx(t), &store.AppendRequest{Aggregate: agg, Expected: next + 1, Pages: Pages(next+1, 1, "x"), Trace: tc})
		if !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("append with a %d-byte traceparent and a %d-byte tracestate: %v, want invalid", len(tc.Traceparent), len(tc.Tracestate), err)
		}
	}
}
