package eventsvc

import (
	"context"
	"net"
	"testing"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/angzarr-mesh/angzarr/internal/testutil"
)

// codeService answers test.Codes/Call with the status code its request
// names (wrapperspb.UInt32Value).
var codeService = grpc.ServiceDesc{
	ServiceName: "test.Codes",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{MethodName: "Call", Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
		req := &wrapperspb.UInt32Value{}
		if err := dec(req); err != nil {
			return nil, err
		}
		if c := codes.Code(req.GetValue()); c != codes.OK {
			return nil, status.Error(c, "as asked")
		}
		return req, nil
	}}},
}

// serveStats serves codeService and health on a gRPC server with the stats
// handler h and returns a connection to it.
func serveStats(t *testing.T, h interface{ serve(*grpc.Server) }, opt grpc.ServerOption) *grpc.ClientConn {
	t.Helper()
	g := grpc.NewServer(opt)
	g.RegisterService(&codeService, struct{}{})
	healthpb.RegisterHealthServer(g, health.NewServer())
	if h != nil {
		h.serve(g)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(lis) //nolint:errcheck // ends with Stop
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// durationPoints returns rpc.server.call.duration's scope and its points
// by attribute set (count and bucket bounds).
func durationPoints(t *testing.T, r *sdkmetric.ManualReader) (string, map[attribute.Distinct]metricdata.HistogramDataPoint[float64], metricdata.Metrics) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "rpc.server.call.duration" {
				continue
			}
			pts := map[attribute.Distinct]metricdata.HistogramDataPoint[float64]{}
			for _, p := range m.Data.(metricdata.Histogram[float64]).DataPoints {
				pts[p.Attributes.Equivalent()] = p
			}
			return sm.Scope.Name + " " + sm.Scope.Version + " " + sm.Scope.SchemaURL, pts, m
		}
	}
	t.Fatal("no rpc.server.call.duration")
	return "", nil, metricdata.Metrics{}
}

// recordedCalls is the number of calls rpc.server.call.duration holds (0
// before the first).
func recordedCalls(t *testing.T, r *sdkmetric.ManualReader) uint64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == "rpc.server.call.duration" {
				for _, p := range m.Data.(metricdata.Histogram[float64]).DataPoints {
					n += p.Count
				}
			}
		}
	}
	return n
}

// TestServerStatsAsOtelgrpc: the event service's stats handler records
// rpc.server.call.duration as otelgrpc does (instrument, scope, attributes
// by status code, buckets), leaves out health checks, makes no label from
// a method it does not serve, and otelgrpc still makes the spans.
func TestServerStatsAsOtelgrpc(t *testing.T) {
	refReader, ourReader := sdkmetric.NewManualReader(), sdkmetric.NewManualReader()
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	notHealth := filters.Not(filters.HealthCheck())
	ref := serveStats(t, nil, grpc.StatsHandler(otelgrpc.NewServerHandler(
		otelgrpc.WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(refReader))), otelgrpc.WithFilter(notHealth))))
	h, err := newServerStats(sdkmetric.NewMeterProvider(sdkmetric.WithReader(ourReader)), notHealth, otelgrpc.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	ours := serveStats(t, h, grpc.StatsHandler(h))

	ctx := context.Background()
	calls := []codes.Code{codes.OK, codes.OK, codes.NotFound, codes.FailedPrecondition, codes.Internal, codes.Unavailable, codes.Unknown, codes.Canceled}
	for _, conn := range []*grpc.ClientConn{ref, ours} {
		for _, c := range calls {
			err := conn.Invoke(ctx, "/test.Codes/Call", wrapperspb.UInt32(uint32(c)), &wrapperspb.UInt32Value{})
			if status.Code(err) != c {
				t.Fatalf("call for %v: %v", c, err)
			}
		}
		if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	// A server records a call's end after its answer is on the wire, so
	// the client can have it first: wait until both recorded every call.
	for _, r := range []*sdkmetric.ManualReader{refReader, ourReader} {
		testutil.Eventually(t, "every call's end recorded", func() bool { return recordedCalls(t, r) == uint64(len(calls)) })
	}
	refScope, refPts, refM := durationPoints(t, refReader)
	ourScope, ourPts, ourM := durationPoints(t, ourReader)
	if refScope != ourScope || refM.Description != ourM.Description || refM.Unit != ourM.Unit {
		t.Errorf("scope %q, %q %q, want otelgrpc's %q, %q %q", ourScope, ourM.Description, ourM.Unit, refScope, refM.Description, refM.Unit)
	}
	if len(ourPts) != len(refPts) || len(refPts) != len(calls)-1 {
		t.Errorf("%d attribute sets, otelgrpc %d, want %d", len(ourPts), len(refPts), len(calls)-1)
	}
	for k, want := range refPts {
		got, ok := ourPts[k]
		if !ok {
			t.Errorf("no point with otelgrpc's attributes %v", want.Attributes.ToSlice())
			continue
		}
		if got.Count != want.Count || len(got.Bounds) != len(want.Bounds) {
			t.Errorf("%v: count %d, %d buckets; otelgrpc %d, %d", want.Attributes.ToSlice(), got.Count, len(got.Bounds), want.Count, len(want.Bounds))
		}
		for i := range want.Bounds {
			if got.Bounds[i] != want.Bounds[i] {
				t.Errorf("bucket bounds %v, otelgrpc %v", got.Bounds, want.Bounds)
				break
			}
		}
	}
	testutil.Eventually(t, "every call's span ended", func() bool { return len(spans.Ended()) >= len(calls) })
	if n := len(spans.Ended()); n != len(calls) {
		t.Errorf("%d spans, want one per call but the health check (%d)", n, len(calls))
	}

	// A method the server does not serve ends before the stats handler
	// hears of its end (grpc.Server.handleStream): no point, and never the
	// caller's path as a label.
	if err := ours.Invoke(ctx, "/test.Codes/Nope-caller-made", wrapperspb.UInt32(0), &wrapperspb.UInt32Value{}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("unknown method: %v", err)
	}
	_, ourPts, _ = durationPoints(t, ourReader)
	for _, p := range ourPts {
		if v, _ := p.Attributes.Value("rpc.method"); v.AsString() == "test.Codes/Nope-caller-made" {
			t.Error("the caller's method path became a label")
		}
	}
}
