package proxywasm

// Errno is a WASI preview 1 errno (wasi_snapshot_preview1's errno type):
// what the WASI functions a proxy-wasm host provides return.
type Errno uint32

// The errnos wasmhost's WASI returns, by the names of the WASI preview 1
// witx.
const (
	ErrnoSuccess Errno = 0
	ErrnoBadf    Errno = 8
	ErrnoExist   Errno = 20
	ErrnoFault   Errno = 21
	ErrnoInval   Errno = 28
	ErrnoNoent   Errno = 44
	ErrnoNosys   Errno = 52
	ErrnoNotsup  Errno = 58
)
