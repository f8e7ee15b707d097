package wasmhost

import "github.com/angzarr-mesh/angzarr/internal/proxywasm"

// The ABI's numbers are defined once, in internal/proxywasm. These short
// names remain only for the files being rewritten with the HTTP/2 stack
// (proxy.go, stream.go, callout.go, issue 16); new code uses proxywasm
// directly, and the names go when those files do.
type (
	mapType    = proxywasm.MapType
	streamType = proxywasm.StreamType
)

const (
	statusBrokenConnection = proxywasm.StatusBrokenConnection

	mapRequestHeaders           = proxywasm.MapRequestHeaders
	mapRequestTrailers          = proxywasm.MapRequestTrailers
	mapResponseHeaders          = proxywasm.MapResponseHeaders
	mapResponseTrailers         = proxywasm.MapResponseTrailers
	mapGRPCInitialMetadata      = proxywasm.MapGRPCInitialMetadata
	mapGRPCTrailingMetadata     = proxywasm.MapGRPCTrailingMetadata
	mapHTTPCallResponseHeaders  = proxywasm.MapHTTPCallResponseHeaders
	mapHTTPCallResponseTrailers = proxywasm.MapHTTPCallResponseTrailers

	streamRequest  = proxywasm.StreamRequest
	streamResponse = proxywasm.StreamResponse

	// The callbacks' results are handled as raw uint32 there.
	actionContinue            = uint32(proxywasm.ActionContinue)
	actionContinueDontEnd     = uint32(proxywasm.ActionContinueDontEnd)
	dataStopIterationNoBuffer = uint32(proxywasm.ActionDataStopNoBuffer)
)
