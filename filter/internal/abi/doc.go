// Package abi binds the filter's state machine (package filter) to the
// proxy-wasm ABI 0.2.1 with standard Go on wasip1: go:wasmimport for the host
// functions of module "env", go:wasmexport for the proxy_on_* callbacks and
// the allocator. Everything here is thin glue; the logic lives in filter.
//
// Rules this package keeps (see PROXY-WASM.md): no host call during
// _initialize (no init functions, no package-level state built at init);
// no goroutines, timers, sleeps or file operations (under Envoy 1.33
// poll_oneoff answers ENOSYS and the Go runtime dies on it once its poller
// is initialised); the garbage collector is driven explicitly between
// streams (gc.go explains why the automatic one cannot be used); memory the
// host fills through malloc stays referenced until read.
package abi
