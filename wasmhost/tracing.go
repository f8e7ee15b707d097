package wasmhost

import (
	"context"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/angzarr-mesh/angzarr/internal/telemetry"

	"github.com/angzarr-mesh/angzarr/internal/wellknown"
)

// Tracing: the spans Envoy's tracing would create around the plugin, named
// the angzarr way.
//
//   - One SERVER span per downstream request, started from the W3C context
//     of its headers. Before proxy_on_request_headers the request's
//     traceparent/tracestate are rewritten to this span's context, so what
//     the plugin forwards into its callouts (the angzarr filter copies
//     them) makes them children of the request span.
//   - One CLIENT span for the upstream request (child of the request span;
//     its context is injected into the upstream headers).
//   - One CLIENT span per proxy_grpc_call / proxy_http_call: its parent is
//     the traceparent the plugin put in the callout's metadata, else the
//     request span of the stream that made the call; its context replaces
//     the callout's traceparent/tracestate.
//
// Only in wasmhost: the callout CLIENT spans and the rewriting of a
// callout's traceparent. Envoy makes no span for a Wasm callout (Context::
// grpcCall passes Tracing::NullSpan) and sends the metadata as the plugin
// left it, so in a mesh the callouts' server spans are children of the
// span the inbound request carried (the filter copies W3C and B3 headers).
// The request and upstream spans correspond to Envoy's own tracing of the
// inbound request (with B3 when the mesh uses Zipkin: wasmhost speaks W3C
// only).
//
// Every span carries the stream's angzarr.* properties (set by the plugin
// with proxy_set_property, read when the span ends) as domain, root,
// correlation_id — the attribute keys of the event service's spans — and
// the request span also outcome. With a provider that creates no spans
// (none installed, or noop) nothing of this runs and headers are left as
// they came.

// SpanNames names the spans. Paths not in a table get a generic name: a
// gRPC request "pkg.Svc/Method" (its path without the leading slash), any
// other request "HTTP <METHOD>"; a call "pkg.Svc/Method".
type SpanNames struct {
	// Requests maps a downstream request's :path to its server span's name.
	Requests map[string]string
	// Calls maps "pkg.Svc/Method" of the upstream request (the path the
	// plugin left) or of a callout to its client span's name.
	Calls map[string]string
}

// AngzarrSpanNames is angzarr's table, the span names of the seed's
// observability section: a command (Handle, HandleSync, Record) is
// aggregate.handle; the call to the business logic (the upstream request
// the filter rewrote, or a re-run by callout) aggregate.execute; a
// synchronous projector call aggregate.sync_projectors; a synchronous saga
// call saga.orchestrate, a synchronous process-manager step
// pm.orchestrate. The event store calls keep their gRPC names
// (angzarr.EventStore/Load, /Append); the event service's
// aggregate.load_events and aggregate.persist are their children.
func AngzarrSpanNames() *SpanNames {
	return &SpanNames{
		Requests: map[string]string{
			"/angzarr.BusinessCoordinator/Handle":     "aggregate.handle",
			"/angzarr.BusinessCoordinator/HandleSync": "aggregate.handle",
			"/angzarr.BusinessCoordinator/Record":     "aggregate.handle",
		},
		Calls: map[string]string{
			"angzarr.BusinessLogic/Handle": "aggregate.execute",
			"angzarr.Projector/HandleSync": "aggregate.sync_projectors",
			"angzarr.Saga/HandleSync":      "saga.orchestrate",
			// The event service running a process-manager step (CASCADE).
			"angzarr.ProcessManagerCoordinator/HandleSync": "pm.orchestrate",
		},
	}
}

// The stream properties the angzarr filter sets.
const (
	propDomain      = wellknown.PropertyDomain
	propRoot        = wellknown.PropertyRoot
	propCorrelation = wellknown.PropertyCorrelationID
	propOutcome     = wellknown.PropertyOutcome
)

// Span attribute keys: the event service's for the aggregate, the
// OpenTelemetry HTTP conventions for HTTP; gRPC spans use the RPC
// conventions of the semconv version otelgrpc follows (rpc.system.name,
// rpc.method "pkg.Svc/Method", rpc.response.status_code "OK",
// "FAILED_PRECONDITION", …), so the proxy's spans and the servers' can be
// queried alike.
const (
	attrDomain      = "domain"
	attrRoot        = "root"
	attrCorrelation = telemetry.CorrelationKey
	attrOutcome     = "outcome"
	attrHTTPMethod  = "http.request.method"
	attrHTTPStatus  = "http.response.status_code"
)

// grpcCodeNames are the canonical names of the gRPC status codes.
var grpcCodeNames = [...]string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
	"UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}

// grpcCodeName is code's canonical name ("CODE(n)" beyond the known ones).
func grpcCodeName(code int) string {
	if code >= 0 && code < len(grpcCodeNames) {
		return grpcCodeNames[code]
	}
	return "CODE(" + strconv.Itoa(code) + ")"
}

// tracerScope is the instrumentation scope of the host's spans and metrics.
const tracerScope = "github.com/angzarr-mesh/angzarr/wasmhost"

// tracing creates the host's spans; a nil *tracing is tracing off.
type tracing struct {
	tracer trace.Tracer
	names  *SpanNames
	prop   propagation.TextMapPropagator // extraction: W3C trace context + baggage
	inject propagation.TraceContext      // injection: traceparent/tracestate only
}

// newTracing returns nil when tp creates no spans: the no-op provider, or
// the global one while no SDK provider is installed (it is resolved when
// the Host is created).
func newTracing(tp trace.TracerProvider, names *SpanNames) *tracing {
	if !createsSpans(tp) {
		return nil
	}
	if names == nil {
		names = AngzarrSpanNames()
	}
	return &tracing{tracer: tp.Tracer(tracerScope), names: names, prop: telemetry.Propagator()}
}

func createsSpans(tp trace.TracerProvider) bool {
	switch tp.(type) {
	case nil, noop.TracerProvider, *noop.TracerProvider:
		return false
	case *sdktrace.TracerProvider:
		return true
	}
	// Another provider (the global one with nothing installed yet, or a
	// custom one): a span from an empty context tells. It is not ended, so
	// it is never exported.
	_, probe := tp.Tracer(tracerScope).Start(context.Background(), "wasmhost.probe")
	return probe.SpanContext().IsValid()
}

// headerCarrier lets the propagators read and write a headerMap.
type headerCarrier struct{ m *headerMap }

var _ propagation.TextMapCarrier = headerCarrier{}

func (c headerCarrier) Get(k string) string {
	v, _ := c.m.get(k)
	return v
}

func (c headerCarrier) Set(k, v string) { c.m.set(k, v) }

func (c headerCarrier) Keys() []string {
	out := make([]string, 0, len(c.m.kv))
	for _, kv := range c.m.kv {
		out = append(out, kv[0])
	}
	return out
}

// injectInto replaces the W3C trace headers of m with ctx's span context.
func (t *tracing) injectInto(ctx context.Context, m *headerMap) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	m.remove("tracestate") // the span's own tracestate, if any, is written back
	t.inject.Inject(ctx, headerCarrier{m})
}

// grpcPath splits "/pkg.Svc/Method" into service and method.
func grpcPath(path string) (service, method string, ok bool) {
	if len(path) < 4 || path[0] != '/' {
		return "", "", false
	}
	service, method, ok = strings.Cut(path[1:], "/")
	if !ok || service == "" || method == "" || strings.ContainsAny(method, "/?") {
		return "", "", false
	}
	return service, method, true
}

// requestName names a downstream request's span.
func (t *tracing) requestName(path, method string, isGRPC bool) string {
	if n, ok := t.names.Requests[path]; ok {
		return n
	}
	if isGRPC {
		if _, _, ok := grpcPath(path); ok {
			return path[1:]
		}
	}
	return "HTTP " + method
}

// callName names a client span: the upstream request or a callout.
func (t *tracing) callName(service, method string) string {
	full := service + "/" + method
	if n, ok := t.names.Calls[full]; ok {
		return n
	}
	return full
}

// startRequest starts the server span of a downstream request from the
// context its headers carry and rewrites its traceparent/tracestate to the
// span's context.
func (t *tracing) startRequest(hdrs *headerMap, isGRPC bool) (context.Context, trace.Span) {
	ctx := t.prop.Extract(context.Background(), headerCarrier{hdrs})
	path, _ := hdrs.get(":path")
	method, _ := hdrs.get(":method")
	ctx, span := t.tracer.Start(ctx, t.requestName(path, method, isGRPC), trace.WithSpanKind(trace.SpanKindServer))
	if span.IsRecording() {
		span.SetAttributes(callAttrs(path, method, isGRPC)...)
	}
	t.injectInto(ctx, hdrs)
	return ctx, span
}

// startCall starts a client span under parent for a request to path and
// writes its context into hdrs. Under a parent that is not sampled it
// starts none (nil) and writes the parent's context: the samplers the SDK
// configures from OTEL_TRACES_SAMPLER either follow the parent or decide by
// trace id, so nothing under it would be recorded, and an unsampled
// command (most, at a low ratio) should cost as little as tracing off.
func (t *tracing) startCall(parent context.Context, hdrs *headerMap, path, method string, isGRPC bool) trace.Span {
	if psc := trace.SpanContextFromContext(parent); psc.IsValid() && !psc.IsSampled() {
		t.injectInto(parent, hdrs)
		return nil
	}
	name := "HTTP " + method
	if service, m, ok := grpcPath(path); ok && isGRPC {
		name = t.callName(service, m)
	}
	ctx, span := t.tracer.Start(parent, name, trace.WithSpanKind(trace.SpanKindClient))
	if span.IsRecording() {
		span.SetAttributes(callAttrs(path, method, isGRPC)...)
	}
	t.injectInto(ctx, hdrs)
	return span
}

// startCallout starts the client span of a callout made by the plugin:
// under the traceparent of its metadata if it has a valid one, else under
// the request span of st (the effective stream, may be nil).
func (t *tracing) startCallout(st *stream, md *headerMap, path, method string, isGRPC bool) trace.Span {
	parent := context.Background()
	if st != nil && st.traceCtx != nil {
		parent = st.traceCtx
	}
	if _, ok := md.get("traceparent"); ok {
		parent = t.prop.Extract(parent, headerCarrier{md})
	}
	return t.startCall(parent, md, path, method, isGRPC)
}

func callAttrs(path, method string, isGRPC bool) []attribute.KeyValue {
	if service, m, ok := grpcPath(path); ok && isGRPC {
		return []attribute.KeyValue{semconv.RPCSystemNameGRPC, semconv.RPCMethod(service + "/" + m)}
	}
	return []attribute.KeyValue{attribute.String(attrHTTPMethod, method)}
}

// streamFacts are the stream's angzarr.* properties.
type streamFacts struct {
	domain, root, correlation, outcome string
	hasDomain, hasOutcome              bool
}

// facts reads the stream's properties (VM lock held).
func (s *stream) facts() streamFacts {
	var f streamFacts
	if s == nil || s.props == nil {
		return f
	}
	var v []byte
	if v, f.hasDomain = s.props[propDomain]; f.hasDomain {
		f.domain = string(v)
	}
	if v, f.hasOutcome = s.props[propOutcome]; f.hasOutcome {
		f.outcome = string(v)
	}
	f.root = string(s.props[propRoot])
	f.correlation = string(s.props[propCorrelation])
	return f
}

// attrs are the span attributes of the facts present.
func (f streamFacts) attrs(withOutcome bool) []attribute.KeyValue {
	var out []attribute.KeyValue
	if f.hasDomain {
		out = append(out, attribute.String(attrDomain, f.domain))
	}
	if f.root != "" {
		out = append(out, attribute.String(attrRoot, f.root))
	}
	if f.correlation != "" {
		out = append(out, attribute.String(attrCorrelation, f.correlation))
	}
	if withOutcome && f.hasOutcome {
		out = append(out, attribute.String(attrOutcome, f.outcome))
	}
	return out
}

// result is how a request or call ended, for its span's status.
type result struct {
	isGRPC   bool
	httpCode int    // 0: no response
	grpcCode int    // -1: none
	message  string // grpc-message or the failure
	failed   bool   // no complete response (reset, cancelled, connection failure)
}

// grpcCodeOf parses a grpc-status value, -1 when absent or malformed.
func grpcCodeOf(v string) int {
	if v == "" {
		return -1
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// endSpan ends span with r's status and the facts (attributes only on a
// recording span). server: 4xx are not errors of a server span.
func endSpan(span trace.Span, r result, f streamFacts, server bool) {
	if span.IsRecording() {
		attrs := f.attrs(server)
		if r.isGRPC && r.grpcCode >= 0 {
			attrs = append(attrs, semconv.RPCResponseStatusCode(grpcCodeName(r.grpcCode)))
		}
		if !r.isGRPC && r.httpCode > 0 {
			attrs = append(attrs, attribute.Int(attrHTTPStatus, r.httpCode))
		}
		span.SetAttributes(attrs...)
		switch {
		case r.failed:
			span.SetStatus(codes.Error, r.message)
		case r.isGRPC && r.grpcCode != 0:
			msg := r.message
			if r.grpcCode < 0 {
				msg = "no grpc-status"
			}
			span.SetStatus(codes.Error, msg)
		case !r.isGRPC && (r.httpCode >= 500 || (!server && r.httpCode >= 400)):
			span.SetStatus(codes.Error, "HTTP "+strconv.Itoa(r.httpCode))
		}
	}
	span.End()
}
