// Package proxywasm is the one definition of the proxy-wasm ABI 0.2.1's
// numbers in this module: host function statuses, buffer, map and stream
// types, the actions stream callbacks return, log levels and metric types
// (the spec's "Built-in types", as proxy-wasm-cpp-host's
// include/proxy-wasm/wasm_api_impl.h and Envoy use them), and the WASI
// preview 1 errnos wasmhost's WASI answers with.
//
// Both sides import it: the filter's guest binding (GOOS=wasip1, standard
// Go) and wasmhost, its local stand-in for Envoy, so a number the two
// disagree on cannot be written. It is pure Go with no imports, which is
// what a package linked into the filter's .wasm must be.
//
// Why not the proxy-wasm Go SDK: its public proxywasm/types package carries
// only Action and a few errors; the buffer, map, status and metric enums
// live in its proxywasm/internal package, which another module cannot
// import, and taking the SDK for a handful of constants would link its
// entry points and context machinery into a module that binds the ABI
// itself. wazero likewise keeps its WASI errnos in an internal package.
package proxywasm
