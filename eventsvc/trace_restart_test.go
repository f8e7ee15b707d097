package eventsvc_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/angzarr-mesh/angzarr/eventsvc"
	"github.com/angzarr-mesh/angzarr/eventsvc/eventsvctest"
	"github.com/angzarr-mesh/angzarr/eventsvc/fanout"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/storetest"
	"github.com/angzarr-mesh/angzarr/internal/testredis"
	"github.com/angzarr-mesh/angzarr/internal/testutil"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

type nopProjector struct {
	pb.UnimplementedProjectorServer
}

func (nopProjector) Handle(context.Context, *pb.EventBook) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

// TestTraceContextSurvivesRestart: an event appended through the gRPC
// server in a client's trace (the W3C headers the filter forwards) is
// delivered, after that event service stopped, by the dispatcher of a new
// one on the same store (a SQLite file, a redis-server), and the
// deliveries are in the client's trace: saga.orchestrate and
// projector.handle are children of the first service's Append server
// span, keep the client's tracestate, and the coordinator call the saga's
// command makes carries the trace on.
func TestTraceContextSurvivesRestart(t *testing.T) {
	const (
		traceID    = "4bf92f3577b34da6a3ce929d0e0e4736"
		clientSpan = "00f067aa0ba902b7"
		tracestate = "vendor=opaque-1"
	)
	for _, be := range []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"sqlite", func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "e.db") }},
		{"redis", func(t *testing.T) string { return "redis://" + testredis.Start(t) + "/0" }},
	} {
		t.Run(be.name, func(t *testing.T) {
			url := be.url(t)

			// The first service stores the append; it has no subscriptions.
			before := tracetest.NewInMemoryExporter()
			tp1 := sdktrace.NewTracerProvider(sdktrace.WithSyncer(before))
			t.Cleanup(func() { _ = tp1.Shutdown(context.Background()) })
			addr, stop := eventsvctest.StartStoppable(t, eventsvc.Config{Store: url, TracerProvider: tp1})
			es := pb.NewEventStoreClient(eventsvctest.Dial(t, addr))
			ctx := metadata.AppendToOutgoingContext(tctx(t), "traceparent", "00-"+traceID+"-"+clientSpan+"-01", "tracestate", tracestate)
			root := uuid.New()
			if _, err := es.Append(ctx, &pb.AppendRequest{Cover: cover("order", root, "corr-r"), Pages: storetest.Pages(0, 1, "placed")}); err != nil {
				t.Fatal(err)
			}
			stop()
			var server sdktrace.ReadOnlySpan
			for _, s := range before.GetSpans().Snapshots() {
				if s.Name() == "angzarr.EventStore/Append" {
					server = s
				}
			}
			if server == nil || server.SpanContext().TraceID().String() != traceID || server.Parent().SpanID().String() != clientSpan {
				t.Fatalf("the first service's Append server span %v does not continue the client's trace", server)
			}

			// A new service on the same store delivers it.
			after := tracetest.NewInMemoryExporter()
			tp2 := sdktrace.NewTracerProvider(sdktrace.WithSyncer(after))
			t.Cleanup(func() { _ = tp2.Shutdown(context.Background()) })
			coord := &tracedCoordinator{}
			cfg := &pb.FanoutConfig{
				Version: "restart",
				Subscriptions: []*pb.Subscription{
					{
						Name: "ship", Kind: pb.SubscriberKind_SUBSCRIBER_KIND_SAGA, StartPosition: pb.StartPosition_START_POSITION_EARLIEST,
						Address:       serveGRPC(t, func(g *grpc.Server) { pb.RegisterSagaServer(g, shipSaga{}) }),
						SourceDomains: []string{"order"}, TargetDomains: []string{"shipping"},
					},
					{
						Name: "view", Kind: pb.SubscriberKind_SUBSCRIBER_KIND_PROJECTOR, StartPosition: pb.StartPosition_START_POSITION_EARLIEST,
						Address:       serveGRPC(t, func(g *grpc.Server) { pb.RegisterProjectorServer(g, nopProjector{}) }),
						SourceDomains: []string{"order"},
					},
				},
				Domains: []*pb.DomainEndpoint{{Domain: "shipping", Address: serveGRPC(t, func(g *grpc.Server) { pb.RegisterBusinessCoordinatorServer(g, coord) })}},
			}
			eventsvctest.StartConfig(t, eventsvc.Config{Store: url, TracerProvider: tp2, FanoutSource: fanout.StaticSource{Config: cfg}})

			byName := map[string][]sdktrace.ReadOnlySpan{}
			deadline := time.Now().Add(20 * time.Second)
			for len(byName["saga.orchestrate"]) == 0 || len(byName["projector.handle"]) == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("no saga.orchestrate and projector.handle spans; spans: %v", names(after.GetSpans()))
				}
				time.Sleep(10 * time.Millisecond) // poll interval
				clear(byName)
				for _, s := range after.GetSpans().Snapshots() {
					byName[s.Name()] = append(byName[s.Name()], s)
				}
			}
			for _, name := range []string{"saga.orchestrate", "projector.handle"} {
				if len(byName[name]) != 1 {
					t.Fatalf("%d %s spans, want 1", len(byName[name]), name)
				}
				s := byName[name][0]
				sc, parent := s.SpanContext(), s.Parent()
				if sc.TraceID().String() != traceID || parent.SpanID() != server.SpanContext().SpanID() || !parent.IsRemote() {
					t.Errorf("%s: trace %s parent %s (remote %v), want trace %s parent %s, the Append's server span",
						name, sc.TraceID(), parent.SpanID(), parent.IsRemote(), traceID, server.SpanContext().SpanID())
				}
				if got := sc.TraceState().String(); got != tracestate {
					t.Errorf("%s: tracestate %q, want %q", name, got, tracestate)
				}
				if a := attrs(s); a["domain"] != "order" || a["root"] != root.String() || a["correlation_id"] != "corr-r" {
					t.Errorf("%s attributes %v", name, a)
				}
			}
			testutil.Eventually(t, "the saga's command to reach the coordinator", func() bool {
				coord.mu.Lock()
				defer coord.mu.Unlock()
				return len(coord.traceparents) > 0
			})
			coord.mu.Lock()
			defer coord.mu.Unlock()
			if tp := coord.traceparents[0]; len(tp) != 55 || tp[3:35] != traceID {
				t.Errorf("the coordinator got traceparent %q, want one in trace %s", tp, traceID)
			}
		})
	}
}
