package fanout_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/angzarr-mesh/angzarr/eventsvc/fanout"
	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/storetest"
	"github.com/angzarr-mesh/angzarr/internal/testutil"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// shippingPM answers every event with one PM event and one command for
// the shipping domain.
type shippingPM struct {
	pb.UnimplementedProcessManagerServer
}

func (shippingPM) Handle(context.Context, *pb.ProcessManagerRequest) (*pb.ProcessManagerResponse, error) {
	root := uuid.New()
	return &pb.ProcessManagerResponse{
		Events:   []*anypb.Any{storetest.Event("noted")},
		Commands: []*pb.CommandBook{{Cover: &pb.Cover{Domain: "shipping", Root: &pb.UUID{Value: root[:]}}, Pages: []*pb.CommandPage{{Command: storetest.Event("go")}}}},
	}, nil
}

// TestProcessManagerTelemetry: a process manager's delivery continues the
// append's trace in pm.orchestrate (domain, root, correlation id), loads
// the workflow in orchestration.fetch (the PM's domain and the root
// derived from the correlation id) and sends its command in
// orchestration.execute, both children of pm.orchestrate; the step is
// measured in angzarr.pm.duration, the command counted, the delivery in
// the bus metric with kind process_manager.
func TestProcessManagerTelemetry(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })

	domain := storetest.Domain(t)
	cfg := &pb.FanoutConfig{
		Subscriptions: []*pb.Subscription{{
			Name: "shipper", Kind: pb.SubscriberKind_SUBSCRIBER_KIND_PROCESS_MANAGER, StartPosition: pb.StartPosition_START_POSITION_EARLIEST,
			Address:       serve(t, func(g *grpc.Server) { pb.RegisterProcessManagerServer(g, shippingPM{}) }),
			SourceDomains: []string{domain}, TargetDomains: []string{"shipping"}, Domain: "shipper-flows",
		}},
		Domains: []*pb.DomainEndpoint{
			{Domain: "shipping", Address: serve(t, func(g *grpc.Server) { pb.RegisterBusinessCoordinatorServer(g, okCoordinator{}) })},
		},
	}
	r := runDispatcher(t, backends()[0].open(t, backends()[0].url(t)), cfg, fanout.Options{TracerProvider: tp, MeterProvider: mp})

	tctx, cmd := tp.Tracer("test").Start(ctx, "command")
	root := uuid.New()
	if _, err := r.st.Append(tctx, &store.AppendRequest{Aggregate: store.Aggregate{Domain: domain, Root: root}, CorrelationID: "corr-pm", Pages: storetest.Pages(0, 1, "e"), Trace: store.TraceOf(tctx)}); err != nil {
		t.Fatal(err)
	}
	cmd.End()
	testutil.Eventually(t, "shipper to catch up", func() bool { return r.caughtUp(t, "shipper") })

	byName := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range spans.GetSpans().Snapshots() {
		byName[s.Name()] = append(byName[s.Name()], s)
	}
	orch, fetch, exec := byName["pm.orchestrate"], byName["orchestration.fetch"], byName["orchestration.execute"]
	if len(orch) != 1 || len(fetch) != 1 || len(exec) != 1 {
		t.Fatalf("spans: %d pm.orchestrate, %d orchestration.fetch, %d orchestration.execute; want 1 each", len(orch), len(fetch), len(exec))
	}
	o := orch[0]
	if o.SpanContext().TraceID() != cmd.SpanContext().TraceID() || o.Parent().SpanID() != cmd.SpanContext().SpanID() {
		t.Error("pm.orchestrate does not continue the append's trace")
	}
	if a := attrs(o); a["domain"] != domain || a["root"] != root.String() || a["correlation_id"] != "corr-pm" || a["subscriber"] != "shipper" {
		t.Errorf("pm.orchestrate attributes %v", a)
	}
	for _, s := range []sdktrace.ReadOnlySpan{fetch[0], exec[0]} {
		if s.Parent().SpanID() != o.SpanContext().SpanID() {
			t.Errorf("%s is not a child of pm.orchestrate", s.Name())
		}
	}
	if a := attrs(fetch[0]); a["domain"] != "shipper-flows" || a["root"] != fanout.ProcessManagerRoot("corr-pm").String() || a["correlation_id"] != "corr-pm" {
		t.Errorf("orchestration.fetch attributes %v", a)
	}
	if a := attrs(exec[0]); a["domain"] != "shipping" || a["correlation_id"] != "corr-pm" || a["saga"] != "shipper" {
		t.Errorf("orchestration.execute attributes %v", a)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
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
		"angzarr.pm.duration{domain=" + domain + ",outcome=ok,subscriber=shipper}":                    1,
		"angzarr.fanout.saga_commands{outcome=ok,subscriber=shipper}":                                 1,
		"angzarr.bus.publish.duration{domain=" + domain + ",kind=process_manager,subscriber=shipper}": 1,
	} {
		if got[k] != want {
			t.Errorf("%s = %d, want %d", k, got[k], want)
		}
	}
}
