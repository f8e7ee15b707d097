package wasmhost_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	grpccodes "google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/angzarr-mesh/angzarr/wasmhost"
)

const (
	clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientSpan  = "00f067aa0ba902b7"
	clientTP    = "00-" + clientTrace + "-" + clientSpan + "-01"
	clientTS    = "vendor=x"
)

// traceRecorder is a TestService recording the W3C headers of every call.
type traceRecorder struct {
	testService
	mu   sync.Mutex
	seen map[string][]string // method -> "traceparent|tracestate"
}

func (r *traceRecorder) record(ctx context.Context, method string) {
	md, _ := metadata.FromIncomingContext(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen[method] = append(r.seen[method], strings.Join(md.Get("traceparent"), ",")+"|"+strings.Join(md.Get("tracestate"), ","))
}

func (r *traceRecorder) get(method string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen[method]...)
}

func (r *traceRecorder) EmptyCall(ctx context.Context, in *testgrpc.Empty) (*testgrpc.Empty, error) {
	r.record(ctx, "EmptyCall")
	return r.testService.EmptyCall(ctx, in)
}

func (r *traceRecorder) UnaryCall(ctx context.Context, in *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	r.record(ctx, "UnaryCall")
	return r.testService.UnaryCall(ctx, in)
}

// startRecorder serves a traceRecorder on 127.0.0.1:0.
func startRecorder(t *testing.T) (*traceRecorder, string) {
	t.Helper()
	rec := &traceRecorder{seen: map[string][]string{}}
	gs := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(gs, rec)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = gs.Serve(ln) }()
	t.Cleanup(func() { gs.Stop(); <-done })
	return rec, ln.Addr().String()
}

// inMemoryTracing is a tracer provider exporting synchronously into an
// in-memory exporter.
func inMemoryTracing(t *testing.T) (*tracetest.InMemoryExporter, *sdktrace.TracerProvider) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return exp, tp
}

// waitSpans polls until n spans were exported (a request's span ends after
// its response went out) and returns them by "name(kind)".
func waitSpans(t *testing.T, exp *tracetest.InMemoryExporter, n int) map[string]tracetest.SpanStub {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		spans := exp.GetSpans()
		if len(spans) >= n {
			if len(spans) > n {
				t.Fatalf("%d spans, want %d: %v", len(spans), n, names(spans))
			}
			out := map[string]tracetest.SpanStub{}
			for _, s := range spans {
				k := s.Name + "(" + s.SpanKind.String() + ")"
				if _, dup := out[k]; dup {
					t.Fatalf("two spans %s: %v", k, names(spans))
				}
				out[k] = s
			}
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d spans, want %d: %v", len(spans), n, names(spans))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name+"("+s.SpanKind.String()+")")
	}
	return out
}

func attrs(s tracetest.SpanStub) map[string]string {
	m := map[string]string{}
	for _, kv := range s.Attributes {
		m[string(kv.Key)] = kv.Value.String()
	}
	return m
}

func traceparentOf(sc trace.SpanContext) string {
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + sc.TraceFlags().String()
}

// wantAttrs checks that a span has the attributes want ("" = must be
// absent).
func wantAttrs(t *testing.T, s tracetest.SpanStub, want map[string]string) {
	t.Helper()
	got := attrs(s)
	for k, v := range want {
		if g, ok := got[k]; (v == "" && ok) || (v != "" && g != v) {
			t.Errorf("%s: attribute %s = %q, want %q (all: %v)", s.Name, k, g, v, got)
		}
	}
}

// TestTracingGRPC sends a gRPC request in a client trace through a plugin
// that makes a gRPC callout forwarding the trace headers it sees (as the
// angzarr filter does) and sets the angzarr.* properties: the plugin sees
// the request span's context, the callout and the upstream request are
// client spans under it, and every span carries the properties.
func TestTracingGRPC(t *testing.T) {
	for _, kase := range []string{"trace", "trace-nomd"} {
		t.Run(kase, func(t *testing.T) {
			exp, tp := inMemoryTracing(t)
			rec, addr := startRecorder(t)
			e := newEnv(t, func(c *wasmhost.Config) {
				c.TracerProvider = tp
				c.Upstream = addr
				c.Clusters["echo"] = addr
			})
			ctx := metadata.AppendToOutgoingContext(testCtx(t), "x-case", kase, "traceparent", clientTP, "tracestate", clientTS,
				"x-domain", "counter", "x-root", "r-1", "x-correlation_id", "c-1", "x-outcome", "ok")
			if _, err := grpcClient(t, e.proxy.Addr).UnaryCall(ctx, &testgrpc.SimpleRequest{}); err != nil {
				t.Fatal(err)
			}
			spans := waitSpans(t, exp, 3)
			req, ok1 := spans["grpc.testing.TestService/UnaryCall(server)"]
			up, ok2 := spans["grpc.testing.TestService/UnaryCall(client)"]
			call, ok3 := spans["grpc.testing.TestService/EmptyCall(client)"]
			if !ok1 || !ok2 || !ok3 {
				t.Fatalf("spans %v", names(exp.GetSpans()))
			}
			if req.SpanContext.TraceID().String() != clientTrace || req.Parent.SpanID().String() != clientSpan || !req.Parent.IsRemote() {
				t.Fatalf("request span %v under %v, want the client's span %s", req.SpanContext, req.Parent, clientSpan)
			}
			reqTP := traceparentOf(req.SpanContext)
			e.logs.waitFact(t, "traceparent="+reqTP+" tracestate="+clientTS)
			for _, s := range []tracetest.SpanStub{up, call} {
				if s.SpanKind != trace.SpanKindClient || s.Parent.SpanID() != req.SpanContext.SpanID() || s.SpanContext.TraceID() != req.SpanContext.TraceID() {
					t.Errorf("%s: kind %v parent %v, want a client span under the request span %v", s.Name, s.SpanKind, s.Parent.SpanID(), req.SpanContext.SpanID())
				}
				wantAttrs(t, s, map[string]string{"domain": "counter", "root": "r-1", "correlation_id": "c-1", "outcome": "",
					"rpc.system.name": "grpc", "rpc.response.status_code": "OK"})
			}
			wantAttrs(t, req, map[string]string{"domain": "counter", "root": "r-1", "correlation_id": "c-1", "outcome": "ok",
				"rpc.system.name": "grpc", "rpc.method": "grpc.testing.TestService/UnaryCall", "rpc.response.status_code": "OK"})
			wantAttrs(t, up, map[string]string{"rpc.method": "grpc.testing.TestService/UnaryCall"})
			wantAttrs(t, call, map[string]string{"rpc.method": "grpc.testing.TestService/EmptyCall"})
			for _, s := range []tracetest.SpanStub{req, up, call} {
				if s.Status.Code != codes.Unset {
					t.Errorf("%s: status %v", s.Name, s.Status)
				}
			}
			// The called services got the client spans' contexts.
			if got := rec.get("UnaryCall"); len(got) != 1 || got[0] != traceparentOf(up.SpanContext)+"|"+clientTS {
				t.Errorf("upstream saw %v, want %s|%s", got, traceparentOf(up.SpanContext), clientTS)
			}
			// Without the plugin's metadata the span still descends from the
			// request span, whose tracestate is the client's.
			if got := rec.get("EmptyCall"); len(got) != 1 || got[0] != traceparentOf(call.SpanContext)+"|"+clientTS {
				t.Errorf("callout target saw %v, want %s|%s", got, traceparentOf(call.SpanContext), clientTS)
			}
		})
	}
}

// TestTracingErrorStatus: a gRPC error answered by the upstream makes the
// request and upstream spans errors, with the status code and outcome.
func TestTracingErrorStatus(t *testing.T) {
	exp, tp := inMemoryTracing(t)
	e := newEnv(t, func(c *wasmhost.Config) { c.TracerProvider = tp })
	ctx := metadata.AppendToOutgoingContext(testCtx(t), "x-domain", "counter", "x-outcome", "rejected")
	_, err := grpcClient(t, e.proxy.Addr).UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseStatus: &testgrpc.EchoStatus{Code: 9, Message: "below zero"}})
	if status.Code(err) != grpccodes.FailedPrecondition {
		t.Fatalf("err %v", err)
	}
	waitSpans(t, exp, 2)
	for _, s := range exp.GetSpans() {
		if s.Status.Code != codes.Error || s.Status.Description != "below zero" {
			t.Errorf("%s (%v): status %v, want error below zero", s.Name, s.SpanKind, s.Status)
		}
		want := map[string]string{"rpc.response.status_code": "FAILED_PRECONDITION", "domain": "counter", "outcome": ""}
		if s.SpanKind == trace.SpanKindServer {
			want["outcome"] = "rejected"
			if s.Parent.IsValid() {
				t.Errorf("request without traceparent: the request span has parent %v, want a new trace", s.Parent)
			}
		}
		wantAttrs(t, s, want)
	}
}

// TestTracingHTTP: a plain HTTP request gets "HTTP <METHOD>" spans (or the
// name Config.SpanNames gives its path) and the upstream gets the upstream
// span's context in its headers.
func TestTracingHTTP(t *testing.T) {
	exp, tp := inMemoryTracing(t)
	e := newEnv(t, func(c *wasmhost.Config) {
		c.TracerProvider = tp
		c.SpanNames = &wasmhost.SpanNames{Requests: map[string]string{"/echo/named": "echo.named"}}
	})
	for _, path := range []string{"/echo/plain", "/echo/named"} {
		exp.Reset()
		er := readEcho(t, e.do(t, "trace-http", http.MethodGet, path, "", map[string]string{"traceparent": clientTP}))
		spans := waitSpans(t, exp, 2)
		reqName := "HTTP GET"
		if path == "/echo/named" {
			reqName = "echo.named"
		}
		req, ok1 := spans[reqName+"(server)"]
		up, ok2 := spans["HTTP GET(client)"]
		if !ok1 || !ok2 || up.Parent.SpanID() != req.SpanContext.SpanID() {
			t.Fatalf("%s: spans %v", path, names(exp.GetSpans()))
		}
		wantAttrs(t, req, map[string]string{"http.request.method": "GET", "http.response.status_code": "200", "rpc.system.name": ""})
		if got := er.Headers["Traceparent"]; len(got) != 1 || got[0] != traceparentOf(up.SpanContext) {
			t.Errorf("%s: upstream got traceparent %v, want %s", path, got, traceparentOf(up.SpanContext))
		}
	}
}

// TestTracingOff: with a provider that creates no spans (noop, or the
// global one with nothing installed) the headers reach the plugin and the
// services exactly as the client sent them.
func TestTracingOff(t *testing.T) {
	for name, tp := range map[string]trace.TracerProvider{"noop": noop.NewTracerProvider(), "global default": nil} {
		t.Run(name, func(t *testing.T) {
			rec, addr := startRecorder(t)
			e := newEnv(t, func(c *wasmhost.Config) {
				c.TracerProvider = tp
				c.Upstream = addr
				c.Clusters["echo"] = addr
			})
			ctx := metadata.AppendToOutgoingContext(testCtx(t), "x-case", "trace", "traceparent", clientTP, "tracestate", clientTS)
			if _, err := grpcClient(t, e.proxy.Addr).UnaryCall(ctx, &testgrpc.SimpleRequest{}); err != nil {
				t.Fatal(err)
			}
			e.logs.waitFact(t, "traceparent="+clientTP+" tracestate="+clientTS)
			want := clientTP + "|" + clientTS
			if got := rec.get("UnaryCall"); len(got) != 1 || got[0] != want {
				t.Errorf("upstream saw %v, want %s", got, want)
			}
			if got := rec.get("EmptyCall"); len(got) != 1 || got[0] != want {
				t.Errorf("callout target saw %v, want %s", got, want)
			}
			// Without trace headers nothing is added.
			ctx = metadata.AppendToOutgoingContext(testCtx(t), "x-case", "trace-nomd")
			if _, err := grpcClient(t, e.proxy.Addr).UnaryCall(ctx, &testgrpc.SimpleRequest{}); err != nil {
				t.Fatal(err)
			}
			if got := rec.get("UnaryCall"); len(got) != 2 || got[1] != "|" {
				t.Errorf("upstream saw %v, want no trace headers", got)
			}
		})
	}
}

// promLine matches a sample of the OpenTelemetry exporter's output and
// captures name, labels and value.
var promLine = regexp.MustCompile(`^([a-z_]+)\{([^}]*)\} (\S+)$`)

// scrapeCommands returns the angzarr_command_* samples of
// /stats/prometheus as "name{domain,outcome[,le]}" -> value; the
// otel_scope_* labels must name wasmhost.
func scrapeCommands(t *testing.T, adminAddr string) (map[string]float64, string) {
	t.Helper()
	resp, err := http.Get("http://" + adminAddr + "/stats/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		m := promLine.FindStringSubmatch(line)
		if m == nil || !strings.HasPrefix(m[1], "angzarr_command_") {
			continue
		}
		labels := map[string]string{}
		for _, kv := range strings.Split(m[2], ",") {
			k, v, _ := strings.Cut(kv, "=")
			labels[k] = strings.Trim(v, `"`)
		}
		if labels["otel_scope_name"] != "github.com/angzarr-mesh/angzarr/wasmhost" {
			t.Errorf("scope of %s", line)
		}
		key := fmt.Sprintf("%s{%s,%s", m[1], labels["domain"], labels["outcome"])
		if le, ok := labels["le"]; ok {
			key += "," + le
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatal(err)
		}
		out[key+"}"] = v
	}
	return out, string(body)
}

// TestCommandMetrics: a stream whose plugin set angzarr.domain is counted
// by domain and outcome ("error" without one), with its duration; other
// streams are not. The OpenTelemetry output follows the plugin's and the
// host's own metrics.
func TestCommandMetrics(t *testing.T) {
	e := newEnv(t)
	cl := grpcClient(t, e.proxy.Addr)
	send := func(kv ...string) {
		if _, err := cl.UnaryCall(metadata.AppendToOutgoingContext(testCtx(t), kv...), &testgrpc.SimpleRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	send("x-domain", "counter", "x-outcome", "ok")
	send("x-domain", "counter", "x-outcome", "ok")
	send("x-domain", "counter", "x-outcome", "rejected")
	send("x-domain", "order")
	send("x-outcome", "ok") // no domain: not a command
	var got map[string]float64
	var body string
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, body = scrapeCommands(t, e.proxy.AdminAddr)
		if got["angzarr_command_total{order,error}"] == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Millisecond) // the last stream's end races the client's answer
	}
	for k, v := range map[string]float64{
		"angzarr_command_total{counter,ok}":                            2,
		"angzarr_command_total{counter,rejected}":                      1,
		"angzarr_command_total{order,error}":                           1,
		"angzarr_command_duration_seconds_count{counter,ok}":           2,
		"angzarr_command_duration_seconds_bucket{counter,ok,+Inf}":     2,
		"angzarr_command_duration_seconds_count{counter,rejected}":     1,
		"angzarr_command_duration_seconds_count{order,error}":          1,
		"angzarr_command_duration_seconds_bucket{counter,ok,30}":       2,
		"angzarr_command_duration_seconds_bucket{counter,rejected,30}": 1,
	} {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	for k := range got {
		if strings.Contains(k, "{,") {
			t.Errorf("a stream without angzarr.domain was counted: %s", k)
		}
	}
	if sum := got["angzarr_command_duration_seconds_sum{counter,ok}"]; sum <= 0 || sum > 20 {
		t.Errorf("duration sum %v s for two requests", sum)
	}
	if i, j := strings.Index(body, "wasmhost_streams_total"), strings.Index(body, "angzarr_command_total"); i < 0 || j < i {
		t.Errorf("the OpenTelemetry metrics must follow the host's:\n%s", body)
	}
	if !strings.Contains(body, "# TYPE angzarr_command_duration_seconds histogram") || !strings.Contains(body, "# TYPE angzarr_command_total counter") {
		t.Errorf("types:\n%s", body)
	}
}

// TestTracingUnsampled: under a request that is not sampled (the client's
// traceparent says so, or the root sampler drops it) nothing is exported,
// no client span is started, and the upstream request and the callout
// still carry the request's trace context, marked not sampled, so the next
// hops decide alike.
func TestTracingUnsampled(t *testing.T) {
	unsampledTP := "00-" + strings.Repeat("ab", 16) + "-" + strings.Repeat("cd", 8) + "-00"
	for name, md := range map[string][]string{
		"client says not sampled": {"traceparent", unsampledTP},
		"root sampler drops":      nil,
	} {
		t.Run(name, func(t *testing.T) {
			exp := tracetest.NewInMemoryExporter()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0))))
			t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
			rec, addr := startRecorder(t)
			e := newEnv(t, func(c *wasmhost.Config) {
				c.TracerProvider = tp
				c.Upstream = addr
				c.Clusters["echo"] = addr
			})
			ctx := metadata.AppendToOutgoingContext(testCtx(t), append([]string{"x-case", "trace"}, md...)...)
			if _, err := grpcClient(t, e.proxy.Addr).UnaryCall(ctx, &testgrpc.SimpleRequest{}); err != nil {
				t.Fatal(err)
			}
			up, call := rec.get("UnaryCall"), rec.get("EmptyCall")
			if len(up) != 1 || len(call) != 1 {
				t.Fatalf("upstream saw %v, callout target %v", up, call)
			}
			tpUp, _, _ := strings.Cut(up[0], "|")
			parts := strings.Split(tpUp, "-")
			if len(parts) != 4 || parts[3] != "00" {
				t.Fatalf("upstream traceparent %q, want one marked not sampled", tpUp)
			}
			if md != nil && parts[1] != strings.Repeat("ab", 16) {
				t.Errorf("upstream traceparent %q left the client's trace", tpUp)
			}
			if call[0] != up[0] {
				t.Errorf("callout carried %q, upstream %q: both should carry the request's context", call[0], up[0])
			}
			if spans := exp.GetSpans(); len(spans) != 0 {
				t.Errorf("exported %v from an unsampled request", names(spans))
			}
		})
	}
}
