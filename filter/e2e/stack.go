//go:build !wasip1

package e2e

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/angzarr-mesh/angzarr/eventsvc"
	"github.com/angzarr-mesh/angzarr/eventsvc/eventsvctest"
	"github.com/angzarr-mesh/angzarr/filter/config"
	"github.com/angzarr-mesh/angzarr/filter/internal/counter"
	"github.com/angzarr-mesh/angzarr/internal/testredis"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/wasmhost"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Options shape a Stack.
type Options struct {
	// Lane is the proxy: wasmhost (the default) or a real Envoy
	// (LaneEnvoy, with ENVOY_BIN; see EachLane). The Envoy lane takes the
	// plugin configuration and clusters from the control plane, so it
	// honours only Filter, Logic, Logs and TracerProvider.
	Lane Lane
	// Profile is the wasmhost WASI profile.
	Profile wasmhost.WASIProfile
	// Filter is the path of the built .wasm.
	Filter string
	// Filter configuration; Domains defaults to the counter's.
	Config config.Config
	// VMs in the wasmhost pool (default 2).
	VMs int
	// Logs, when set, receives wasmhost and plugin logs (default: warnings
	// to t.Log).
	Logs io.Writer
	// TracerProvider, when set, is the event service's.
	TracerProvider trace.TracerProvider
	// ProxyTracerProvider, when set, is the proxy's (wasmhost's request
	// and callout spans). Default none: no proxy spans, the trace context
	// passes through the filter as in an Envoy without tracing.
	ProxyTracerProvider trace.TracerProvider
	// Clusters are more callout clusters of the proxy (NAME -> HOST:PORT),
	// beside angzarr-eventsvc and angzarr-logic.
	Clusters map[string]string
	// Logic is the counter business logic (default: a plain one).
	Logic *counter.Service
	// Siblings are more plugins on the proxy's VMs (wasmhost's
	// Plugin.Siblings), each served on a listener of its own
	// (Stack.PluginProxy). Default none.
	Siblings []wasmhost.Plugin
	// BufferLimitBytes is the proxy's listener buffer limit (default
	// Envoy's 1 MiB; the control plane sets controlplane.BufferLimitBytes).
	BufferLimitBytes int
}

// Stack is one running deployment: redis, event service, counter logic and
// the proxy with the filter.
type Stack struct {
	t        testing.TB
	Redis    string
	EventSvc string
	Logic    string
	Proxy    string
	// PluginProxy is the address serving each sibling plugin.
	PluginProxy map[string]string
	// Host is the wasmhost proxy (nil in the Envoy lane).
	Host      *wasmhost.Host
	esCfg     eventsvc.Config
	esMu      sync.Mutex
	esStop    context.CancelFunc
	esDone    chan error
	conn      *grpc.ClientConn
	storeConn *grpc.ClientConn
}

// Start brings a stack up; everything stops at t.Cleanup.
func Start(t testing.TB, o Options) *Stack {
	t.Helper()
	s := &Stack{t: t}
	logs := o.Logs
	if logs == nil {
		logs = testWriter{t}
	}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))

	s.Redis = testredis.Start(t)
	s.esCfg = eventsvc.Config{Store: "redis://" + s.Redis + "/0", Logger: logger, TracerProvider: o.TracerProvider}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.EventSvc = lis.Addr().String()
	s.serveEventSvc(lis)
	t.Cleanup(s.StopEventService)

	llis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Logic = llis.Addr().String()
	lctx, lcancel := context.WithCancel(context.Background())
	ldone := make(chan error, 1)
	logic := o.Logic
	if logic == nil {
		logic = &counter.Service{}
	}
	go func() { ldone <- counter.Serve(lctx, llis, logic) }()
	t.Cleanup(func() {
		lcancel()
		<-ldone
	})

	if o.Lane == LaneEnvoy {
		s.Proxy = s.startEnvoy(t, o, envoyBinary(t), logger)
		s.PluginProxy = map[string]string{}
		s.conn = dial(t, s.Proxy)
		s.storeConn = dial(t, s.EventSvc)
		return s
	}
	s.startWasmhost(t, o, logger)
	s.conn = dial(t, s.Proxy)
	s.storeConn = dial(t, s.EventSvc)
	return s
}

// startWasmhost runs the wasmhost lane's proxy: wasmhost with the filter
// in this process, configured directly.
func (s *Stack) startWasmhost(t testing.TB, o Options, logger *slog.Logger) {
	t.Helper()
	cfg := o.Config
	if len(cfg.Domains) == 0 {
		cfg.Domains = []string{counter.Domain}
	}
	// The clusters keep the names the configuration gives them (Istio's
	// names in TestIstioClusterNames), else the standalone ones.
	cfg.EventServiceCluster = cmp.Or(cfg.EventServiceCluster, "angzarr-eventsvc")
	cfg.BusinessLogicCluster = cmp.Or(cfg.BusinessLogicCluster, "angzarr-logic")
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	vms := o.VMs
	if vms == 0 {
		vms = 2
	}
	clusters := map[string]string{cfg.EventServiceCluster: s.EventSvc, cfg.BusinessLogicCluster: s.Logic}
	// o.Clusters adds clusters or replaces these (an ORIGINAL_DST one).
	maps.Copy(clusters, o.Clusters)
	ptp := o.ProxyTracerProvider
	if ptp == nil {
		ptp = noop.NewTracerProvider()
	}
	h, err := wasmhost.New(context.Background(), wasmhost.Config{
		FilterPath:       o.Filter,
		Plugin:           wasmhost.Plugin{Configuration: raw, Siblings: o.Siblings},
		Upstream:         s.Logic,
		Clusters:         clusters,
		WASIProfile:      o.Profile,
		VMs:              vms,
		Logger:           logger,
		TracerProvider:   ptp,
		BufferLimitBytes: o.BufferLimitBytes,
	})
	if err != nil {
		t.Fatalf("wasmhost: %v", err)
	}
	s.Host = h
	plis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Proxy = plis.Addr().String()
	pctx, pcancel := context.WithCancel(context.Background())
	pdone := make(chan error, 1)
	go func() { pdone <- h.Serve(pctx, plis) }()
	t.Cleanup(func() {
		pcancel()
		<-pdone
		h.Close()
	})

	s.PluginProxy = map[string]string{}
	for _, sib := range o.Siblings {
		slis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s.PluginProxy[sib.Name] = slis.Addr().String()
		sctx, scancel := context.WithCancel(context.Background())
		sdone := make(chan error, 1)
		go func() { sdone <- h.ServePlugin(sctx, slis, sib.Name) }()
		t.Cleanup(func() {
			scancel()
			<-sdone
		})
	}
}

func dial(t testing.TB, addr string) *grpc.ClientConn {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// serveEventSvc serves the event service on lis (in this process).
func (s *Stack) serveEventSvc(lis net.Listener) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eventsvc.Serve(ctx, lis, s.esCfg) }()
	if err := eventsvctest.WaitReady(s.EventSvc, 30*time.Second, done); err != nil {
		cancel()
		s.t.Fatal(err)
	}
	s.esMu.Lock()
	s.esStop, s.esDone = cancel, done
	s.esMu.Unlock()
}

// StopEventService stops the event service (its address stays reserved for
// RestartEventService).
func (s *Stack) StopEventService() {
	s.esMu.Lock()
	stop, done := s.esStop, s.esDone
	s.esStop, s.esDone = nil, nil
	s.esMu.Unlock()
	if stop == nil {
		return
	}
	stop()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		s.t.Logf("eventsvc: %v", err)
	}
}

// RestartEventService serves the event service again on the same address.
func (s *Stack) RestartEventService() {
	s.t.Helper()
	var lis net.Listener
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for {
		lis, err = net.Listen("tcp", s.EventSvc)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // the port is released asynchronously
	}
	if err != nil {
		s.t.Fatal(err)
	}
	s.serveEventSvc(lis)
}

// Coordinator is the client of the aggregate, through the proxy.
func (s *Stack) Coordinator() pb.BusinessCoordinatorClient {
	return pb.NewBusinessCoordinatorClient(s.conn)
}

// Logic is a client straight to the proxy's BusinessLogic path (which the
// filter must refuse).
func (s *Stack) LogicThroughProxy() pb.BusinessLogicClient { return pb.NewBusinessLogicClient(s.conn) }

// Query reads stored events from the event service.
func (s *Stack) Query() pb.EventQueryClient { return pb.NewEventQueryClient(s.storeConn) }

// Events returns the stored books of an aggregate.
func (s *Stack) Events(ctx context.Context, domain string, root []byte) ([]*pb.EventBook, error) {
	return s.query(ctx, &pb.Query{Cover: &pb.Cover{Domain: domain, Root: &pb.UUID{Value: root}}})
}

// ByCorrelation returns the stored books of a workflow.
func (s *Stack) ByCorrelation(ctx context.Context, id string) ([]*pb.EventBook, error) {
	return s.query(ctx, &pb.Query{Cover: &pb.Cover{CorrelationId: id}})
}

func (s *Stack) query(ctx context.Context, q *pb.Query) ([]*pb.EventBook, error) {
	stream, err := s.Query().GetEvents(ctx, q)
	if err != nil {
		return nil, err
	}
	var out []*pb.EventBook
	for {
		b, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Metrics scrapes the proxy's /stats/prometheus into name → value (label-
// less series only; histograms give _count and _sum).
func (s *Stack) Metrics(t testing.TB) map[string]float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	s.Host.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/stats/prometheus", nil))
	if rec.Code != 200 {
		t.Fatalf("/stats/prometheus: %d %s", rec.Code, rec.Body)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		line = strings.Replace(line, "{} ", " ", 1)
		if strings.Contains(line, "{") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err == nil {
			out[f[0]] = v
		}
	}
	return out
}
