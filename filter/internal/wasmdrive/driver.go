//go:build !wasip1

// Package wasmdrive drives the built filter .wasm directly on wazero, with a
// minimal in-process proxy-wasm host: no network, no proxy. Callouts are
// answered by the caller. It measures what only the module costs (CPU per
// command, heap growth) and checks the binding in isolation; the real host
// semantics are wasmhost's job.
package wasmdrive

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/angzarr-mesh/angzarr/internal/proxywasm"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

const rootID = 1

// Call is a gRPC callout the module made.
type Call struct {
	Token uint32
	// Cluster is the raw target argument (a serialised GrpcService).
	Cluster         string
	Service, Method string
	Message         []byte
}

// Driver runs one VM of the module.
type Driver struct {
	ctx  context.Context
	rt   wazero.Runtime
	mod  api.Module
	fns  map[string]api.Function
	next uint32

	// current stream state
	current  uint32
	maps     [4]map[string]string
	bufs     map[proxywasm.BufferType][]byte
	grpcBuf  []byte
	calls    []Call
	token    uint32
	cont     [2]bool
	local    *LocalReply
	status   uint32
	statusMs string
	// Props holds the current stream's proxy_set_property values.
	Props map[string]string
	// Gauges holds the last value recorded per metric name.
	Gauges  map[string]uint64
	metrics map[uint32]string
	// Logs collects proxy_log lines.
	Logs []string
	// PollCalls counts poll_oneoff calls answered ENOSYS.
	PollCalls int
	// WasmTime accumulates the time spent inside exported calls.
	WasmTime time.Duration
}

// LocalReply is a proxy_send_local_response.
type LocalReply struct {
	GrpcStatus int32
	Message    string
}

// Options tune the driver.
type Options struct {
	// PollENOSYS makes WASI poll_oneoff answer ENOSYS, as Envoy 1.33 does.
	PollENOSYS bool
}

// New compiles and starts the module and configures its root context.
func New(ctx context.Context, wasm, pluginConfig []byte, opts ...Options) (*Driver, error) {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	d := &Driver{ctx: ctx, bufs: map[proxywasm.BufferType][]byte{}, Gauges: map[string]uint64{}, metrics: map[uint32]string{}}
	d.rt = wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
	wb := d.rt.NewHostModuleBuilder(wasi_snapshot_preview1.ModuleName)
	wasi_snapshot_preview1.NewFunctionExporter().ExportFunctions(wb)
	if o.PollENOSYS {
		wb.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, s []uint64) {
			d.PollCalls++
			s[0] = uint64(proxywasm.ErrnoNosys)
		}), []api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32},
			[]api.ValueType{api.ValueTypeI32}).Export("poll_oneoff")
	}
	if _, err := wb.Instantiate(ctx); err != nil {
		return nil, err
	}
	if err := d.hostModule(); err != nil {
		return nil, err
	}
	cm, err := d.rt.CompileModule(ctx, wasm)
	if err != nil {
		return nil, err
	}
	d.mod, err = d.rt.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithStartFunctions("_initialize"))
	if err != nil {
		return nil, err
	}
	d.fns = map[string]api.Function{}
	for name := range cm.ExportedFunctions() {
		d.fns[name] = d.mod.ExportedFunction(name)
	}
	d.bufs[proxywasm.BufferPluginConfig] = pluginConfig
	if _, err := d.call("proxy_on_context_create", rootID, 0); err != nil {
		return nil, err
	}
	if r, err := d.call("proxy_on_vm_start", rootID, 0); err != nil || r != 1 {
		return nil, fmt.Errorf("vm start: %d %v", r, err)
	}
	if r, err := d.call("proxy_on_configure", rootID, uint64(len(pluginConfig))); err != nil || r != 1 {
		return nil, fmt.Errorf("configure: %d %v (logs %q)", r, err, d.Logs)
	}
	d.next = 2
	return d, nil
}

// Close releases the runtime.
func (d *Driver) Close() error { return d.rt.Close(d.ctx) }

// MemoryBytes is the size of the module's linear memory.
func (d *Driver) MemoryBytes() uint32 { return d.mod.Memory().Size() }

func (d *Driver) call(name string, args ...uint64) (uint32, error) {
	f := d.fns[name]
	if f == nil {
		return 0, fmt.Errorf("no export %s", name)
	}
	start := time.Now()
	r, err := f.Call(d.ctx, args...)
	d.WasmTime += time.Since(start)
	if err != nil || len(r) == 0 {
		return 0, err
	}
	return uint32(r[0]), nil
}

// Stream is one HTTP stream through the module.
type Stream struct {
	d  *Driver
	ID uint32
}

// NewStream creates a stream context with request headers.
func (d *Driver) NewStream(headers map[string]string) (*Stream, error) {
	id := d.next
	d.next++
	d.current = id
	d.maps = [4]map[string]string{headers, {}, {}, {}}
	d.bufs = map[proxywasm.BufferType][]byte{}
	d.cont = [2]bool{}
	d.local = nil
	d.Props = map[string]string{}
	if _, err := d.call("proxy_on_context_create", uint64(id), rootID); err != nil {
		return nil, err
	}
	return &Stream{d: d, ID: id}, nil
}

// Headers returns a header map of the current stream (request headers,
// response headers or trailers).
func (d *Driver) Headers(m proxywasm.MapType) map[string]string { return d.maps[m] }

// Body returns a body buffer of the current stream.
func (d *Driver) Body(b proxywasm.BufferType) []byte { return d.bufs[b] }

// Continued reports whether the module resumed a direction (request or
// response) and clears it.
func (d *Driver) Continued(dir proxywasm.StreamType) bool {
	c := d.cont[dir]
	d.cont[dir] = false
	return c
}

// Local returns the local reply sent on the current stream, if any.
func (d *Driver) Local() *LocalReply { return d.local }

// Calls returns and clears the callouts made so far.
func (d *Driver) Calls() []Call {
	c := d.calls
	d.calls = nil
	return c
}

// RequestHeaders runs proxy_on_request_headers.
func (s *Stream) RequestHeaders(eos bool) (uint32, error) {
	return s.d.call("proxy_on_request_headers", uint64(s.ID), uint64(len(s.d.maps[proxywasm.MapRequestHeaders])), b2u(eos))
}

// RequestBody sets the request body and runs proxy_on_request_body.
func (s *Stream) RequestBody(body []byte, eos bool) (uint32, error) {
	s.d.bufs[proxywasm.BufferRequestBody] = body
	return s.d.call("proxy_on_request_body", uint64(s.ID), uint64(len(body)), b2u(eos))
}

// ResponseHeaders sets and runs the response headers.
func (s *Stream) ResponseHeaders(h map[string]string, eos bool) (uint32, error) {
	s.d.maps[proxywasm.MapResponseHeaders] = h
	return s.d.call("proxy_on_response_headers", uint64(s.ID), uint64(len(h)), b2u(eos))
}

// ResponseBody sets and runs the response body.
func (s *Stream) ResponseBody(body []byte, eos bool) (uint32, error) {
	s.d.bufs[proxywasm.BufferResponseBody] = body
	return s.d.call("proxy_on_response_body", uint64(s.ID), uint64(len(body)), b2u(eos))
}

// ResponseTrailers sets and runs the response trailers.
func (s *Stream) ResponseTrailers(t map[string]string) (uint32, error) {
	s.d.maps[proxywasm.MapResponseTrailers] = t
	return s.d.call("proxy_on_response_trailers", uint64(s.ID), uint64(len(t)))
}

// Reply delivers a callout's response message on the root context.
func (d *Driver) Reply(c Call, msg []byte) error {
	d.grpcBuf = msg
	_, err := d.call("proxy_on_grpc_receive", rootID, uint64(c.Token), uint64(len(msg)))
	d.grpcBuf = nil
	return err
}

// Fail delivers a callout's failure on the root context.
func (d *Driver) Fail(c Call, code uint32, msg string) error {
	d.status, d.statusMs = code, msg
	_, err := d.call("proxy_on_grpc_close", rootID, uint64(c.Token), uint64(code))
	return err
}

// Finish ends the stream (proxy_on_done, proxy_on_delete).
func (s *Stream) Finish() error {
	if _, err := s.d.call("proxy_on_done", uint64(s.ID)); err != nil {
		return err
	}
	_, err := s.d.call("proxy_on_delete", uint64(s.ID))
	return err
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// ErrNoMalloc is returned when the module exports no allocator.
var ErrNoMalloc = errors.New("module exports no malloc")

// hostModule defines the env functions the filter imports.
func (d *Driver) hostModule() error {
	b := d.rt.NewHostModuleBuilder("env")
	fn := func(name string, params []api.ValueType, f func(m api.Module, s []uint64) proxywasm.Status) {
		b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, m api.Module, s []uint64) {
			// The upper half of an i32 on the stack is undefined.
			for i, t := range params {
				if t == api.ValueTypeI32 {
					s[i] = uint64(uint32(s[i]))
				}
			}
			s[0] = uint64(f(m, s))
		}), params, []api.ValueType{api.ValueTypeI32}).Export(name)
	}
	i32 := api.ValueTypeI32
	n := func(k int) []api.ValueType {
		out := make([]api.ValueType, k)
		for i := range out {
			out[i] = i32
		}
		return out
	}
	fn("proxy_log", n(3), func(m api.Module, s []uint64) proxywasm.Status {
		d.Logs = append(d.Logs, str(m, s[1], s[2]))
		return proxywasm.StatusOK
	})
	fn("proxy_get_current_time_nanoseconds", n(1), func(m api.Module, s []uint64) proxywasm.Status {
		m.Memory().WriteUint64Le(uint32(s[0]), uint64(time.Now().UnixNano()))
		return proxywasm.StatusOK
	})
	fn("proxy_get_header_map_value", n(5), func(m api.Module, s []uint64) proxywasm.Status {
		if s[0] >= uint64(len(d.maps)) {
			return proxywasm.StatusBadArgument
		}
		v, ok := d.maps[s[0]][str(m, s[1], s[2])]
		if !ok {
			return proxywasm.StatusNotFound
		}
		return d.give(m, []byte(v), s[3], s[4])
	})
	fn("proxy_replace_header_map_value", n(5), func(m api.Module, s []uint64) proxywasm.Status {
		if s[0] >= uint64(len(d.maps)) {
			return proxywasm.StatusBadArgument
		}
		d.maps[s[0]][str(m, s[1], s[2])] = str(m, s[3], s[4])
		return proxywasm.StatusOK
	})
	fn("proxy_remove_header_map_value", n(3), func(m api.Module, s []uint64) proxywasm.Status {
		if s[0] >= uint64(len(d.maps)) {
			return proxywasm.StatusBadArgument
		}
		delete(d.maps[s[0]], str(m, s[1], s[2]))
		return proxywasm.StatusOK
	})
	fn("proxy_get_buffer_bytes", n(5), func(m api.Module, s []uint64) proxywasm.Status {
		buf := d.bufs[proxywasm.BufferType(s[0])]
		if proxywasm.BufferType(s[0]) == proxywasm.BufferGRPCReceive {
			buf = d.grpcBuf
		}
		start, size := int(s[1]), int(s[2])
		if start > len(buf) {
			return proxywasm.StatusBadArgument
		}
		if start+size > len(buf) {
			size = len(buf) - start
		}
		return d.give(m, buf[start:start+size], s[3], s[4])
	})
	fn("proxy_get_buffer_status", n(3), func(m api.Module, s []uint64) proxywasm.Status {
		m.Memory().WriteUint32Le(uint32(s[1]), uint32(len(d.bufs[proxywasm.BufferType(s[0])])))
		m.Memory().WriteUint32Le(uint32(s[2]), 0)
		return proxywasm.StatusOK
	})
	fn("proxy_set_buffer_bytes", n(5), func(m api.Module, s []uint64) proxywasm.Status {
		data, _ := m.Memory().Read(uint32(s[3]), uint32(s[4]))
		d.bufs[proxywasm.BufferType(s[0])] = append([]byte(nil), data...)
		return proxywasm.StatusOK
	})
	fn("proxy_send_local_response", n(8), func(m api.Module, s []uint64) proxywasm.Status {
		d.local = &LocalReply{GrpcStatus: int32(uint32(s[7])), Message: str(m, s[3], s[4])}
		return proxywasm.StatusOK
	})
	fn("proxy_continue_stream", n(1), func(m api.Module, s []uint64) proxywasm.Status {
		if t := proxywasm.StreamType(s[0]); t == proxywasm.StreamRequest || t == proxywasm.StreamResponse {
			d.cont[t] = true
		}
		return proxywasm.StatusOK
	})
	fn("proxy_grpc_call", n(12), func(m api.Module, s []uint64) proxywasm.Status {
		d.token++
		msg, _ := m.Memory().Read(uint32(s[8]), uint32(s[9]))
		d.calls = append(d.calls, Call{Token: d.token, Cluster: str(m, s[0], s[1]), Service: str(m, s[2], s[3]),
			Method: str(m, s[4], s[5]), Message: append([]byte(nil), msg...)})
		m.Memory().WriteUint32Le(uint32(s[11]), d.token)
		return proxywasm.StatusOK
	})
	fn("proxy_get_status", n(3), func(m api.Module, s []uint64) proxywasm.Status {
		m.Memory().WriteUint32Le(uint32(s[0]), d.status)
		return d.give(m, []byte(d.statusMs), s[1], s[2])
	})
	fn("proxy_set_effective_context", n(1), func(m api.Module, s []uint64) proxywasm.Status {
		if uint32(s[0]) != d.current {
			return proxywasm.StatusBadArgument
		}
		return proxywasm.StatusOK
	})
	fn("proxy_set_property", n(4), func(m api.Module, s []uint64) proxywasm.Status {
		if d.Props == nil {
			return proxywasm.StatusNotFound // root context: no stream
		}
		d.Props[str(m, s[0], s[1])] = str(m, s[2], s[3])
		return proxywasm.StatusOK
	})
	fn("proxy_define_metric", n(4), func(m api.Module, s []uint64) proxywasm.Status {
		id := uint32(len(d.metrics) + 1)
		d.metrics[id] = str(m, s[1], s[2])
		m.Memory().WriteUint32Le(uint32(s[3]), id)
		return proxywasm.StatusOK
	})
	fn("proxy_increment_metric", []api.ValueType{i32, api.ValueTypeI64}, func(m api.Module, s []uint64) proxywasm.Status { return proxywasm.StatusOK })
	fn("proxy_record_metric", []api.ValueType{i32, api.ValueTypeI64}, func(m api.Module, s []uint64) proxywasm.Status {
		d.Gauges[d.metrics[uint32(s[0])]] = s[1]
		return proxywasm.StatusOK
	})
	_, err := b.Instantiate(d.ctx)
	return err
}

// give copies data into module memory allocated with malloc and writes its
// address and size to the return pointers.
func (d *Driver) give(m api.Module, data []byte, retPtr, retSize uint64) proxywasm.Status {
	malloc := d.fns["malloc"]
	if malloc == nil {
		return proxywasm.StatusInternalFailure
	}
	r, err := malloc.Call(d.ctx, uint64(len(data)))
	if err != nil {
		return proxywasm.StatusInternalFailure
	}
	addr := uint32(r[0])
	m.Memory().Write(addr, data)
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], addr)
	m.Memory().Write(uint32(retPtr), b[:])
	m.Memory().WriteUint32Le(uint32(retSize), uint32(len(data)))
	return 0
}

func str(m api.Module, ptr, size uint64) string {
	b, _ := m.Memory().Read(uint32(ptr), uint32(size))
	return string(b)
}
