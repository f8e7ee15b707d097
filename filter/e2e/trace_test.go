//go:build !wasip1

package e2e

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/angzarr-mesh/angzarr/filter/internal/counter"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/wasmhost"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// TestTraceContext sends a command in a client trace (a fixed traceparent
// in the request metadata) through the real filter: the event service's
// aggregate.load_events and aggregate.persist spans are in the client's
// trace, under its Load and Append server spans whose parent is the
// client's span, and carry the command's correlation id; the business
// logic receives the trace headers with the request.
func TestTraceContext(t *testing.T) {
	const (
		traceHex = "4bf92f3577b34da6a3ce929d0e0e4736"
		spanHex  = "00f067aa0ba902b7"
		tp       = "00-" + traceHex + "-" + spanHex + "-01"
	)
	spans := tracetest.NewInMemoryExporter()
	provider := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	t.Cleanup(func() { _ = provider.Shutdown(context.Background()) })

	var mu sync.Mutex
	var logicMD []metadata.MD
	logic := &counter.Service{Seen: func(ctx context.Context, _ *pb.ContextualCommand) {
		md, _ := metadata.FromIncomingContext(ctx)
		mu.Lock()
		logicMD = append(logicMD, md)
		mu.Unlock()
	}}
	s := Start(t, Options{Profile: wasmhost.WASIEnvoyCurrent, Filter: wasmPath, TracerProvider: provider, Logic: logic})

	ctx := metadata.AppendToOutgoingContext(ctxT(t), "traceparent", tp, "tracestate", "vendor=x", "baggage", "tenant=acme")
	var hdr metadata.MD
	if _, err := s.Coordinator().Handle(ctx, command(newRoot(t), 0, 4), grpc.Header(&hdr)); err != nil {
		t.Fatal(err)
	}
	cid := hdr.Get("x-angzarr-correlation-id")
	if len(cid) != 1 || cid[0] == "" {
		t.Fatalf("no correlation id in %v", hdr)
	}

	mu.Lock()
	if len(logicMD) != 1 || len(logicMD[0].Get("traceparent")) != 1 || logicMD[0].Get("traceparent")[0] != tp ||
		len(logicMD[0].Get("baggage")) != 1 || logicMD[0].Get("baggage")[0] != "tenant=acme" {
		t.Errorf("the business logic got metadata %v", logicMD)
	}
	mu.Unlock()

	// The server spans end just after the response is sent: poll.
	want := map[string]string{"aggregate.load_events": "angzarr.EventStore/Load", "aggregate.persist": "angzarr.EventStore/Append"}
	var byID map[trace.SpanID]tracetest.SpanStub
	var found map[string]tracetest.SpanStub
	for deadline := time.Now().Add(20 * time.Second); ; {
		byID, found = map[trace.SpanID]tracetest.SpanStub{}, map[string]tracetest.SpanStub{}
		for _, sp := range spans.GetSpans() {
			byID[sp.SpanContext.SpanID()] = sp
			found[sp.Name] = sp
		}
		complete := true
		for store, server := range want {
			if _, ok := found[store]; !ok {
				complete = false
			}
			if _, ok := found[server]; !ok {
				complete = false
			}
		}
		if complete {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("spans %v, want %v and their server spans", found, want)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
	for store, server := range want {
		sp := found[store]
		if got := sp.SpanContext.TraceID().String(); got != traceHex {
			t.Errorf("%s is in trace %s, want the client's %s", store, got, traceHex)
		}
		attrs := map[string]string{}
		for _, kv := range sp.Attributes {
			attrs[string(kv.Key)] = kv.Value.String()
		}
		if attrs["correlation_id"] != cid[0] || attrs["domain"] != counter.Domain {
			t.Errorf("%s attributes %v, want correlation_id %s", store, attrs, cid[0])
		}
		parent, ok := byID[sp.Parent.SpanID()]
		if !ok || parent.Name != server {
			t.Errorf("%s's parent is %q, want %s", store, parent.Name, server)
			continue
		}
		if parent.SpanKind != trace.SpanKindServer || !parent.Parent.IsRemote() || parent.Parent.SpanID().String() != spanHex ||
			parent.SpanContext.TraceID().String() != traceHex {
			t.Errorf("%s: kind %v, parent %v; want a server span under the client's span %s", server, parent.SpanKind, parent.Parent, spanHex)
		}
	}
}
