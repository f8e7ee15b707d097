package wasmhost

// The numeric vocabulary of the proxy-wasm ABI 0.2.1 (see the spec's
// "Built-in types"). Values are fixed by the ABI; names follow the spec.

// status is a proxy_status_t returned by every host function.
type status uint32

const (
	statusOK                  status = 0
	statusNotFound            status = 1
	statusBadArgument         status = 2
	statusSerializationFailed status = 3
	statusParseFailure        status = 4
	statusInvalidMemoryAccess status = 6
	statusEmpty               status = 7
	statusCASMismatch         status = 8
	statusInternalFailure     status = 10
	statusBrokenConnection    status = 11
	statusUnimplemented       status = 12
)

// bufferType is a proxy_buffer_type_t.
type bufferType uint32

const (
	bufferRequestBody      bufferType = 0
	bufferResponseBody     bufferType = 1
	bufferDownstreamData   bufferType = 2
	bufferUpstreamData     bufferType = 3
	bufferHTTPCallResponse bufferType = 4
	bufferGRPCReceive      bufferType = 5
	bufferVMConfiguration  bufferType = 6
	bufferPluginConfig     bufferType = 7
	bufferCallData         bufferType = 8
	bufferTypeMax                     = bufferCallData
)

// mapType is a proxy_map_type_t.
type mapType uint32

const (
	mapRequestHeaders           mapType = 0
	mapRequestTrailers          mapType = 1
	mapResponseHeaders          mapType = 2
	mapResponseTrailers         mapType = 3
	mapGRPCInitialMetadata      mapType = 4
	mapGRPCTrailingMetadata     mapType = 5
	mapHTTPCallResponseHeaders  mapType = 6
	mapHTTPCallResponseTrailers mapType = 7
	mapTypeMax                          = mapHTTPCallResponseTrailers
)

// streamType is a proxy_stream_type_t.
type streamType uint32

const (
	streamRequest    streamType = 0
	streamResponse   streamType = 1
	streamDownstream streamType = 2
	streamUpstream   streamType = 3
	streamTypeMax               = streamUpstream
)

// Filter results returned by the stream callbacks. Headers: 0 continue,
// 1 stop iteration (converted to "stop all" as cpp-host does for ABI 0.2.x),
// 2 continue-and-don't-end-stream (treated as continue), 3 and 4 stop all.
// Bodies: 0 continue, 1 stop and buffer, 2 stop and watermark (buffers too),
// 3 stop without buffering (the chunk is dropped). Trailers: 0 continue,
// anything else stop.
const (
	actionContinue            = 0
	actionPause               = 1
	actionContinueDontEnd     = 2
	dataStopIterationNoBuffer = 3
)

// metricType is a proxy_metric_type_t.
type metricType uint32

const (
	metricCounter   metricType = 0
	metricGauge     metricType = 1
	metricHistogram metricType = 2
	metricTypeMask             = 0x3
	metricIDStep               = 0x4
)

// logLevel is a proxy_log_level_t.
type logLevel uint32

const (
	logTrace    logLevel = 0
	logDebug    logLevel = 1
	logInfo     logLevel = 2
	logWarn     logLevel = 3
	logError    logLevel = 4
	logCritical logLevel = 5
)

// WASI errno values used by the host's WASI implementation.
const (
	errnoSuccess    = 0
	errnoBadf       = 8
	errnoFault      = 21
	errnoInval      = 28
	errnoNoent      = 44
	errnoNosys      = 52
	errnoNotdir     = 20
	errnoNotsup     = 58
	errnoNotcapable = 76
)
