package eventsvc_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/angzarr-mesh/angzarr/eventsvc"
	"github.com/angzarr-mesh/angzarr/eventsvc/eventsvctest"
	"github.com/angzarr-mesh/angzarr/eventsvc/fanout"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/storetest"
	"github.com/angzarr-mesh/angzarr/internal/telemetry"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// shipSaga answers every event with one command for the shipping domain.
type shipSaga struct{ pb.UnimplementedSagaServer }

func (shipSaga) HandleSync(_ context.Context, book *pb.EventBook) (*pb.SagaResponse, error) {
	root := uuid.New()
	return &pb.SagaResponse{Commands: []*pb.CommandBook{{
		Cover: &pb.Cover{Domain: "shipping", Root: &pb.UUID{Value: root[:]}},
		Pages: []*pb.CommandPage{{Command: storetest.Event("ship")}},
	}}}, nil
}

// tracedCoordinator records the traceparent of the commands it receives.
type tracedCoordinator struct {
	pb.UnimplementedBusinessCoordinatorServer
	mu           sync.Mutex
	traceparents []string
	correlations []string
}

func (c *tracedCoordinator) Handle(ctx context.Context, cmd *pb.CommandBook) (*pb.CommandResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	c.mu.Lock()
	c.traceparents = append(c.traceparents, strings.Join(md.Get("traceparent"), ","))
	c.correlations = append(c.correlations, cmd.GetCover().GetCorrelationId())
	c.mu.Unlock()
	return &pb.CommandResponse{}, nil
}

func serveGRPC(t *testing.T, register func(*grpc.Server)) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	register(g)
	done := make(chan struct{})
	go func() { defer close(done); _ = g.Serve(lis) }()
	t.Cleanup(func() { g.Stop(); <-done })
	return lis.Addr().String()
}

func attrs(s sdktrace.ReadOnlySpan) map[string]string {
	m := map[string]string{}
	for _, kv := range s.Attributes() {
		m[string(kv.Key)] = kv.Value.String()
	}
	return m
}

// TestTelemetry sends an append in a client trace through the real gRPC
// server: the server span continues the client's trace, aggregate.persist
// and aggregate.load_events carry domain, root and correlation id, the
// saga delivery of the appended event joins the same trace
// (saga.orchestrate → orchestration.execute → the coordinator call, whose
// traceparent reaches the coordinator), and the storage and fan-out
// metrics are on the Prometheus endpoint with their labels.
func TestTelemetry(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	coord := &tracedCoordinator{}
	cfg := &pb.FanoutConfig{
		Version: "telemetry",
		Subscriptions: []*pb.Subscription{{
			Name: "ship", Kind: pb.SubscriberKind_SUBSCRIBER_KIND_SAGA, StartPosition: pb.StartPosition_START_POSITION_EARLIEST,
			Address:       serveGRPC(t, func(g *grpc.Server) { pb.RegisterSagaServer(g, shipSaga{}) }),
			SourceDomains: []string{"order"}, TargetDomains: []string{"shipping"},
		}},
		Domains: []*pb.DomainEndpoint{{Domain: "shipping", Address: serveGRPC(t, func(g *grpc.Server) { pb.RegisterBusinessCoordinatorServer(g, coord) })}},
	}
	ml, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := ml.Addr().String()
	ml.Close()
	addr := eventsvctest.StartConfig(t, eventsvc.Config{
		Store: "sqlite:" + filepath.Join(t.TempDir(), "e.db"), MetricsListen: metricsAddr, TracerProvider: tp,
		FanoutSource: fanout.StaticSource{Config: cfg},
	})
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(tp), otelgrpc.WithPropagators(telemetry.Propagator()))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	es := pb.NewEventStoreClient(conn)

	ctx, cmdSpan := tp.Tracer("test").Start(tctx(t), "client.command")
	root := uuid.New()
	if _, err := es.Append(ctx, &pb.AppendRequest{Cover: cover("order", root, "corr-7"), Pages: storetest.Pages(0, 1, "placed"), SnapshotState: storetest.Event("state")}); err != nil {
		t.Fatal(err)
	}
	if _, err := es.Append(ctx, &pb.AppendRequest{Cover: cover("order", root, "corr-7"), ExpectedSequence: 1, Pages: storetest.Pages(1, 1, "paid")}); err != nil {
		t.Fatal(err)
	}
	if _, err := es.Load(ctx, &pb.LoadRequest{Cover: cover("order", root, "corr-7")}); err != nil {
		t.Fatal(err)
	}
	cmdSpan.End()
	traceID := cmdSpan.SpanContext().TraceID()

	var orchestrate, execute sdktrace.ReadOnlySpan
	deadline := time.Now().Add(20 * time.Second)
	for orchestrate == nil || execute == nil {
		if time.Now().After(deadline) {
			t.Fatalf("no saga.orchestrate and orchestration.execute spans; spans: %v", names(spans.GetSpans()))
		}
		time.Sleep(10 * time.Millisecond) // poll interval
		for _, s := range spans.GetSpans().Snapshots() {
			switch s.Name() {
			case "saga.orchestrate":
				orchestrate = s
			case "orchestration.execute":
				execute = s
			}
		}
	}

	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans.GetSpans().Snapshots() {
		if _, seen := byName[s.Name()]; !seen && s.SpanKind() != trace.SpanKindClient {
			byName[s.Name()] = s // the first append's
		}
	}
	server, persist, load := byName["angzarr.EventStore/Append"], byName["aggregate.persist"], byName["aggregate.load_events"]
	if server == nil || persist == nil || load == nil {
		t.Fatalf("missing server or store spans: %v", names(spans.GetSpans()))
	}
	if server.SpanContext().TraceID() != traceID || server.SpanKind() != trace.SpanKindServer {
		t.Errorf("the Append server span does not continue the client's trace")
	}
	if persist.Parent().SpanID() != server.SpanContext().SpanID() {
		t.Errorf("aggregate.persist is not a child of the Append server span")
	}
	for _, s := range []sdktrace.ReadOnlySpan{persist, load, orchestrate} {
		a := attrs(s)
		if s.SpanContext().TraceID() != traceID || a["domain"] != "order" || a["root"] != root.String() || a["correlation_id"] != "corr-7" {
			t.Errorf("%s: trace %s attributes %v, want trace %s domain order root %s correlation_id corr-7", s.Name(), s.SpanContext().TraceID(), a, traceID, root)
		}
	}
	if execute.Parent().SpanID() != orchestrate.SpanContext().SpanID() {
		t.Errorf("orchestration.execute is not a child of saga.orchestrate")
	}
	// The gRPC spans around the command carry its correlation id too: the
	// server spans of Append and Load (from the request's cover) and the
	// dispatcher's calls to the saga and the coordinator (from the entry).
	tagged := map[string]bool{}
	for _, s := range spans.GetSpans().Snapshots() {
		k := s.Name() + "/" + s.SpanKind().String()
		switch k {
		case "angzarr.EventStore/Append/server", "angzarr.EventStore/Load/server", "angzarr.Saga/HandleSync/client", "angzarr.BusinessCoordinator/Handle/client":
		default:
			continue
		}
		if got := attrs(s)["correlation_id"]; got != "corr-7" {
			t.Errorf("%s span: correlation_id %q, want corr-7", k, got)
		}
		tagged[k] = true
	}
	if len(tagged) != 4 {
		t.Errorf("gRPC spans with the correlation id: %v, want Append and Load (server), Saga/HandleSync and BusinessCoordinator/Handle (client)", tagged)
	}
	if a := attrs(execute); a["domain"] != "shipping" || a["correlation_id"] != "corr-7" || a["saga"] != "ship" {
		t.Errorf("orchestration.execute attributes %v", a)
	}
	coord.mu.Lock()
	tps := append([]string(nil), coord.traceparents...)
	coord.mu.Unlock()
	if len(tps) == 0 || !strings.Contains(tps[0], traceID.String()) {
		t.Errorf("the coordinator got traceparents %q, want the trace %s", tps, traceID)
	}

	// The metrics, once the saga's checkpoint is committed.
	want := []string{
		`angzarr_storage_duration_seconds_count{backend="sqlite",operation="append",outcome="ok"} 2`,
		`angzarr_storage_duration_seconds_count{backend="sqlite",operation="load",outcome="ok"`,
		`angzarr_storage_duration_seconds_count{backend="sqlite",operation="fetch",outcome="ok"`,
		`angzarr_events_stored_total{domain="order"} 2`,
		`angzarr_events_loaded_total{domain="order"} 1`,
		`angzarr_snapshots_stored_total{domain="order"} 1`,
		`angzarr_positions_updated_total{domain="order",outcome="ok",subscriber="ship"`,
		`angzarr_saga_duration_seconds_count{domain="order",outcome="ok",subscriber="ship"`,
		`angzarr_bus_publish_duration_seconds_count{domain="order",kind="saga",subscriber="ship"`,
		`rpc_server_call_duration_seconds_count{`,
	}
	var body string
	for {
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = scopeLabels.ReplaceAllString(string(b), "")
		body = strings.ReplaceAll(body, ",}", "}")
		missing := ""
		for _, w := range want {
			if !strings.Contains(body, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics lack %s:\n%s", missing, body)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
}

// scopeLabels are the instrumentation scope labels of every series.
var scopeLabels = regexp.MustCompile(`otel_scope_[a-z_]+="[^"]*",?`)

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}
