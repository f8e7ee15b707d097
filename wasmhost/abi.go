package wasmhost

import (
	"context"

	"github.com/angzarr-mesh/angzarr/internal/proxywasm"
	"github.com/tetratelabs/wazero/api"
)

// hostFunc is one function the host exports to modules: its import module
// and name, its Wasm signature, and its Go implementation. impl runs with
// the VM lock held, on the goroutine that called into the module.
type hostFunc struct {
	module  string
	name    string
	params  []api.ValueType
	results []api.ValueType
	impl    func(v *vm, stack []uint64)
}

func (f *hostFunc) fullName() string { return f.module + "." + f.name }

const (
	moduleEnv          = "env"
	moduleWASI         = "wasi_snapshot_preview1"
	moduleWASIUnstable = "wasi_unstable"
)

var (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

// sig returns n i32 parameters.
func sig(n int) []api.ValueType {
	p := make([]api.ValueType, n)
	for i := range p {
		p[i] = i32
	}
	return p
}

var ret32 = []api.ValueType{api.ValueTypeI32}

// abiFunc is a proxy-wasm host function's Go implementation: it reads its
// arguments from the stack and returns the proxy_status_t, which becomes
// its i32 result (wazero's WASI functions return their errno the same way).
type abiFunc func(v *vm, stack []uint64) proxywasm.Status

// envFunc declares a proxy-wasm host function in module env: n i32
// parameters, one i32 (status) result.
func envFunc(name string, n int, impl abiFunc) hostFunc {
	return envFuncSig(name, sig(n), impl)
}

// envFuncSig is envFunc with explicit parameter types.
func envFuncSig(name string, params []api.ValueType, impl abiFunc) hostFunc {
	return hostFunc{module: moduleEnv, name: name, params: params, results: ret32, impl: func(v *vm, stack []uint64) {
		stack[0] = uint64(impl(v, stack))
	}}
}

// envFunctions lists the proxy-wasm ABI 0.2.1 host functions (Envoy's
// FOR_ALL_HOST_FUNCTIONS plus the 0.2.x-specific ones) and the two
// emscripten helpers Envoy also provides.
func envFunctions() []hostFunc {
	return []hostFunc{
		envFunc("proxy_log", 3, abiLog),
		envFunc("proxy_get_log_level", 1, abiGetLogLevel),
		envFunc("proxy_get_status", 3, abiGetStatus),
		envFunc("proxy_set_property", 4, abiSetProperty),
		envFunc("proxy_get_property", 4, abiGetProperty),
		envFunc("proxy_continue_stream", 1, abiContinueStream),
		envFunc("proxy_close_stream", 1, abiCloseStream),
		envFunc("proxy_send_local_response", 8, abiSendLocalResponse),
		envFunc("proxy_get_shared_data", 5, abiGetSharedData),
		envFunc("proxy_set_shared_data", 5, abiSetSharedData),
		envFunc("proxy_register_shared_queue", 3, abiRegisterSharedQueue),
		envFunc("proxy_resolve_shared_queue", 5, abiResolveSharedQueue),
		envFunc("proxy_dequeue_shared_queue", 3, abiDequeueSharedQueue),
		envFunc("proxy_enqueue_shared_queue", 3, abiEnqueueSharedQueue),
		envFunc("proxy_get_header_map_value", 5, abiGetHeaderMapValue),
		envFunc("proxy_add_header_map_value", 5, abiAddHeaderMapValue),
		envFunc("proxy_replace_header_map_value", 5, abiReplaceHeaderMapValue),
		envFunc("proxy_remove_header_map_value", 3, abiRemoveHeaderMapValue),
		envFunc("proxy_get_header_map_pairs", 3, abiGetHeaderMapPairs),
		envFunc("proxy_set_header_map_pairs", 3, abiSetHeaderMapPairs),
		envFunc("proxy_get_header_map_size", 2, abiGetHeaderMapSize),
		envFunc("proxy_get_buffer_status", 3, abiGetBufferStatus),
		envFunc("proxy_get_buffer_bytes", 5, abiGetBufferBytes),
		envFunc("proxy_set_buffer_bytes", 5, abiSetBufferBytes),
		envFunc("proxy_http_call", 10, abiHTTPCall),
		envFunc("proxy_grpc_call", 12, abiGRPCCall),
		envFunc("proxy_grpc_stream", 9, abiGRPCStream),
		envFunc("proxy_grpc_close", 1, abiGRPCClose),
		envFunc("proxy_grpc_cancel", 1, abiGRPCCancel),
		envFunc("proxy_grpc_send", 4, abiGRPCSend),
		envFunc("proxy_set_tick_period_milliseconds", 1, abiSetTickPeriod),
		envFunc("proxy_get_current_time_nanoseconds", 1, abiGetCurrentTime),
		envFunc("proxy_define_metric", 4, abiDefineMetric),
		envFuncSig("proxy_increment_metric", []api.ValueType{i32, i64}, abiIncrementMetric),
		envFuncSig("proxy_record_metric", []api.ValueType{i32, i64}, abiRecordMetric),
		envFunc("proxy_get_metric", 2, abiGetMetric),
		envFunc("proxy_set_effective_context", 1, abiSetEffectiveContext),
		envFunc("proxy_done", 0, abiDone),
		envFunc("proxy_call_foreign_function", 6, abiCallForeignFunction),
		{module: moduleEnv, name: "emscripten_notify_memory_growth", params: sig(1), impl: func(*vm, []uint64) {}},
		{module: moduleEnv, name: "pthread_equal", params: sig(2), results: ret32, impl: func(_ *vm, s []uint64) {
			if uint32(s[0]) == uint32(s[1]) {
				s[0] = 1
			} else {
				s[0] = 0
			}
		}},
	}
}

// abi021Only lists host functions only modules exporting
// proxy_abi_version_0_2_1 may import.
var abi021Only = map[string]bool{"proxy_get_log_level": true}

// vmKey is the context key under which calls into a module carry their *vm.
type vmKey struct{}

func vmFrom(ctx context.Context) *vm { return ctx.Value(vmKey{}).(*vm) }

// goFunc wraps a hostFunc for wazero, enforcing the allow-list of the
// current phase: a call outside it traps, as Envoy's restricted callbacks do.
func goFunc(f hostFunc, allowedInInit, allowedInAlloc bool) api.GoModuleFunction {
	name := f.fullName()
	impl := f.impl
	return api.GoModuleFunc(func(ctx context.Context, _ api.Module, stack []uint64) {
		v := vmFrom(ctx)
		switch v.phase {
		case phaseInitialize:
			if !allowedInInit {
				panic(&restrictedCallError{name: name, phase: "_initialize"})
			}
		case phaseAllocate:
			if !allowedInAlloc {
				panic(&restrictedCallError{name: name, phase: "memory allocation"})
			}
		}
		impl(v, stack)
	})
}
