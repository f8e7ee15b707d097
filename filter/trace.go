package filter

// Trace context the filter carries from the client's request into its
// callouts. The filter creates no spans and links no OpenTelemetry code
// (module size): it copies the W3C headers, and Zipkin's B3 headers (the
// single b3 and the x-b3-* set, which Istio's Zipkin tracing uses), as
// strings, so every callout of a command is a child of the span the
// request arrived with, and the services it calls (the event service,
// business logic, projectors, sagas, the next domain's filter) continue
// that trace. Envoy itself makes no span for a Wasm callout (its gRPC
// calls use a null span), so in a mesh the callouts' server spans hang
// directly under the inbound request's span.
const (
	TraceparentHeader = "traceparent"
	TracestateHeader  = "tracestate"
	BaggageHeader     = "baggage"
)

// b3Headers are Zipkin's B3 propagation headers, copied when well formed.
var b3Headers = []string{"b3", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags"}

// maxB3Header bounds a B3 value (the single header is at most 68 bytes).
const maxB3Header = 128

// maxTraceHeader bounds a tracestate or baggage value the filter copies
// (W3C baggage allows 8192 bytes; tracestate is far smaller).
const maxTraceHeader = 8192

// readTraceHeaders keeps the request's trace context for the callouts. A
// malformed traceparent is dropped with its tracestate (W3C Trace Context
// §4.3: the receiver starts a new trace); baggage does not depend on it.
func (s *Stream) readTraceHeaders() {
	s.trace = s.trace[:0]
	h := s.host()
	if tp, ok := h.GetHeader(RequestHeaders, TraceparentHeader); ok && validTraceparent(tp) {
		s.trace = append(s.trace, [2]string{TraceparentHeader, tp})
		if ts, ok := h.GetHeader(RequestHeaders, TracestateHeader); ok && ts != "" && len(ts) <= maxTraceHeader {
			s.trace = append(s.trace, [2]string{TracestateHeader, ts})
		}
	}
	if bg, ok := h.GetHeader(RequestHeaders, BaggageHeader); ok && bg != "" && len(bg) <= maxTraceHeader {
		s.trace = append(s.trace, [2]string{BaggageHeader, bg})
	}
	for _, k := range b3Headers {
		if v, ok := h.GetHeader(RequestHeaders, k); ok && validB3(v) {
			s.trace = append(s.trace, [2]string{k, v})
		}
	}
}

// validB3 accepts a B3 value of hex digits, dashes and the sampling words
// (b3: {traceid}-{spanid}[-{sampled}[-{parent}]], "0", "1", "d"; x-b3-*:
// hex ids, "0"/"1"/"true"/"false"), bounded; anything else is dropped.
func validB3(v string) bool {
	if v == "" || len(v) > maxB3Header {
		return false
	}
	if v == "true" || v == "false" {
		return true
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') && c != '-' {
			return false
		}
	}
	return true
}

// withTrace returns md followed by the stream's trace context (md itself
// is not modified).
func (s *Stream) withTrace(md [][2]string) [][2]string {
	if len(s.trace) == 0 {
		return md
	}
	out := make([][2]string, 0, len(md)+len(s.trace))
	return append(append(out, md...), s.trace...)
}

// validTraceparent checks the W3C traceparent form
// version-traceid-parentid-flags: lowercase hex fields of 2, 32, 16 and 2
// digits, version not ff, ids not all zero; version 00 has exactly these
// fields, a later version may append "-..." (§3.2.4).
func validTraceparent(v string) bool {
	if len(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return false
	}
	if !lowerHex(v[0:2]) || !lowerHex(v[3:35]) || !lowerHex(v[36:52]) || !lowerHex(v[53:55]) {
		return false
	}
	switch {
	case v[0:2] == "ff", allZero(v[3:35]), allZero(v[36:52]):
		return false
	case v[0:2] == "00":
		return len(v) == 55
	default:
		return len(v) == 55 || v[55] == '-'
	}
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func allZero(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '0' {
			return false
		}
	}
	return true
}
