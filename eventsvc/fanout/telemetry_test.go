package fanout_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/angzarr-mesh/angzarr/eventsvc/fanout"
	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/storetest"
	"github.com/angzarr-mesh/angzarr/internal/testutil"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// flakySaga fails its first call with UNAVAILABLE, then answers every
// event with one command for target.
type flakySaga struct {
	pb.UnimplementedSagaServer
	target string
	mu     sync.Mutex
	calls  int
}

func (s *flakySaga) HandleSync(context.Context, *pb.EventBook) (*pb.SagaResponse, error) {
	s.mu.Lock()
	s.calls++
	first := s.calls == 1
	s.mu.Unlock()
	if first {
		return nil, status.Error(codes.Unavailable, "warming up")
	}
	root := uuid.New()
	return &pb.SagaResponse{Commands: []*pb.CommandBook{{Cover: &pb.Cover{Domain: s.target, Root: &pb.UUID{Value: root[:]}}, Pages: []*pb.CommandPage{{Command: storetest.Event("go")}}}}}, nil
}

// refusingCoordinator refuses every command (FAILED_PRECONDITION).
type refusingCoordinator struct {
	pb.UnimplementedBusinessCoordinatorServer
}

func (refusingCoordinator) Handle(context.Context, *pb.CommandBook) (*pb.CommandResponse, error) {
	return nil, status.Error(codes.FailedPrecondition, "not today")
}

// okCoordinator accepts every command.
type okCoordinator struct {
	pb.UnimplementedBusinessCoordinatorServer
}

func (okCoordinator) Handle(context.Context, *pb.CommandBook) (*pb.CommandResponse, error) {
	return &pb.CommandResponse{}, nil
}

type nopProjector struct {
	pb.UnimplementedProjectorServer
}

func (nopProjector) Handle(context.Context, *pb.EventBook) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

// TestDeliveryTelemetry: a saga delivery of an event appended in a trace
// (the trace context stored with the append, as the event service's Append
// handler stores its call's) continues that trace (saga.orchestrate, a
// saga.retry after the first
// failure, orchestration.execute with the correlation id), a projector
// delivery runs in projector.handle, a refused saga command counts a
// compensation, and the saga, projector and bus metrics are recorded.
func TestDeliveryTelemetry(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })

	domain := storetest.Domain(t)
	saga := func(name, target string, targets ...string) *pb.Subscription {
		return &pb.Subscription{Name: name, Kind: pb.SubscriberKind_SUBSCRIBER_KIND_SAGA, StartPosition: pb.StartPosition_START_POSITION_EARLIEST,
			Address:       serve(t, func(g *grpc.Server) { pb.RegisterSagaServer(g, &flakySaga{target: target}) }),
			SourceDomains: []string{domain}, TargetDomains: targets}
	}
	cfg := &pb.FanoutConfig{
		Subscriptions: []*pb.Subscription{
			saga("ship", "shipping", "shipping"),
			saga("rogue", "elsewhere", "shipping"),
			saga("stingy", "refusing", "refusing"),
			projectorSub("view", serve(t, func(g *grpc.Server) { pb.RegisterProjectorServer(g, nopProjector{}) }), pb.StartPosition_START_POSITION_EARLIEST, domain),
		},
		Domains: []*pb.DomainEndpoint{
			{Domain: "shipping", Address: serve(t, func(g *grpc.Server) { pb.RegisterBusinessCoordinatorServer(g, okCoordinator{}) })},
			{Domain: "refusing", Address: serve(t, func(g *grpc.Server) { pb.RegisterBusinessCoordinatorServer(g, refusingCoordinator{}) })},
		},
	}
	r := runDispatcher(t, backends()[0].open(t, backends()[0].url(t)), cfg, fanout.Options{TracerProvider: tp, MeterProvider: mp, MaxAttempts: 2})

	tctx, cmd := tp.Tracer("test").Start(ctx, "command")
	root := uuid.New()
	if _, err := r.st.Append(tctx, &store.AppendRequest{Aggregate: store.Aggregate{Domain: domain, Root: root}, CorrelationID: "corr-9", Pages: storetest.Pages(0, 1, "e"), Trace: store.TraceOf(tctx)}); err != nil {
		t.Fatal(err)
	}
	cmd.End()
	for _, name := range []string{"ship", "rogue", "stingy", "view"} {
		testutil.Eventually(t, name+" to catch up", func() bool { return r.caughtUp(t, name) })
	}

	var orchestrates, retries, executes, projections []sdktrace.ReadOnlySpan
	for _, s := range spans.GetSpans().Snapshots() {
		switch s.Name() {
		case "saga.orchestrate":
			orchestrates = append(orchestrates, s)
		case "saga.retry":
			retries = append(retries, s)
		case "orchestration.execute":
			executes = append(executes, s)
		case "projector.handle":
			projections = append(projections, s)
		}
	}
	// stingy: its command (refused) and the compensation sent to the
	// source domain, which has no coordinator: tried MaxAttempts (2) times.
	if len(orchestrates) != 3 || len(executes) != 4 || len(projections) != 1 || len(retries) != 3 {
		t.Fatalf("spans: %d saga.orchestrate, %d saga.retry, %d orchestration.execute, %d projector.handle; want 3, 3, 4, 1", len(orchestrates), len(retries), len(executes), len(projections))
	}
	traceID := cmd.SpanContext().TraceID()
	var ship sdktrace.ReadOnlySpan
	for _, s := range append(orchestrates, projections...) {
		a := attrs(s)
		if s.SpanContext().TraceID() != traceID || s.Parent().SpanID() != cmd.SpanContext().SpanID() {
			t.Errorf("%s of %s does not continue the append's trace", s.Name(), a["subscriber"])
		}
		if a["domain"] != domain || a["root"] != root.String() || a["correlation_id"] != "corr-9" {
			t.Errorf("%s attributes %v", s.Name(), a)
		}
		if a["subscriber"] == "ship" {
			ship = s
		}
	}
	if ship == nil {
		t.Fatal("no saga.orchestrate for ship")
	}
	var ex sdktrace.ReadOnlySpan
	for _, e := range executes {
		if attrs(e)["saga"] == "ship" {
			ex = e
		}
	}
	if ex.Parent().SpanID() == ship.SpanContext().SpanID() {
		t.Errorf("orchestration.execute runs in saga.orchestrate, want in the saga.retry that succeeded")
	}
	var parentRetry bool
	for _, rs := range retries {
		if rs.Parent().SpanID() != ship.SpanContext().SpanID() && attrs(rs)["subscriber"] == "ship" {
			t.Errorf("ship's saga.retry is not a child of its saga.orchestrate")
		}
		parentRetry = parentRetry || ex.Parent().SpanID() == rs.SpanContext().SpanID()
	}
	if !parentRetry {
		t.Errorf("orchestration.execute is not a child of a saga.retry")
	}
	if a := attrs(ex); a["domain"] != "shipping" || a["correlation_id"] != "corr-9" || a["saga"] != "ship" {
		t.Errorf("orchestration.execute attributes %v", a)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{} // name{attrs} -> sum or count
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					got[m.Name+"{"+p.Attributes.Encoded(attribute.DefaultEncoder())+"}"] += p.Value
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					got[m.Name+"{"+p.Attributes.Encoded(attribute.DefaultEncoder())+"}"] += int64(p.Count)
				}
			}
		}
	}
	for k, want := range map[string]int64{
		"angzarr.saga.duration{domain=" + domain + ",outcome=ok,subscriber=ship}":                                      1,
		"angzarr.saga.duration{domain=" + domain + ",outcome=failed,subscriber=rogue}":                                 1,
		"angzarr.saga.retry.total{domain=" + domain + ",subscriber=ship}":                                              1,
		"angzarr.saga.retry.total{domain=" + domain + ",subscriber=rogue}":                                             1,
		"angzarr.saga.compensation.total{domain=" + domain + ",fallback=true,outcome=recorded,subscriber=stingy}":      1,
		"angzarr.saga.compensation.total{domain=" + domain + ",fallback=true,outcome=dead_lettered,subscriber=stingy}": 1,
		"angzarr.fanout.saga_commands{outcome=refused,subscriber=stingy}":                                              1,
		"angzarr.fanout.saga_commands{outcome=ok,subscriber=ship}":                                                     1,
		"angzarr.projector.duration{domain=" + domain + ",outcome=ok,subscriber=view}":                                 1,
		"angzarr.bus.publish.duration{domain=" + domain + ",kind=saga,subscriber=ship}":                                1,
		"angzarr.bus.publish.duration{domain=" + domain + ",kind=projector,subscriber=view}":                           1,
	} {
		if got[k] != want {
			t.Errorf("%s = %d, want %d", k, got[k], want)
		}
	}
}

func attrs(s sdktrace.ReadOnlySpan) map[string]string {
	m := map[string]string{}
	for _, kv := range s.Attributes() {
		m[string(kv.Key)] = kv.Value.String()
	}
	return m
}

// TestDeliveryWithoutTraceContext: an entry stored without a trace
// context, or with one that does not parse, is delivered like any other,
// its projector.handle span the root of a trace of its own.
func TestDeliveryWithoutTraceContext(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		spans := tracetest.NewInMemoryExporter()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
		t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		domain := storetest.Domain(t)
		rec := newRecorder()
		cfg := &pb.FanoutConfig{Subscriptions: []*pb.Subscription{
			projectorSub("view", serve(t, func(g *grpc.Server) { pb.RegisterProjectorServer(g, rec) }), pb.StartPosition_START_POSITION_EARLIEST, domain),
		}}
		r := runDispatcher(t, b.open(t, b.url(t)), cfg, fanout.Options{TracerProvider: tp})
		traces := []store.TraceContext{{}, {Traceparent: "00-not-a-traceparent-01", Tracestate: "k=v"}, {Traceparent: "00-00000000000000000000000000000000-00f067aa0ba902b7-01"}}
		for _, tc := range traces {
			if _, err := r.st.Append(context.Background(), &store.AppendRequest{Aggregate: store.Aggregate{Domain: domain, Root: uuid.New()}, Pages: storetest.Pages(0, 1, "e"), Trace: tc}); err != nil {
				t.Fatal(err)
			}
		}
		testutil.Eventually(t, "view to catch up", func() bool { return r.caughtUp(t, "view") })
		if rec.count() != len(traces) {
			t.Fatalf("delivered %d events, want %d", rec.count(), len(traces))
		}
		seen := map[string]bool{}
		for _, s := range spans.GetSpans().Snapshots() {
			if s.Name() != "projector.handle" {
				continue
			}
			if s.Parent().IsValid() || seen[s.SpanContext().TraceID().String()] {
				t.Errorf("projector.handle with parent %v in trace %s, want the root of a new trace", s.Parent(), s.SpanContext().TraceID())
			}
			seen[s.SpanContext().TraceID().String()] = true
		}
		if len(seen) != len(traces) {
			t.Fatalf("%d projector.handle spans, want %d", len(seen), len(traces))
		}
	})
}
