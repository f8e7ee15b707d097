package filter

import "time"

// MapType is a proxy-wasm header map (proxy_map_type_t).
type MapType uint32

// Header maps used by the filter.
const (
	RequestHeaders   MapType = 0
	RequestTrailers  MapType = 1
	ResponseHeaders  MapType = 2
	ResponseTrailers MapType = 3
)

// BufferType is a proxy-wasm buffer (proxy_buffer_type_t).
type BufferType uint32

// Buffers used by the filter.
const (
	RequestBody      BufferType = 0
	ResponseBody     BufferType = 1
	GrpcReceive      BufferType = 5
	PluginConfigBody BufferType = 7
)

// StreamType is a direction of an HTTP stream (proxy_stream_type_t).
type StreamType uint32

// Stream directions.
const (
	StreamRequest  StreamType = 0
	StreamResponse StreamType = 1
)

// Action is what a stream callback tells the host (proxy_action_t).
type Action uint32

// Actions.
const (
	// Continue lets the stream proceed.
	Continue Action = 0
	// Pause stops the stream (and buffers the body in body callbacks) until
	// the filter calls ContinueStream or sends a local reply.
	Pause Action = 1
)

// LogLevel is a proxy-wasm log level.
type LogLevel uint32

// Log levels.
const (
	LogTrace LogLevel = iota
	LogDebug
	LogInfo
	LogWarn
	LogError
	LogCritical
)

// MetricType is a proxy-wasm metric type.
type MetricType uint32

// Metric types.
const (
	MetricCounter   MetricType = 0
	MetricGauge     MetricType = 1
	MetricHistogram MetricType = 2
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
	// returned token.
	GrpcCall(cluster, service, method string, metadata [][2]string, message []byte, timeout time.Duration) (uint32, error)
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
