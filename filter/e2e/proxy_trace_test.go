//go:build !wasip1

package e2e

import (
	"context"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/angzarr-mesh/angzarr/filter/config"
	"github.com/angzarr-mesh/angzarr/filter/internal/counter"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/wasmhost"
)

// viewProjector is a synchronous projector of the counter: it answers the
// last sequence it was given.
type viewProjector struct {
	pb.UnimplementedProjectorServer
}

func (viewProjector) HandleSync(_ context.Context, b *pb.EventBook) (*pb.Projection, error) {
	var last uint32
	for _, p := range b.GetPages() {
		last = p.GetNum()
	}
	return &pb.Projection{Cover: b.GetCover(), Projector: "counter-view", Sequence: last}, nil
}

// startProjector serves viewProjector on 127.0.0.1:0.
func startProjector(t *testing.T) string {
	t.Helper()
	lis := listen(t)
	gs := grpc.NewServer()
	pb.RegisterProjectorServer(gs, viewProjector{})
	done := make(chan struct{})
	go func() { defer close(done); _ = gs.Serve(lis) }()
	t.Cleanup(func() { gs.Stop(); <-done })
	return lis.Addr().String()
}

// traceStack is a stack whose proxy and event service export their spans
// into one in-memory exporter, with the counter-view sync projector.
func traceStack(t *testing.T) (*Stack, *tracetest.InMemoryExporter) {
	t.Helper()
	spans := tracetest.NewInMemoryExporter()
	provider := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	t.Cleanup(func() { _ = provider.Shutdown(context.Background()) })
	s := Start(t, Options{
		Profile: wasmhost.WASIEnvoyCurrent, Filter: wasmPath,
		Config:         config.Config{SyncProjectors: []config.Projector{{Name: "counter-view", Cluster: "projector-view"}}},
		Clusters:       map[string]string{"projector-view": startProjector(t)},
		TracerProvider: provider, ProxyTracerProvider: provider,
	})
	return s, spans
}

// spanKey names a span with its kind: "aggregate.handle(server)".
func spanKey(s tracetest.SpanStub) string { return s.Name + "(" + s.SpanKind.String() + ")" }

// commandTrace polls until the trace of the aggregate.handle span whose
// correlation_id is cid holds every span of want, and returns that trace's
// spans by spanKey (a key repeated in the trace fails).
func commandTrace(t *testing.T, spans *tracetest.InMemoryExporter, cid string, want ...string) map[string]tracetest.SpanStub {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		all := spans.GetSpans()
		var tid trace.TraceID
		for _, sp := range all {
			if sp.Name == "aggregate.handle" && spanAttrs(sp)["correlation_id"] == cid {
				tid = sp.SpanContext.TraceID()
			}
		}
		got := map[string]tracetest.SpanStub{}
		var dups []string
		for _, sp := range all {
			if tid.IsValid() && sp.SpanContext.TraceID() == tid {
				if _, dup := got[spanKey(sp)]; dup {
					dups = append(dups, spanKey(sp))
				}
				got[spanKey(sp)] = sp
			}
		}
		complete := tid.IsValid()
		for _, k := range want {
			if _, ok := got[k]; !ok {
				complete = false
			}
		}
		if complete {
			if len(dups) > 0 {
				t.Fatalf("spans repeated in the trace: %v", dups)
			}
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace of %s: %v, want %v", cid, keys(got), want)
		}
		time.Sleep(10 * time.Millisecond) // the server spans end just after the answer: poll
	}
}

func keys(m map[string]tracetest.SpanStub) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func spanAttrs(s tracetest.SpanStub) map[string]string {
	m := map[string]string{}
	for _, kv := range s.Attributes {
		m[string(kv.Key)] = kv.Value.String()
	}
	return m
}

// wantChild fails unless child's parent is parent.
func wantChild(t *testing.T, got map[string]tracetest.SpanStub, child, parent string) {
	t.Helper()
	c, p := got[child], got[parent]
	if c.Parent.SpanID() != p.SpanContext.SpanID() {
		t.Errorf("%s's parent is %v, want %s (%v)", child, c.Parent.SpanID(), parent, p.SpanContext.SpanID())
	}
}

// correlationOf returns the x-angzarr-correlation-id the proxy answered, in
// the headers or, for a trailers-only answer, the trailers.
func correlationOf(t *testing.T, hdr, trl metadata.MD) string {
	t.Helper()
	cid := append(hdr.Get("x-angzarr-correlation-id"), trl.Get("x-angzarr-correlation-id")...)
	if len(cid) != 1 || cid[0] == "" {
		t.Fatalf("no correlation id in %v / %v", hdr, trl)
	}
	return cid[0]
}

// TestProxySpans runs commands through the proxy and the event service,
// both tracing into one exporter: each command is ONE trace with the
// proxy's aggregate.handle at its top (under the client's span when it
// sent one), the proxy's client spans of its callouts and of the business
// logic call under it, the event service's spans under those, and
// domain/root/correlation_id on the proxy's and the store's spans.
func TestProxySpans(t *testing.T) {
	const (
		traceHex = "4bf92f3577b34da6a3ce929d0e0e4736"
		spanHex  = "00f067aa0ba902b7"
	)
	s, spans := traceStack(t)

	t.Run("Handle in a client trace", func(t *testing.T) {
		root := newRoot(t)
		ctx := metadata.AppendToOutgoingContext(ctxT(t), "traceparent", "00-"+traceHex+"-"+spanHex+"-01")
		var hdr, trl metadata.MD
		if _, err := s.Coordinator().Handle(ctx, command(root, 0, 4), grpc.Header(&hdr), grpc.Trailer(&trl)); err != nil {
			t.Fatal(err)
		}
		cid := correlationOf(t, hdr, trl)
		got := commandTrace(t, spans, cid,
			"aggregate.handle(server)", "aggregate.execute(client)",
			"angzarr.EventStore/Load(client)", "angzarr.EventStore/Load(server)", "aggregate.load_events(internal)",
			"angzarr.EventStore/Append(client)", "angzarr.EventStore/Append(server)", "aggregate.persist(internal)")
		handle := got["aggregate.handle(server)"]
		if handle.SpanContext.TraceID().String() != traceHex || !handle.Parent.IsRemote() || handle.Parent.SpanID().String() != spanHex {
			t.Errorf("aggregate.handle in trace %v under %v, want the client's span %s", handle.SpanContext.TraceID(), handle.Parent.SpanID(), spanHex)
		}
		for _, k := range []string{"aggregate.execute(client)", "angzarr.EventStore/Load(client)", "angzarr.EventStore/Append(client)"} {
			wantChild(t, got, k, "aggregate.handle(server)")
		}
		wantChild(t, got, "angzarr.EventStore/Load(server)", "angzarr.EventStore/Load(client)")
		wantChild(t, got, "aggregate.load_events(internal)", "angzarr.EventStore/Load(server)")
		wantChild(t, got, "angzarr.EventStore/Append(server)", "angzarr.EventStore/Append(client)")
		wantChild(t, got, "aggregate.persist(internal)", "angzarr.EventStore/Append(server)")

		rootText := uuid.UUID(root).String()
		for k, sp := range got {
			a := spanAttrs(sp)
			if sp.SpanKind == trace.SpanKindServer && k != "aggregate.handle(server)" {
				continue // the event service's otelgrpc spans: rpc.* only
			}
			if a["correlation_id"] != cid || a["domain"] != counter.Domain || a["root"] != rootText {
				t.Errorf("%s: domain %q root %q correlation_id %q, want %s %s %s", k, a["domain"], a["root"], a["correlation_id"], counter.Domain, rootText, cid)
			}
			if sp.Status.Code == codes.Error {
				t.Errorf("%s: status %v", k, sp.Status)
			}
		}
		if a := spanAttrs(handle); a["outcome"] != "ok" || a["rpc.response.status_code"] != "OK" || a["rpc.method"] != "angzarr.BusinessCoordinator/Handle" {
			t.Errorf("aggregate.handle attributes %v", a)
		}
		if a := spanAttrs(got["angzarr.EventStore/Append(client)"]); a["rpc.method"] != "angzarr.EventStore/Append" || a["outcome"] != "" {
			t.Errorf("Append client span attributes %v", a)
		}
	})

	t.Run("rejected command", func(t *testing.T) {
		var hdr, trl metadata.MD
		_, err := s.Coordinator().Handle(ctxT(t), command(newRoot(t), 0, -1), grpc.Header(&hdr), grpc.Trailer(&trl))
		if status.Code(err) != grpccodes.FailedPrecondition {
			t.Fatalf("err %v, want the counter's rejection", err)
		}
		cid := correlationOf(t, hdr, trl)
		got := commandTrace(t, spans, cid, "aggregate.handle(server)", "aggregate.execute(client)", "angzarr.EventStore/Load(client)")
		handle := got["aggregate.handle(server)"]
		if handle.Parent.IsValid() {
			t.Errorf("a command without a client trace: aggregate.handle has parent %v, want the root of a new trace", handle.Parent)
		}
		if handle.Status.Code != codes.Error || !strings.Contains(handle.Status.Description, "below zero") {
			t.Errorf("aggregate.handle status %v, want an error", handle.Status)
		}
		if a := spanAttrs(handle); a["outcome"] != "rejected" || a["rpc.response.status_code"] != "FAILED_PRECONDITION" || a["correlation_id"] != cid {
			t.Errorf("aggregate.handle attributes %v", a)
		}
		if st := got["aggregate.execute(client)"].Status; st.Code != codes.Error {
			t.Errorf("aggregate.execute status %v, want the logic's error", st)
		}
		if _, ok := got["angzarr.EventStore/Append(client)"]; ok {
			t.Error("a rejected command was appended")
		}
	})

	t.Run("HandleSync SIMPLE with a sync projector", func(t *testing.T) {
		var hdr, trl metadata.MD
		resp, err := s.Coordinator().HandleSync(ctxT(t), &pb.SyncCommandBook{Command: command(newRoot(t), 0, 2), SyncMode: pb.SyncMode_SYNC_MODE_SIMPLE},
			grpc.Header(&hdr), grpc.Trailer(&trl))
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetProjections()) != 1 || resp.GetProjections()[0].GetProjector() != "counter-view" {
			t.Fatalf("projections %v", resp.GetProjections())
		}
		cid := correlationOf(t, hdr, trl)
		got := commandTrace(t, spans, cid, "aggregate.handle(server)", "aggregate.execute(client)",
			"angzarr.EventStore/Append(client)", "aggregate.persist(internal)", "aggregate.sync_projectors(client)")
		wantChild(t, got, "aggregate.sync_projectors(client)", "aggregate.handle(server)")
		sp := got["aggregate.sync_projectors(client)"]
		if a := spanAttrs(sp); a["correlation_id"] != cid || a["rpc.method"] != "angzarr.Projector/HandleSync" || sp.Status.Code == codes.Error {
			t.Errorf("aggregate.sync_projectors: %v %v", a, sp.Status)
		}
		if m := spanAttrs(got["aggregate.handle(server)"])["rpc.method"]; m != "angzarr.BusinessCoordinator/HandleSync" {
			t.Errorf("aggregate.handle rpc.method %q", m)
		}
	})
}

// commandSample matches an angzarr_command_* sample of /stats/prometheus.
var commandSample = regexp.MustCompile(`^(angzarr_command_[a-z_]+)\{(.*)\} (\S+)$`)

// TestProxyCommandMetrics: after one OK and one rejected command,
// /stats/prometheus shows angzarr_command_total and the
// angzarr_command_duration_seconds histogram by domain and outcome.
func TestProxyCommandMetrics(t *testing.T) {
	s := Start(t, Options{Profile: wasmhost.WASIEnvoy133, Filter: wasmPath})
	if _, err := s.Coordinator().Handle(ctxT(t), command(newRoot(t), 0, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Coordinator().Handle(ctxT(t), command(newRoot(t), 0, -1)); status.Code(err) != grpccodes.FailedPrecondition {
		t.Fatalf("err %v", err)
	}
	scrape := func() map[string]string {
		rec := httptest.NewRecorder()
		s.Host.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/stats/prometheus", nil))
		out := map[string]string{}
		for _, line := range strings.Split(rec.Body.String(), "\n") {
			m := commandSample.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			// Keep domain, outcome and le; drop the otel_scope_* labels.
			var kept []string
			for _, l := range strings.Split(m[2], ",") {
				if !strings.HasPrefix(l, "otel_scope_") {
					kept = append(kept, l)
				}
			}
			out[m[1]+"{"+strings.Join(kept, ",")+"}"] = m[3]
		}
		return out
	}
	want := map[string]string{
		`angzarr_command_total{domain="counter",outcome="ok"}`:                                 "1",
		`angzarr_command_total{domain="counter",outcome="rejected"}`:                           "1",
		`angzarr_command_duration_seconds_count{domain="counter",outcome="ok"}`:                "1",
		`angzarr_command_duration_seconds_count{domain="counter",outcome="rejected"}`:          "1",
		`angzarr_command_duration_seconds_bucket{domain="counter",outcome="ok",le="+Inf"}`:     "1",
		`angzarr_command_duration_seconds_bucket{domain="counter",outcome="rejected",le="30"}`: "1",
	}
	var got map[string]string
	for deadline := time.Now().Add(10 * time.Second); ; {
		got = scrape()
		missing := 0
		for k, v := range want {
			if got[k] != v {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/stats/prometheus: %v\nwant %v", got, want)
		}
		time.Sleep(10 * time.Millisecond) // a stream ends just after its answer: poll
	}
	for k := range got {
		if strings.Contains(k, `outcome="`) && !strings.Contains(k, `outcome="ok"`) && !strings.Contains(k, `outcome="rejected"`) {
			t.Errorf("unexpected series %s", k)
		}
	}
}
