package shope2e_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/angzarr-mesh/angzarr/examples/go/inventory"
	"github.com/angzarr-mesh/angzarr/examples/go/roots"
	"github.com/angzarr-mesh/angzarr/internal/telemetry"
	"github.com/angzarr-mesh/angzarr/internal/testutil"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	ex "github.com/angzarr-mesh/angzarr/proto/examples"
)

// installTracing makes a tracer provider recording every span into memory
// the global one, with the W3C propagators, for the mesh started after it:
// the proxies (wasmhost.New), the event service, its dispatcher and the
// control plane take the global provider when they are created. The
// previous globals are restored by a cleanup registered before the mesh's,
// so it runs after the mesh has stopped.
func installTracing(t *testing.T) (*sdktrace.TracerProvider, *tracetest.InMemoryExporter) {
	t.Helper()
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithSyncer(spans))
	prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(telemetry.Propagator())
	t.Cleanup(func() {
		otel.SetTracerProvider(prevTP)
		otel.SetTextMapPropagator(prevProp)
		if err := tp.Shutdown(context.Background()); err != nil {
			t.Errorf("tracer provider shutdown: %v", err)
		}
	})
	return tp, spans
}

// clientSpan starts a client span of the test, tagged with the correlation
// id the command carries, and returns ctx sending its W3C context as gRPC
// metadata (what an instrumented client does).
func clientSpan(ctx context.Context, tp trace.TracerProvider, name, correlation string) (context.Context, trace.Span) {
	ctx, span := tp.Tracer("github.com/angzarr-mesh/angzarr/internal/shope2e").Start(ctx, name,
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attribute.String(telemetry.CorrelationKey, correlation)))
	carrier := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(ctx, carrier)
	for _, k := range carrier.Keys() {
		ctx = metadata.AppendToOutgoingContext(ctx, k, carrier.Get(k))
	}
	return ctx, span
}

// workflow is what TestCommandTelemetry sent: a completed order, whose
// ConfirmPayment ran in the client span confirm.
type workflow struct {
	corr                 string
	customer, order      uuid.UUID
	confirm              trace.SpanContext // the client span of ConfirmPayment
	createOrder, payment trace.TraceID     // the traces of the commands before it
}

// TestCommandTelemetry runs a completed order through the local mesh with
// tracing on, then checks the trace it produced (issue #10: one trace from
// the client through the proxies, the event service, the log and the
// sagas to the next domains' proxies, every span with the correlation id)
// and the metrics the Prometheus endpoints of every server show.
func TestCommandTelemetry(t *testing.T) {
	tp, spans := installTracing(t) // before the mesh: see installTracing
	m := startMesh(t)
	ctx := ctxT(t, 3*time.Minute)
	w := workflow{customer: uuid.New(), order: uuid.New()}
	w.corr = "telemetry-" + w.order.String()

	m.send(ctx, "customer", w.customer, "", 0, &ex.CreateCustomer{Name: "Tess", Email: "tess@example.com"})
	cctx, span := clientSpan(ctx, tp, "client.CreateOrder", w.corr)
	m.send(cctx, "order", w.order, w.corr, 0, &ex.CreateOrder{CustomerId: w.customer.String(), Items: []*ex.LineItem{
		{ProductId: "lamp", Name: "Lamp", Quantity: 1, UnitPriceCents: 4200},
	}})
	span.End()
	w.createOrder = span.SpanContext().TraceID()
	cctx, span = clientSpan(ctx, tp, "client.SubmitPayment", w.corr)
	m.send(cctx, "order", w.order, w.corr, 1, &ex.SubmitPayment{PaymentMethod: "card", AmountCents: 4200})
	span.End()
	w.payment = span.SpanContext().TraceID()
	// ConfirmPayment completes the order: the fulfillment saga ships it,
	// loyalty-earn credits the customer, from the order domain's log.
	cctx, span = clientSpan(ctx, tp, "client.ConfirmPayment", w.corr)
	m.send(cctx, "order", w.order, w.corr, 2, &ex.ConfirmPayment{PaymentReference: "pay-telemetry"})
	span.End()
	w.confirm = span.SpanContext()

	shipment := roots.Of(w.order.String())
	testutil.EventuallyWhy(t, func() (bool, string) {
		c, s := m.history(ctx, "customer", w.customer), m.history(ctx, "fulfillment", shipment)
		return len(ofType(c, "LoyaltyPointsAdded")) > 0 && len(ofType(s, "ShipmentCreated")) > 0,
			"customer " + describe(c) + "; shipment " + describe(s)
	})
	m.caughtUp(ctx, shopSubscribers...)
	m.noDeadLetters(ctx)

	t.Run("one trace", func(t *testing.T) { checkTrace(t, spans, w) })
	t.Run("control plane spans", func(t *testing.T) {
		// Not in the workflow's trace, but recorded by the same provider.
		for _, s := range spans.GetSpans() {
			if s.Name == "controlplane.load_topology" && attr(s, "outcome") == "applied" {
				return
			}
		}
		t.Error("no controlplane.load_topology span with outcome applied: the control plane did not use the global tracer provider")
	})
	t.Run("prometheus", func(t *testing.T) { checkMetrics(ctx, t, m) })
}

// correlationExempt lists the spans of the workflow's trace that may lack
// its correlation id, by "name kind", with the reason. Every span of the
// workflow carries it today; a span added without it fails the test until
// it gets it or is listed here.
var correlationExempt = map[string]string{}

// checkTrace checks the trace of ConfirmPayment: its shape (who is whose
// parent) from the client to the sagas' commands in the next domains, the
// correlation id on every span, and that no span of the workflow left it.
func checkTrace(t *testing.T, exp *tracetest.InMemoryExporter, w workflow) {
	want := []spanWant{
		{key: "handle", name: "aggregate.handle", kind: trace.SpanKindServer, attrs: map[string]string{"domain": "order"}, parent: "client"},
		{key: "execute", name: "aggregate.execute", kind: trace.SpanKindClient, parent: "handle"},
		// (No Load: the filter's aggregate cache has the order since
		// SubmitPayment. A saga's command always loads, see below.)
		{key: "append", name: "angzarr.EventStore/Append", kind: trace.SpanKindClient, parent: "handle"},
		{key: "append.server", name: "angzarr.EventStore/Append", kind: trace.SpanKindServer, parent: "append"},
		{key: "persist", name: "aggregate.persist", attrs: map[string]string{"domain": "order"}, ancestor: "append"},
		// The log entry's deliveries continue the trace of the append that
		// stored it (its server span, a remote parent).
		{key: "saga.fulfillment", name: "saga.orchestrate", attrs: map[string]string{"subscriber": "fulfillment", "domain": "order"}, parent: "append.server"},
		{key: "saga.loyalty-earn", name: "saga.orchestrate", attrs: map[string]string{"subscriber": "loyalty-earn", "domain": "order"}, parent: "append.server"},
		{key: "projector.order", name: "projector.handle", attrs: map[string]string{"subscriber": "order-summary", "domain": "order"}, parent: "append.server"},
		// The sagas' commands reach the next domains' proxies in the trace.
		{key: "handle.fulfillment", name: "aggregate.handle", kind: trace.SpanKindServer, attrs: map[string]string{"domain": "fulfillment"}, ancestor: "saga.fulfillment"},
		{key: "handle.customer", name: "aggregate.handle", kind: trace.SpanKindServer, attrs: map[string]string{"domain": "customer"}, ancestor: "saga.loyalty-earn"},
		// A command with an idempotency key loads (to find a prior append).
		{key: "load", name: "angzarr.EventStore/Load", kind: trace.SpanKindClient, parent: "handle.customer"},
		{key: "load.server", name: "angzarr.EventStore/Load", kind: trace.SpanKindServer, parent: "load"},
		{key: "load_events", name: "aggregate.load_events", attrs: map[string]string{"domain": "customer"}, parent: "load.server"},
		{key: "persist.customer", name: "aggregate.persist", attrs: map[string]string{"domain": "customer"}, ancestor: "handle.customer"},
		// And through the log again: the shipment's projection.
		{key: "projector.fulfillment", name: "projector.handle", attrs: map[string]string{"subscriber": "order-summary", "domain": "fulfillment"}, ancestor: "handle.fulfillment"},
	}
	var tr *traceView
	var problems []string
	// The last spans end after the checkpoints move (a delivery's span
	// ends once its commit is done): wait until the trace is whole.
	deadline := time.Now().Add(effectTimeout)
	for {
		tr = newTraceView(exp.GetSpans(), w.confirm)
		problems = tr.check(want)
		if len(problems) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
	if len(problems) > 0 {
		t.Fatalf("the trace of ConfirmPayment (%s):\n  %s\n\n%s", w.confirm.TraceID(), strings.Join(problems, "\n  "), tr.tree())
	}

	// Every span of the trace carries the order's correlation id.
	for _, s := range tr.spans {
		if got := attr(s, telemetry.CorrelationKey); got != w.corr {
			if why, ok := correlationExempt[s.Name+" "+s.SpanKind.String()]; ok {
				t.Logf("%s %s has no correlation id: %s", s.Name, s.SpanKind, why)
				continue
			}
			t.Errorf("%s (%s, span %s) has correlation_id %q, want %q", s.Name, s.SpanKind, s.SpanContext.SpanID(), got, w.corr)
		}
	}
	// The workflow is one trace: every span with its correlation id is in
	// it, except those of the commands sent before ConfirmPayment, each in
	// a trace of its own (with their log entries' deliveries).
	byTrace := map[trace.TraceID]int{}
	for _, s := range exp.GetSpans() {
		if attr(s, telemetry.CorrelationKey) != w.corr {
			continue
		}
		switch id := s.SpanContext.TraceID(); id {
		case w.confirm.TraceID(), w.createOrder, w.payment:
			byTrace[id]++
		default:
			t.Errorf("%s (%s, %v) of the workflow is in trace %s, not in the one of a command", s.Name, s.SpanKind, attrsOf(s), id)
		}
	}
	for _, id := range []trace.TraceID{w.createOrder, w.payment} {
		if byTrace[id] < 2 {
			t.Errorf("trace %s of an earlier command has %d spans with the correlation id", id, byTrace[id])
		}
	}
	if t.Failed() {
		t.Logf("the trace:\n%s", tr.tree())
	}
}

// spanWant is a span the trace must have: its name, kind (0: any) and
// attributes, and either its parent or an ancestor (by key).
type spanWant struct {
	key, name        string
	kind             trace.SpanKind
	attrs            map[string]string
	parent, ancestor string
}

func (sw spanWant) matches(s tracetest.SpanStub) bool {
	if s.Name != sw.name || (sw.kind != trace.SpanKindUnspecified && s.SpanKind != sw.kind) {
		return false
	}
	for k, v := range sw.attrs {
		if attr(s, k) != v {
			return false
		}
	}
	return true
}

// traceView is the finished spans of one trace.
type traceView struct {
	root  trace.SpanContext // the client's span
	spans []tracetest.SpanStub
	byID  map[trace.SpanID]tracetest.SpanStub
}

func newTraceView(all tracetest.SpanStubs, root trace.SpanContext) *traceView {
	v := &traceView{root: root, byID: map[trace.SpanID]tracetest.SpanStub{}}
	for _, s := range all {
		if s.SpanContext.TraceID() == root.TraceID() {
			v.spans = append(v.spans, s)
			v.byID[s.SpanContext.SpanID()] = s
		}
	}
	return v
}

// path is the chain of span ids from s up to the trace's root; ok is false
// when a link is missing (a parent not exported, e.g. not ended yet).
func (v *traceView) path(s tracetest.SpanStub) (ids []trace.SpanID, ok bool) {
	for {
		ids = append(ids, s.SpanContext.SpanID())
		if !s.Parent.IsValid() {
			return ids, true
		}
		p, found := v.byID[s.Parent.SpanID()]
		if !found {
			return ids, false
		}
		s = p
	}
}

// check finds every wanted span and checks its parent or ancestor; it
// returns what is wrong.
func (v *traceView) check(want []spanWant) []string {
	var problems []string
	if _, ok := v.byID[v.root.SpanID()]; !ok {
		return []string{"the client span is not exported"}
	}
	for _, s := range v.spans {
		if _, ok := v.path(s); !ok {
			problems = append(problems, fmt.Sprintf("%s (%s): its parent %s is not in the trace", s.Name, s.SpanContext.SpanID(), s.Parent.SpanID()))
		}
	}
	found := map[string][]tracetest.SpanStub{"client": {v.byID[v.root.SpanID()]}}
	for _, sw := range want {
		var anchors []tracetest.SpanStub
		if sw.parent != "" {
			anchors = found[sw.parent]
		} else {
			anchors = found[sw.ancestor]
		}
		var ok []tracetest.SpanStub
		for _, s := range v.spans {
			if !sw.matches(s) {
				continue
			}
			for _, a := range anchors {
				aid := a.SpanContext.SpanID()
				if sw.parent != "" && s.Parent.SpanID() == aid {
					ok = append(ok, s)
					break
				}
				if path, _ := v.path(s); sw.ancestor != "" && slices.Contains(path[1:], aid) {
					ok = append(ok, s)
					break
				}
			}
		}
		if len(ok) == 0 {
			rel := "child of " + sw.parent
			if sw.parent == "" {
				rel = "descendant of " + sw.ancestor
			}
			problems = append(problems, fmt.Sprintf("no %s %s %v, %s", sw.name, kindName(sw.kind), sw.attrs, rel))
		}
		found[sw.key] = ok
	}
	// The order's command is handled once in this trace.
	if n := len(found["handle"]); n > 1 {
		problems = append(problems, fmt.Sprintf("%d aggregate.handle spans of the order under the client span, want 1", n))
	}
	return problems
}

// tree renders the trace, children under their parent, for a failure.
func (v *traceView) tree() string {
	children := map[trace.SpanID][]tracetest.SpanStub{}
	var roots []tracetest.SpanStub
	for _, s := range v.spans {
		if _, ok := v.byID[s.Parent.SpanID()]; s.Parent.IsValid() && ok {
			children[s.Parent.SpanID()] = append(children[s.Parent.SpanID()], s)
		} else {
			roots = append(roots, s)
		}
	}
	var b strings.Builder
	var walk func(s tracetest.SpanStub, depth int)
	walk = func(s tracetest.SpanStub, depth int) {
		fmt.Fprintf(&b, "%s%s [%s] span=%s", strings.Repeat("  ", depth), s.Name, s.SpanKind, s.SpanContext.SpanID())
		if depth == 0 && s.Parent.IsValid() {
			fmt.Fprintf(&b, " parent=%s (not exported)", s.Parent.SpanID())
		}
		for _, k := range []string{"domain", "subscriber", "outcome", telemetry.CorrelationKey} {
			if a := attr(s, k); a != "" {
				fmt.Fprintf(&b, " %s=%s", k, a)
			}
		}
		b.WriteByte('\n')
		kids := children[s.SpanContext.SpanID()]
		sort.Slice(kids, func(i, j int) bool { return kids[i].StartTime.Before(kids[j].StartTime) })
		for _, c := range kids {
			walk(c, depth+1)
		}
	}
	sort.Slice(roots, func(i, j int) bool { return roots[i].StartTime.Before(roots[j].StartTime) })
	for _, r := range roots {
		walk(r, 0)
	}
	return b.String()
}

func kindName(k trace.SpanKind) string {
	if k == trace.SpanKindUnspecified {
		return "(any kind)"
	}
	return "(" + k.String() + ")"
}

func attr(s tracetest.SpanStub, key string) string {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value.String()
		}
	}
	return ""
}

func attrsOf(s tracetest.SpanStub) map[string]string {
	out := map[string]string{}
	for _, kv := range s.Attributes {
		out[string(kv.Key)] = kv.Value.String()
	}
	return out
}

// checkMetrics scrapes the Prometheus endpoints of the order, customer and
// fulfillment proxies, the event service and the control plane after the
// workflow, plus a command of the inventory that stores a snapshot, and
// checks the seed's metrics with their labels.
func checkMetrics(ctx context.Context, t *testing.T, m *mesh) {
	// The inventory's logic returns its state as a snapshot every 50
	// events (inventory.SnapshotEvery): one command of 50 pages stores one.
	stock := roots.Of("telemetry-lamp")
	pages := []*pb.CommandPage{{Sequence: 0, Command: mustAny(t, &ex.InitializeStock{ProductId: "telemetry-lamp", Quantity: 1, LowStockThreshold: 1})}}
	for i := 1; i < inventory.SnapshotEvery; i++ {
		pages = append(pages, &pb.CommandPage{Sequence: uint32(i), Command: mustAny(t, &ex.ReceiveStock{Quantity: 1, Reference: fmt.Sprint("delivery-", i)})})
	}
	resp, err := m.coordinator("inventory").Handle(ctx, &pb.CommandBook{
		Cover: &pb.Cover{Domain: "inventory", Root: &pb.UUID{Value: stock[:]}, CorrelationId: "telemetry-stock"}, Pages: pages})
	if err != nil || len(resp.GetEvents().GetPages()) != inventory.SnapshotEvery {
		t.Fatalf("a command of %d inventory pages: %d events, %v", inventory.SnapshotEvery, len(resp.GetEvents().GetPages()), err)
	}

	proxy := func(domain string) string { return "http://" + m.ep.Domains[domain].Admin + "/stats/prometheus" }
	eventsvc, controlplane := "http://"+m.ep.EventServiceMetrics+"/metrics", "http://"+m.ep.ControlPlaneMetrics+"/metrics"
	if m.ep.EventServiceMetrics == "" || m.ep.ControlPlaneMetrics == "" {
		t.Fatalf("endpoints.json names no metrics endpoint of the event service or the control plane: %+v", m.ep)
	}
	type want struct {
		url, name string
		labels    map[string]string
		// min and max bound the value (a sum over the matching series);
		// max 0 is no bound.
		min, max float64
	}
	order := map[string]string{"domain": "order", "outcome": "ok"}
	wants := []want{
		// The proxies' command metrics: CreateOrder, SubmitPayment and
		// ConfirmPayment; CreateCustomer and the loyalty credit; the shipment.
		{proxy("order"), "angzarr_command_total", order, 3, 3},
		{proxy("order"), "angzarr_command_duration_seconds_count", order, 3, 3},
		{proxy("customer"), "angzarr_command_total", map[string]string{"domain": "customer", "outcome": "ok"}, 2, 2},
		{proxy("fulfillment"), "angzarr_command_total", map[string]string{"domain": "fulfillment", "outcome": "ok"}, 1, 1},
		{proxy("fulfillment"), "angzarr_command_duration_seconds_count", map[string]string{"domain": "fulfillment", "outcome": "ok"}, 1, 1},
		// The store.
		{eventsvc, "angzarr_events_stored_total", map[string]string{"domain": "order"}, 3, 3},
		{eventsvc, "angzarr_events_stored_total", map[string]string{"domain": "customer"}, 2, 2},
		{eventsvc, "angzarr_events_stored_total", map[string]string{"domain": "fulfillment"}, 1, 1},
		{eventsvc, "angzarr_events_stored_total", map[string]string{"domain": "inventory"}, inventory.SnapshotEvery, inventory.SnapshotEvery},
		// The loyalty credit loads CustomerCreated (a saga's command always
		// loads; the order's commands may find the aggregate in the filter's
		// cache instead). A redelivered saga command loads again.
		{eventsvc, "angzarr_events_loaded_total", map[string]string{"domain": "customer"}, 1, 0},
		{eventsvc, "angzarr_snapshots_stored_total", map[string]string{"domain": "inventory"}, 1, 1},
		// 3 order, 2 customer, 1 fulfillment, 1 inventory append.
		{eventsvc, "angzarr_storage_duration_seconds_count", map[string]string{"backend": "sqlite", "operation": "append", "outcome": "ok"}, 7, 7},
		{eventsvc, "angzarr_storage_duration_seconds_count", map[string]string{"backend": "sqlite", "operation": "load", "outcome": "ok"}, 2, 0},
		// The fan-out: every order entry to every order saga and the
		// projector, the shipment to the projector.
		{eventsvc, "angzarr_saga_duration_seconds_count", map[string]string{"subscriber": "fulfillment", "domain": "order", "outcome": "ok"}, 3, 3},
		{eventsvc, "angzarr_saga_duration_seconds_count", map[string]string{"subscriber": "loyalty-earn", "domain": "order", "outcome": "ok"}, 3, 3},
		{eventsvc, "angzarr_projector_duration_seconds_count", map[string]string{"subscriber": "order-summary", "domain": "order", "outcome": "ok"}, 3, 3},
		{eventsvc, "angzarr_projector_duration_seconds_count", map[string]string{"subscriber": "order-summary", "domain": "fulfillment", "outcome": "ok"}, 1, 1},
		{eventsvc, "angzarr_bus_publish_duration_seconds_count", map[string]string{"subscriber": "fulfillment", "kind": "saga", "domain": "order"}, 3, 3},
		{eventsvc, "angzarr_bus_publish_duration_seconds_count", map[string]string{"subscriber": "order-summary", "kind": "projector", "domain": "order"}, 3, 3},
		// One checkpoint commit per handled batch of entries.
		{eventsvc, "angzarr_positions_updated_total", map[string]string{"subscriber": "fulfillment", "domain": "order", "outcome": "ok"}, 1, 3},
		// The control plane applied the topology and configured the proxies.
		{controlplane, "angzarr_controlplane_snapshots_total", map[string]string{"result": "applied"}, 1, 0},
		{controlplane, "angzarr_controlplane_pushes_total", nil, 6, 0},
		{controlplane, "angzarr_controlplane_connected_nodes", nil, 6, 0},
	}
	// Values recorded as a delivery's checkpoint moves may land just after
	// caughtUp saw it: poll until every series is there.
	var problems []string
	bodies := map[string]string{}
	deadline := time.Now().Add(effectTimeout)
	for {
		problems = nil
		scraped := map[string][]sample{}
		for _, w := range wants {
			if _, ok := scraped[w.url]; !ok {
				s, body, err := scrape(ctx, w.url)
				if err != nil {
					t.Fatal(err)
				}
				scraped[w.url], bodies[w.url] = s, body
			}
			var sum float64
			n := 0
			for _, s := range scraped[w.url] {
				if s.matches(w.name, w.labels) {
					sum += s.value
					n++
				}
			}
			if n == 0 || sum < w.min || (w.max > 0 && sum > w.max) {
				problems = append(problems, fmt.Sprintf("%s%v at %s: %d series, sum %v, want %v..%v", w.name, w.labels, w.url, n, sum, w.min, w.max))
			}
		}
		if len(problems) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
	if len(problems) > 0 {
		// The series of the metrics checked, as scraped last.
		var lines []string
		for u, body := range bodies {
			for l := range strings.Lines(body) {
				for _, w := range wants {
					if w.url == u && strings.HasPrefix(l, strings.TrimSuffix(strings.TrimSuffix(w.name, "_count"), "_total")) {
						lines = append(lines, u+" "+strings.TrimSpace(l))
						break
					}
				}
			}
		}
		sort.Strings(lines)
		t.Fatalf("metrics:\n  %s\n\nscraped:\n%s", strings.Join(problems, "\n  "), strings.Join(lines, "\n"))
	}
}

func mustAny(t *testing.T, msg proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(msg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// sample is one series of an exposition: counters and gauges by their
// name, histograms as NAME_count and NAME_sum.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

func (s sample) matches(name string, labels map[string]string) bool {
	if s.name != name {
		return false
	}
	for k, v := range labels {
		if s.labels[k] != v {
			return false
		}
	}
	return true
}

// scrape GETs a Prometheus text exposition and parses it.
func scrape(ctx context.Context, url string) ([]sample, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("GET %s: %s %v", url, resp.Status, err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(b)))
	if err != nil {
		return nil, string(b), fmt.Errorf("%s: %w", url, err)
	}
	var out []sample
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch {
			case m.GetHistogram() != nil:
				out = append(out,
					sample{name + "_count", labels, float64(m.GetHistogram().GetSampleCount())},
					sample{name + "_sum", labels, m.GetHistogram().GetSampleSum()})
			case m.GetCounter() != nil:
				out = append(out, sample{name, labels, m.GetCounter().GetValue()})
			case m.GetGauge() != nil:
				out = append(out, sample{name, labels, m.GetGauge().GetValue()})
			case m.GetUntyped() != nil:
				out = append(out, sample{name, labels, m.GetUntyped().GetValue()})
			}
		}
	}
	return out, string(b), nil
}
