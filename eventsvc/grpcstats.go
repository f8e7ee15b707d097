package eventsvc

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/semconv/v1.43.0/rpcconv"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

// The gRPC server's telemetry: otelgrpc's server handler makes the spans;
// rpc.server.call.duration is recorded here, the same instrument (name,
// unit, buckets, instrumentation scope) with the same attributes as
// otelgrpc records it, from attribute sets made once per method and status
// code. otelgrpc builds, sorts and hashes a new attribute set on every
// call, about a tenth of the CPU of a one-event Append through the server
// on the benchmark (BenchmarkEventService).
// The sets are made for the methods the server serves (serve); a call to
// any other method ends before the stats handler hears of its end
// (grpc.Server.handleStream), so nothing is recorded for it. Should one
// be, its rpc.method is "_OTHER" (the semantic conventions' value for a
// method the instrumentation does not know): no label is made from the
// caller's path.

// otherMethod is rpc.method for a method the server does not serve.
const otherMethod = "_OTHER"

// maxCode is the largest gRPC status code (Unauthenticated).
const maxCode = codes.Unauthenticated

// codeSets are a method's record options by status code (in slices, so
// that passing them allocates nothing).
type codeSets struct {
	method string
	byCode [maxCode + 1][]metric.RecordOption
}

// serverStats is the event service's gRPC stats handler.
type serverStats struct {
	spans    stats.Handler // otelgrpc's, without metrics
	record   func(*stats.RPCTagInfo) bool
	duration metric.Float64Histogram
	// methods holds the record options of each served method, keyed by
	// its full name (/pkg.Service/Method); set by serve before the server
	// serves, read without locks after.
	methods atomic.Pointer[map[string]*codeSets]
	other   *codeSets
	// passAll: otelgrpc records the metrics too (old conventions); every
	// event goes to it and nothing is recorded here.
	passAll bool
}

// setsKey is the context key of a call's codeSets.
type setsKey struct{}

// newServerStats returns the stats handler: spans from tp with otelgrpc's
// options, the duration metric from mp, neither for the calls record
// refuses. When OTEL_SEMCONV_STABILITY_OPT_IN asks otelgrpc for the old
// RPC conventions (rpc/old, rpc/dup) otelgrpc records its metrics itself.
func newServerStats(mp metric.MeterProvider, record func(*stats.RPCTagInfo) bool, opts ...otelgrpc.Option) (*serverStats, error) {
	if oldRPCConventions() {
		return &serverStats{spans: otelgrpc.NewServerHandler(append(opts, otelgrpc.WithMeterProvider(mp), otelgrpc.WithFilter(record))...), passAll: true}, nil
	}
	meter := mp.Meter(otelgrpc.ScopeName, metric.WithInstrumentationVersion(otelgrpc.Version), metric.WithSchemaURL(semconv.SchemaURL))
	// otelgrpc's buckets (NewServerHandler).
	d, err := rpcconv.NewServerCallDuration(meter, metric.WithExplicitBucketBoundaries(
		0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10))
	if err != nil {
		return nil, err
	}
	h := &serverStats{
		spans:    otelgrpc.NewServerHandler(append(opts, otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()), otelgrpc.WithFilter(record))...),
		record:   record,
		duration: d.Inst(),
		other:    methodSets(otherMethod),
	}
	return h, nil
}

// oldRPCConventions reports whether OTEL_SEMCONV_STABILITY_OPT_IN names
// rpc/old or rpc/dup, as otelgrpc reads it.
func oldRPCConventions() bool {
	for p := range strings.SplitSeq(os.Getenv("OTEL_SEMCONV_STABILITY_OPT_IN"), ",") {
		if p = strings.TrimSpace(p); p == "rpc/old" || p == "rpc/dup" {
			return true
		}
	}
	return false
}

// serve makes the attribute sets of the methods g serves; call it after
// every service is registered, before g serves.
func (h *serverStats) serve(g *grpc.Server) {
	m := map[string]*codeSets{}
	for svc, info := range g.GetServiceInfo() {
		for _, mi := range info.Methods {
			full := "/" + svc + "/" + mi.Name
			m[full] = methodSets(full[1:])
		}
	}
	h.methods.Store(&m)
}

// methodSets makes the record options of a method for every status code,
// with otelgrpc's attributes: rpc.method, rpc.system.name,
// rpc.response.status_code and, for the codes that are a server's errors,
// error.type.
func methodSets(method string) *codeSets {
	s := codeSets{method: method}
	for c := codes.OK; c <= maxCode; c++ {
		s.byCode[c] = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(callAttributes(method, c)...))}
	}
	return &s
}

func callAttributes(method string, c codes.Code) []attribute.KeyValue {
	attrs := []attribute.KeyValue{semconv.RPCMethod(method), semconv.RPCSystemNameGRPC, semconv.RPCResponseStatusCode(codeName(c))}
	if serverError(c) {
		attrs = append(attrs, semconv.ErrorTypeKey.String(codeName(c)))
	}
	return attrs
}

// serverError reports whether a status code is a server's error
// (otelgrpc's serverStatus).
func serverError(c codes.Code) bool {
	switch c {
	case codes.Unknown, codes.DeadlineExceeded, codes.Unimplemented, codes.Internal, codes.Unavailable, codes.DataLoss:
		return true
	}
	return false
}

// codeNames are the status codes' canonical names (otelgrpc's
// canonicalString).
var codeNames = [maxCode + 1]string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
	"UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}

// codeName is a status code's canonical name.
func codeName(c codes.Code) string {
	if c <= maxCode {
		return codeNames[c]
	}
	return "CODE(" + strconv.FormatUint(uint64(c), 10) + ")"
}

// TagRPC implements stats.Handler.
func (h *serverStats) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	ctx = h.spans.TagRPC(ctx, info)
	if h.passAll || !h.record(info) {
		return ctx
	}
	sets := h.other
	if m := h.methods.Load(); m != nil {
		if s, ok := (*m)[info.FullMethodName]; ok {
			sets = s
		}
	}
	return context.WithValue(ctx, setsKey{}, sets)
}

// HandleRPC implements stats.Handler. otelgrpc's server handler acts only
// on InHeader (the span's server address) and End (the span's status and
// end); the other events are not handed to it.
func (h *serverStats) HandleRPC(ctx context.Context, rs stats.RPCStats) {
	if h.passAll {
		h.spans.HandleRPC(ctx, rs)
		return
	}
	switch rs := rs.(type) {
	case *stats.InHeader:
		h.spans.HandleRPC(ctx, rs)
	case *stats.End:
		h.spans.HandleRPC(ctx, rs)
		sets, ok := ctx.Value(setsKey{}).(*codeSets)
		if !ok || !h.duration.Enabled(ctx) {
			return
		}
		c := status.Code(rs.Error)
		var opts []metric.RecordOption
		if c <= maxCode {
			opts = sets.byCode[c]
		} else { // not a gRPC code: never sent by this server's handlers
			opts = []metric.RecordOption{metric.WithAttributes(callAttributes(sets.method, c)...)}
		}
		h.duration.Record(ctx, rs.EndTime.Sub(rs.BeginTime).Seconds(), opts...)
	}
}

// TagConn implements stats.Handler.
func (h *serverStats) TagConn(ctx context.Context, info *stats.ConnTagInfo) context.Context {
	return h.spans.TagConn(ctx, info)
}

// HandleConn implements stats.Handler.
func (h *serverStats) HandleConn(ctx context.Context, s stats.ConnStats) {
	h.spans.HandleConn(ctx, s)
}
