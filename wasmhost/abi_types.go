package wasmhost

import "github.com/angzarr-mesh/angzarr/internal/proxywasm"

// The ABI's numbers are defined once, in internal/proxywasm. The stream
// callbacks' results are handled as raw uint32 in proxy.go; these are
// those results.
const (
	actionContinue            = uint32(proxywasm.ActionContinue)
	actionContinueDontEnd     = uint32(proxywasm.ActionContinueDontEnd)
	dataStopIterationNoBuffer = uint32(proxywasm.ActionDataStopNoBuffer)
	// dataStopIterationAndBuffer is proxy-wasm's Pause of a body callback
	// (cpp-host FilterDataStatus::StopIterationAndBuffer).
	dataStopIterationAndBuffer = uint32(proxywasm.ActionPause)
)
