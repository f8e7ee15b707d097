//go:build !wasip1

// Package e2e runs the filter end to end with real parts: redis-server, the
// event service (eventsvc on Redis), the counter business logic over gRPC,
// and `wasmhost` running the built angzarr-filter.wasm under a given Envoy
// WASI profile. Stack starts one such deployment for a test.
package e2e
