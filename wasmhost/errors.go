package wasmhost

import (
	"errors"
	"fmt"
)

// Errors returned by the package. Use errors.Is / errors.As to tell them apart.
var (
	// ErrClosed is returned by operations on a Host after Close.
	ErrClosed = errors.New("wasmhost: host closed")
	// ErrVMStartFailed means proxy_on_vm_start returned false: the module
	// refused its VM configuration and the host does not serve with it.
	ErrVMStartFailed = errors.New("wasmhost: proxy_on_vm_start returned false")
	// ErrConfigureFailed means proxy_on_configure returned false: the plugin
	// refused its configuration and the host does not serve with it (Envoy
	// rejects such a configuration the same way).
	ErrConfigureFailed = errors.New("wasmhost: proxy_on_configure returned false")
	// ErrNoVM means no healthy VM could be obtained for a stream.
	ErrNoVM = errors.New("wasmhost: no healthy VM available")
)

// LoadError reports a module that cannot be loaded the way Envoy would load
// it: no ABI version export, a missing or mistyped import, no allocator, or a
// trap during start-up. Reason carries Envoy's wording where Envoy has one,
// e.g. "missing import: wasi_snapshot_preview1.fd_filestat_get".
type LoadError struct {
	Reason string
	Err    error
}

func (e *LoadError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("wasmhost: failed to load Wasm module: %s: %v", e.Reason, e.Err)
	}
	return "wasmhost: failed to load Wasm module: " + e.Reason
}

func (e *LoadError) Unwrap() error { return e.Err }

// TrapError reports a trap (or any failure) while the host called into the
// module. The VM that trapped is discarded.
type TrapError struct {
	// Func is the exported function being called, e.g. "proxy_on_request_headers".
	Func string
	Err  error
}

func (e *TrapError) Error() string {
	return fmt.Sprintf("wasmhost: wasm trap in %s: %v", e.Func, e.Err)
}

func (e *TrapError) Unwrap() error { return e.Err }

// restrictedCallError is the panic value a host function raises when the
// module calls it outside the allow-list of the current phase (_initialize
// or memory allocation). It becomes a trap, as in Envoy ("restricted_callback").
type restrictedCallError struct {
	name  string
	phase string
}

func (e *restrictedCallError) Error() string {
	return fmt.Sprintf("restricted_callback: %s called during %s", e.name, e.phase)
}
