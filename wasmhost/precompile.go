package wasmhost

import "context"

// Precompile compiles module into the process-wide compilation cache that
// every Host shares, so that a later New or UpdatePlugin with the same
// bytes finds it compiled. It checks only that the bytes compile; New
// still applies the load-time checks (ABI version, imports, allocator). Envoy also compiles a
// module once, before any worker uses it (WasmBase::load); tests call this
// once per test binary, so that no wait in a test includes compiling the
// module, which under the race detector takes longer than any sensible
// bound.
func Precompile(ctx context.Context, module []byte) error {
	rt := newRuntime(ctx)
	// Closing the runtime leaves the module in the shared cache: a runtime
	// with a compilation cache does not own the cache's engine.
	defer rt.Close(context.Background())
	if _, err := compile(ctx, rt, module); err != nil {
		return &LoadError{Reason: "Failed to load Wasm bytecode", Err: err}
	}
	return nil
}
