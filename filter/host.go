package filter

import (
	"time"

	"github.com/angzarr-mesh/angzarr/internal/proxywasm"
)

// The filter names the proxy-wasm ABI's numbers it uses after their role
// in a stream; the numbers themselves are defined once, in
// internal/proxywasm, which wasmhost shares.

// MapType is a proxy-wasm header map (proxy_map_type_t).
type MapType = proxywasm.MapType

// Header maps used by the filter.
const (
	RequestHeaders   = proxywasm.MapRequestHeaders
	RequestTrailers  = proxywasm.MapRequestTrailers
	ResponseHeaders  = proxywasm.MapResponseHeaders
	ResponseTrailers = proxywasm.MapResponseTrailers
	// GrpcTrailingMetadata is a callout's trailers, readable during
	// proxy_on_grpc_receive_trailing_metadata.
	GrpcTrailingMetadata = proxywasm.MapGRPCTrailingMetadata
)

// BufferType is a proxy-wasm buffer (proxy_buffer_type_t).
type BufferType = proxywasm.BufferType

// Buffers used by the filter.
const (
	RequestBody      = proxywasm.BufferRequestBody
	ResponseBody     = proxywasm.BufferResponseBody
	GrpcReceive      = proxywasm.BufferGRPCReceive
	PluginConfigBody = proxywasm.BufferPluginConfig
)

// StreamType is a direction of an HTTP stream (proxy_stream_type_t).
type StreamType = proxywasm.StreamType

// Stream directions.
const (
	StreamRequest  = proxywasm.StreamRequest
	StreamResponse = proxywasm.StreamResponse
)

// Action is what a stream callback tells the host (proxy_action_t).
type Action = proxywasm.Action

// Actions.
const (
	// Continue lets the stream proceed.
	Continue = proxywasm.ActionContinue
	// Pause stops the stream (and buffers the body in body callbacks) until
	// the filter calls ContinueStream or sends a local reply.
	Pause = proxywasm.ActionPause
	// StopNoBuffer stops a body callback without buffering the data
	// (proxy-wasm's StopIterationNoBuffer): the data is dropped.
	StopNoBuffer = proxywasm.ActionDataStopNoBuffer
)

// LogLevel is a proxy-wasm log level.
type LogLevel = proxywasm.LogLevel

// Log levels.
const (
	LogTrace    = proxywasm.LogTrace
	LogDebug    = proxywasm.LogDebug
	LogInfo     = proxywasm.LogInfo
	LogWarn     = proxywasm.LogWarn
	LogError    = proxywasm.LogError
	LogCritical = proxywasm.LogCritical
)

// MetricType is a proxy-wasm metric type.
type MetricType = proxywasm.MetricType

// Metric types.
const (
	MetricCounter   = proxywasm.MetricCounter
	MetricGauge     = proxywasm.MetricGauge
	MetricHistogram = proxywasm.MetricHistogram
)

// Host is what the filter needs from the proxy. Header, buffer, reply and
// continue calls act on the effective context: the stream whose callback is
// running, or the one selected with SetEffectiveContext while a callout's
// result is delivered to the root context.
type Host interface {
	// Log writes one line through proxy_log.
	Log(level LogLevel, msg string)
	// Now is the host's wall clock.
	Now() time.Time

	// GetHeader returns a header's value and whether it is present.
	GetHeader(m MapType, key string) (string, bool)
	// ReplaceHeader sets a header, adding it when absent.
	ReplaceHeader(m MapType, key, value string) error
	// RemoveHeader deletes a header.
	RemoveHeader(m MapType, key string) error

	// GetBuffer returns up to size bytes of a buffer from start.
	GetBuffer(b BufferType, start, size int) ([]byte, error)
	// SetBuffer replaces the whole buffer with data.
	SetBuffer(b BufferType, data []byte) error

	// SendLocalReply answers the stream's client without the upstream:
	// for gRPC a trailers-only response with grpcStatus and grpc-message =
	// message, plus extra headers.
	SendLocalReply(grpcStatus Code, message string, headers [][2]string) error
	// ContinueStream resumes a paused direction of the stream.
	ContinueStream(s StreamType) error

	// GrpcCall starts a unary gRPC callout to cluster with initial metadata
	// (may be nil); the result arrives on the root context with the
	// returned token. authority is the call's :authority ("": Envoy sends
	// the cluster name).
	GrpcCall(cluster, authority, service, method string, metadata [][2]string, message []byte, timeout time.Duration) (uint32, error)
	// SetEffectiveContext selects the stream the next calls act on. It
	// fails (ErrStreamGone) when the stream is gone.
	SetEffectiveContext(contextID uint32) error

	// DefineMetric creates (or finds) a metric and returns its id.
	DefineMetric(t MetricType, name string) (uint32, error)
	// IncrementMetric adds delta to a counter or gauge.
	IncrementMetric(id uint32, delta int64) error
	// RecordMetric records a histogram value (or sets a gauge).
	RecordMetric(id uint32, value uint64) error

	// SetProperty stores a value on the effective stream
	// (proxy_set_property); it fails on the root context. Envoy keeps it
	// as the stream's filter state "wasm.<path>"; angzarr proxy reads the
	// filter's angzarr.* properties for its spans and metrics
	// (properties.go).
	SetProperty(path, value string) error
}
