package proxywasm

import "strconv"

// Status is a proxy_status_t (the spec's WasmResult), returned by every
// host function.
type Status uint32

// Statuses. 5 (BAD_EXPRESSION) and 9 (RESULT_MISMATCH) exist in the spec
// but no ABI 0.2.1 host function of Envoy returns them.
const (
	StatusOK                   Status = 0
	StatusNotFound             Status = 1
	StatusBadArgument          Status = 2
	StatusSerializationFailure Status = 3
	StatusParseFailure         Status = 4
	StatusInvalidMemoryAccess  Status = 6
	StatusEmpty                Status = 7
	StatusCASMismatch          Status = 8
	StatusInternalFailure      Status = 10
	StatusBrokenConnection     Status = 11
	StatusUnimplemented        Status = 12
)

var statusNames = [...]string{
	StatusOK: "OK", StatusNotFound: "NOT_FOUND", StatusBadArgument: "BAD_ARGUMENT",
	StatusSerializationFailure: "SERIALIZATION_FAILURE", StatusParseFailure: "PARSE_FAILURE",
	StatusInvalidMemoryAccess: "INVALID_MEMORY_ACCESS", StatusEmpty: "EMPTY",
	StatusCASMismatch: "CAS_MISMATCH", StatusInternalFailure: "INTERNAL_FAILURE",
	StatusBrokenConnection: "BROKEN_CONNECTION", StatusUnimplemented: "UNIMPLEMENTED",
}

// String is the status's name in the spec, or its number.
func (s Status) String() string {
	if int(s) < len(statusNames) && statusNames[s] != "" {
		return statusNames[s]
	}
	return "status " + strconv.FormatUint(uint64(s), 10)
}

// BufferType is a proxy_buffer_type_t.
type BufferType uint32

// Buffer types.
const (
	BufferRequestBody      BufferType = 0
	BufferResponseBody     BufferType = 1
	BufferDownstreamData   BufferType = 2
	BufferUpstreamData     BufferType = 3
	BufferHTTPCallResponse BufferType = 4
	BufferGRPCReceive      BufferType = 5
	BufferVMConfiguration  BufferType = 6
	BufferPluginConfig     BufferType = 7
	BufferCallData         BufferType = 8
	// BufferTypeMax is the largest buffer type.
	BufferTypeMax = BufferCallData
)

// MapType is a proxy_map_type_t.
type MapType uint32

// Map types.
const (
	MapRequestHeaders           MapType = 0
	MapRequestTrailers          MapType = 1
	MapResponseHeaders          MapType = 2
	MapResponseTrailers         MapType = 3
	MapGRPCInitialMetadata      MapType = 4
	MapGRPCTrailingMetadata     MapType = 5
	MapHTTPCallResponseHeaders  MapType = 6
	MapHTTPCallResponseTrailers MapType = 7
	// MapTypeMax is the largest map type.
	MapTypeMax = MapHTTPCallResponseTrailers
)

// StreamType is a proxy_stream_type_t.
type StreamType uint32

// Stream types.
const (
	StreamRequest    StreamType = 0
	StreamResponse   StreamType = 1
	StreamDownstream StreamType = 2
	StreamUpstream   StreamType = 3
	// StreamTypeMax is the largest stream type.
	StreamTypeMax = StreamUpstream
)

// Action is what a stream callback returns (proxy_action_t, with the
// extra values proxy-wasm-cpp-host reads for headers and bodies).
//
// Headers: 0 continue, 1 stop iteration (cpp-host turns it into "stop all
// iteration" for ABI 0.2.x), 2 continue and do not end the stream, 3 and
// 4 stop all. Bodies: 0 continue, 1 stop and buffer, 2 stop and
// watermark, 3 stop without buffering. Trailers: 0 continue, anything
// else stop.
type Action uint32

// Actions.
const (
	ActionContinue Action = 0
	// ActionPause is the spec's PAUSE: stop iteration (headers) or stop
	// and buffer (bodies).
	ActionPause Action = 1
	// ActionContinueDontEnd is FilterHeadersStatus ContinueAndDontEndStream.
	ActionContinueDontEnd Action = 2
	// ActionDataStopNoBuffer is FilterDataStatus StopIterationNoBuffer:
	// the body chunk is dropped.
	ActionDataStopNoBuffer Action = 3
)

// LogLevel is a proxy_log_level_t.
type LogLevel uint32

// Log levels.
const (
	LogTrace    LogLevel = 0
	LogDebug    LogLevel = 1
	LogInfo     LogLevel = 2
	LogWarn     LogLevel = 3
	LogError    LogLevel = 4
	LogCritical LogLevel = 5
)

// MetricType is a proxy_metric_type_t.
type MetricType uint32

// Metric types.
const (
	MetricCounter   MetricType = 0
	MetricGauge     MetricType = 1
	MetricHistogram MetricType = 2
)
