//go:build !wasip1

package wasmdrive

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/angzarr-mesh/angzarr/internal/proxywasm"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"google.golang.org/protobuf/proto"
)

// Host is what the module's proxy-wasm imports act on: the proxy as the
// filter sees it (filter.Host, in the ABI's own types, since this package
// cannot import the filter it drives). The env functions check what
// crosses the boundary (memory ranges, map types, the pairs encoding, the
// GrpcService of a callout) and turn a Host error into a status; the
// semantics are the Host's.
type Host interface {
	Log(level proxywasm.LogLevel, msg string)
	Now() time.Time
	GetHeader(m proxywasm.MapType, key string) (string, bool)
	ReplaceHeader(m proxywasm.MapType, key, value string) error
	RemoveHeader(m proxywasm.MapType, key string) error
	GetBuffer(b proxywasm.BufferType, start, size int) ([]byte, error)
	// BufferSize is the buffer's current length (proxy_get_buffer_status).
	BufferSize(b proxywasm.BufferType) int
	SetBuffer(b proxywasm.BufferType, data []byte) error
	SendLocalReply(grpcStatus int32, message string, headers [][2]string) error
	ContinueStream(s proxywasm.StreamType) error
	GrpcCall(cluster, authority, service, method string, metadata [][2]string, message []byte, timeout time.Duration) (uint32, error)
	SetEffectiveContext(contextID uint32) error
	DefineMetric(t proxywasm.MetricType, name string) (uint32, error)
	IncrementMetric(id uint32, delta int64) error
	RecordMetric(id uint32, value uint64) error
	SetProperty(path, value string) error
}

// RootID is the root context's id; stream ids must differ from it.
const RootID = 1 << 30

// Runtime is the module compiled once, with the env and WASI host
// modules; Start instantiates it any number of times, each instance with
// its own Host.
type Runtime struct {
	rt       wazero.Runtime
	compiled wazero.CompiledModule
	next     atomic.Uint64
	// PollCalls counts poll_oneoff calls answered ENOSYS (Options.PollENOSYS).
	PollCalls atomic.Int64
}

// Options tune the runtime.
type Options struct {
	// PollENOSYS makes WASI poll_oneoff answer ENOSYS, as Envoy 1.33 does.
	PollENOSYS bool
}

// NewRuntime compiles the module.
func NewRuntime(ctx context.Context, wasm []byte, opts ...Options) (*Runtime, error) {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	r := &Runtime{rt: wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())}
	wb := r.rt.NewHostModuleBuilder(wasi_snapshot_preview1.ModuleName)
	wasi_snapshot_preview1.NewFunctionExporter().ExportFunctions(wb)
	if o.PollENOSYS {
		wb.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, s []uint64) {
			r.PollCalls.Add(1)
			s[0] = uint64(proxywasm.ErrnoNosys)
		}), []api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32},
			[]api.ValueType{api.ValueTypeI32}).Export("poll_oneoff")
	}
	if _, err := wb.Instantiate(ctx); err != nil {
		r.rt.Close(ctx)
		return nil, err
	}
	if err := instantiateEnv(ctx, r.rt); err != nil {
		r.rt.Close(ctx)
		return nil, err
	}
	var err error
	if r.compiled, err = r.rt.CompileModule(ctx, wasm); err != nil {
		r.rt.Close(ctx)
		return nil, err
	}
	return r, nil
}

// Close releases the runtime and every instance.
func (r *Runtime) Close(ctx context.Context) error { return r.rt.Close(ctx) }

// Guest is one instance of the module, started and configured.
type Guest struct {
	ctx  context.Context
	host Host
	mod  api.Module
	fns  map[string]api.Function
	cfg  []byte
	// status and message are what proxy_get_status answers while a
	// callout's failure is delivered.
	status  uint32
	message string
	// WasmTime accumulates the time spent inside exported calls.
	WasmTime time.Duration
	// LastCallCPU is the CPU time of the last exported call on its OS
	// thread (Linux; 0 elsewhere), meaningful when the caller locked its
	// goroutine to the thread (runtime.LockOSThread): on a loaded machine
	// it leaves out the time other processes ran.
	LastCallCPU time.Duration
	// WasmCPU accumulates LastCallCPU.
	WasmCPU time.Duration
}

type guestKey struct{}

// Start instantiates the module (running _initialize), creates the root
// context, starts the VM and configures it with pluginConfig.
func (r *Runtime) Start(ctx context.Context, host Host, pluginConfig []byte) (*Guest, error) {
	g := &Guest{host: host, cfg: pluginConfig, fns: map[string]api.Function{}}
	g.ctx = context.WithValue(ctx, guestKey{}, g)
	name := fmt.Sprintf("filter-%d", r.next.Add(1))
	// Real clocks, as Envoy's WASI gives: wazero's defaults are fake (a
	// fixed wall time, a monotonic clock that moves 1 ms per read).
	mod, err := r.rt.InstantiateModule(g.ctx, r.compiled, wazero.NewModuleConfig().WithName(name).
		WithStartFunctions("_initialize").WithSysWalltime().WithSysNanotime())
	if err != nil {
		return nil, err
	}
	g.mod = mod
	for n := range r.compiled.ExportedFunctions() {
		g.fns[n] = mod.ExportedFunction(n)
	}
	if _, err := g.call("proxy_on_context_create", RootID, 0); err != nil {
		return nil, err
	}
	if ok, err := g.call("proxy_on_vm_start", RootID, 0); err != nil || ok != 1 {
		return nil, fmt.Errorf("proxy_on_vm_start: %d %v", ok, err)
	}
	if ok, err := g.call("proxy_on_configure", RootID, uint64(len(pluginConfig))); err != nil || ok != 1 {
		return nil, fmt.Errorf("proxy_on_configure: %d %v", ok, err)
	}
	return g, nil
}

// Close ends the instance.
func (g *Guest) Close() error { return g.mod.Close(g.ctx) }

// MemoryBytes is the size of the instance's linear memory.
func (g *Guest) MemoryBytes() uint32 { return g.mod.Memory().Size() }

func (g *Guest) call(name string, args ...uint64) (uint32, error) {
	f := g.fns[name]
	if f == nil {
		return 0, fmt.Errorf("no export %s", name)
	}
	start, cpu := time.Now(), threadCPU()
	r, err := f.Call(g.ctx, args...)
	g.LastCallCPU = threadCPU() - cpu
	g.WasmCPU += g.LastCallCPU
	g.WasmTime += time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	if len(r) == 0 {
		return 0, nil
	}
	return uint32(r[0]), nil
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// NewStream creates stream context id (proxy_on_context_create).
func (g *Guest) NewStream(id uint32) error { return g.NewStreamIn(id, RootID) }

// AddRoot creates another root context, id, in the same instance, starts
// and configures it with pluginConfig, as Envoy does for every plugin
// that shares a VM (same vm_id, code and VM configuration: a gateway's
// per-domain filters), each with its own root context.
func (g *Guest) AddRoot(id uint32, pluginConfig []byte) error {
	if _, err := g.call("proxy_on_context_create", uint64(id), 0); err != nil {
		return err
	}
	if ok, err := g.call("proxy_on_vm_start", uint64(id), 0); err != nil || ok != 1 {
		return fmt.Errorf("proxy_on_vm_start: %d %v", ok, err)
	}
	saved := g.cfg
	g.cfg = pluginConfig
	defer func() { g.cfg = saved }()
	if ok, err := g.call("proxy_on_configure", uint64(id), uint64(len(pluginConfig))); err != nil || ok != 1 {
		return fmt.Errorf("proxy_on_configure: %d %v", ok, err)
	}
	return nil
}

// NewStreamIn creates stream context id under root context root.
func (g *Guest) NewStreamIn(id, root uint32) error {
	_, err := g.call("proxy_on_context_create", uint64(id), uint64(root))
	return err
}

// OnGrpcReceiveOn is OnGrpcReceive on root context root.
func (g *Guest) OnGrpcReceiveOn(root, token uint32, size int) error {
	_, err := g.call("proxy_on_grpc_receive", uint64(root), uint64(token), uint64(size))
	return err
}

// DeleteStream ends stream id (proxy_on_done, proxy_on_delete).
func (g *Guest) DeleteStream(id uint32) error {
	if _, err := g.call("proxy_on_done", uint64(id)); err != nil {
		return err
	}
	_, err := g.call("proxy_on_delete", uint64(id))
	return err
}

// OnRequestHeaders is proxy_on_request_headers with n headers.
func (g *Guest) OnRequestHeaders(id uint32, n int, eos bool) (proxywasm.Action, error) {
	a, err := g.call("proxy_on_request_headers", uint64(id), uint64(n), b2u(eos))
	return proxywasm.Action(a), err
}

// OnRequestBody is proxy_on_request_body with size bytes buffered.
func (g *Guest) OnRequestBody(id uint32, size int, eos bool) (proxywasm.Action, error) {
	a, err := g.call("proxy_on_request_body", uint64(id), uint64(size), b2u(eos))
	return proxywasm.Action(a), err
}

// OnRequestTrailers is proxy_on_request_trailers with n trailers.
func (g *Guest) OnRequestTrailers(id uint32, n int) (proxywasm.Action, error) {
	a, err := g.call("proxy_on_request_trailers", uint64(id), uint64(n))
	return proxywasm.Action(a), err
}

// OnResponseHeaders is proxy_on_response_headers with n headers.
func (g *Guest) OnResponseHeaders(id uint32, n int, eos bool) (proxywasm.Action, error) {
	a, err := g.call("proxy_on_response_headers", uint64(id), uint64(n), b2u(eos))
	return proxywasm.Action(a), err
}

// OnResponseBody is proxy_on_response_body with size bytes buffered.
func (g *Guest) OnResponseBody(id uint32, size int, eos bool) (proxywasm.Action, error) {
	a, err := g.call("proxy_on_response_body", uint64(id), uint64(size), b2u(eos))
	return proxywasm.Action(a), err
}

// OnResponseTrailers is proxy_on_response_trailers with n trailers.
func (g *Guest) OnResponseTrailers(id uint32, n int) (proxywasm.Action, error) {
	a, err := g.call("proxy_on_response_trailers", uint64(id), uint64(n))
	return proxywasm.Action(a), err
}

// OnGrpcReceive delivers a callout's response message of size bytes
// (the Host's BufferGRPCReceive) on the root context.
func (g *Guest) OnGrpcReceive(token uint32, size int) error {
	_, err := g.call("proxy_on_grpc_receive", RootID, uint64(token), uint64(size))
	return err
}

// OnGrpcTrailingMetadata delivers a callout's trailers (n of them; the
// Host answers their values) on the root context.
func (g *Guest) OnGrpcTrailingMetadata(token uint32, n int) error {
	_, err := g.call("proxy_on_grpc_receive_trailing_metadata", RootID, uint64(token), uint64(n))
	return err
}

// OnGrpcClose delivers a callout's end on the root context; a failure's
// message is what proxy_get_status answers meanwhile.
func (g *Guest) OnGrpcClose(token, code uint32, message string) error {
	g.status, g.message = code, message
	_, err := g.call("proxy_on_grpc_close", RootID, uint64(token), uint64(code))
	g.status, g.message = 0, ""
	return err
}

// instantiateEnv defines the env functions the filter imports (as
// filter/internal/abi/imports.go declares them), each acting on the
// calling instance's Host.
func instantiateEnv(ctx context.Context, rt wazero.Runtime) error {
	b := rt.NewHostModuleBuilder("env")
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	fn := func(name string, params []api.ValueType, f func(g *Guest, m api.Module, s []uint64) proxywasm.Status) {
		b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, m api.Module, s []uint64) {
			g := ctx.Value(guestKey{}).(*Guest)
			// The upper half of an i32 on the stack is undefined.
			for i, t := range params {
				if t == i32 {
					s[i] = uint64(uint32(s[i]))
				}
			}
			s[0] = uint64(f(g, m, s))
		}), params, []api.ValueType{i32}).Export(name)
	}
	n := func(k int) []api.ValueType {
		out := make([]api.ValueType, k)
		for i := range out {
			out[i] = i32
		}
		return out
	}
	fn("proxy_log", n(3), func(g *Guest, m api.Module, s []uint64) proxywasm.Status {
		msg, ok := read(m, s[1], s[2])
		if !ok {
			return proxywasm.StatusInvalidMemoryAccess
		}
		if s[0] > uint64(proxywasm.LogCritical) {
			return proxywasm.StatusBadArgument
		}
		g.host.Log(proxywasm.LogLevel(s[0]), string(msg))
		return proxywasm.StatusOK
	})
	fn("proxy_get_current_time_nanoseconds", n(1), func(g *Guest, m api.Module, s []uint64) proxywasm.Status {
		if !m.Memory().WriteUint64Le(uint32(s[0]), uint64(g.host.Now().UnixNano())) {
			return proxywasm.StatusInvalidMemoryAccess
		}
		return proxywasm.StatusOK
	})
	fn("proxy_get_header_map_value", n(5), func(g *Guest, m api.Module, s []uint64) proxywasm.Status {
		mt, ok := mapArg(s[0])
		if s[0] == uint64(proxywasm.MapGRPCTrailingMetadata) {
			mt, ok = proxywasm.MapGRPCTrailingMetadata, true // a callout's trailers: readable, not writable
		}
		key, ok2 := read(m, s[1], s[2])
		if !ok || !ok2 {
			return proxywasm.StatusBadArgument
		}
		v, found := g.host.GetHeader(mt, string(key))
		if !found {
			return proxywasm.StatusNotFound
		}
		return g.give(m, []byte(v), s[3], s[4])
	})
	fn("proxy_replace_header_map_value", n(5), func(g *Guest, m api.Module, s []uint64) proxywasm.Status {
		mt, ok := mapArg(s[0])
		key, ok2 := read(m, s[1], s[2])
		val, ok3 := read(m, s[3], s[4])
		if !ok || !ok2 || !ok3 {
			return proxywasm.StatusBadArgument
		}
		return statusOf(g.host.ReplaceHeader(mt, string(key), string(val)))
	})
	fn("proxy_remove_header_map_value", n(3), func(g *Guest, m api.Module, s []uint64) proxywasm.Status {
		mt, ok := mapArg(s[0])
		key, ok2 := read(m, s[1], s[2])
		if !ok || !ok2 {
			return proxywasm.StatusBadArgument
		}
		return statusOf(g.host.RemoveHeader(mt, string(key)))
	})
	fn("proxy_get_buffer_bytes", n(5), func(g *Guest, m api.Module, s []uint64) proxywasm.Status {
		bt := proxywasm.BufferType(s[0])
		if bt == proxywasm.BufferPluginConfig {
			return g.give(m, window(g.cfg, s[1], s[2]), s[3], s[4])
		}
		data, err := g.host.GetBuffer(bt, int(s[1]), int(s[2]))
		if err != nil {
			return proxywasm.StatusBadArgument
		}
		return g.give(m, data, s[3], s[4])
	})
	fn("proxy_get_buffer_status", n(3), func(g *Guest, m api.Module, s []uint64) proxywasm.Status {
		bt := proxywasm.BufferType(s[0])
		size := len(g.cfg)
		if bt != proxywasm.BufferPluginConfig {
			size = g.host.BufferSize(bt)
		}
		if !m.Memory().WriteUint32Le(uint32(s[1]), uint32(size)) || !m.Memory().WriteUint32Le(uint32(s[2]), 0) {
			return proxywasm.StatusInvalidMemoryAccess
		}
		return proxywasm.StatusOK
	})
	fn("proxy_set_buffer_bytes", n(5), func(g *Guest, m api.Module, s []uint64) proxywasm.Status {
		bt := proxywasm.BufferType(s[0])
		data, ok := read(m, s[3], s[4])
		if !ok {
			return proxywasm.StatusInvalidMemoryAccess
		}
		// Only whole buffers are replaced: start 0 and at least the
		// current length, as the binding sends.
		if s[1] != 0 || int(s[2]) < g.host.BufferSize(bt) {
			return proxywasm.StatusBadArgument
		}
		return statusOf(g.host.SetBuffer(bt, data))
	})
	fn("proxy_send_local_response", n(8), func(g *Guest, m api.Module, s []uint64) proxywasm.Status {
		body, ok := read(m, s[3], s[4])
		raw, ok2 := read(m, s[5], s[6])
		if !ok || !ok2 {
			return proxywasm.StatusInvalidMemoryAccess
		}
		headers, ok := pairs(raw)
		if !ok {
			return proxywasm.StatusBadArgument
		}
		return statusOf(g.host.SendLocalReply(int32(uint32(s[7])), string(body), headers))
	})
	fn("proxy_continue_stream", n(1), func(g *Guest, m api.Module, s []uint64) proxywasm.Status {
		t := proxywasm.StreamType(s[0])
		if t != proxywasm.StreamRequest && t != proxywasm.StreamResponse {
			return proxywasm.StatusBadArgument
		}
		return statusOf(g.host.ContinueStream(t))
	})
	fn("proxy_grpc_call", n(12), func(g *Guest, m api.Module, s []uint64) proxywasm.Status {
		target, ok1 := read(m, s[0], s[1])
		service, ok2 := read(m, s[2], s[3])
		method, ok3 := read(m, s[4], s[5])
		rawMD, ok4 := read(m, s[6], s[7])
		msg, ok5 := read(m, s[8], s[9])
		if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 {
			return proxywasm.StatusInvalidMemoryAccess
		}
		cluster, authority, ok := envoyGrpcTarget(target)
		if !ok {
			return proxywasm.StatusParseFailure
		}
		md, ok := pairs(rawMD)
		if !ok {
			return proxywasm.StatusBadArgument
		}
		token, err := g.host.GrpcCall(cluster, authority, string(service), string(method), md, msg, time.Duration(uint32(s[10]))*time.Millisecond)
		if err != nil {
			// Envoy fails a call to an unknown cluster itself.
			return proxywasm.StatusInternalFailure
		}
		if !m.Memory().WriteUint32Le(uint32(s[11]), token) {
			return proxywasm.StatusInvalidMemoryAccess
		}
		return proxywasm.StatusOK
	})
	fn("proxy_get_status", n(3), func(g *Guest, m api.Module, s []uint64) proxywasm.Status {
		if !m.Memory().WriteUint32Le(uint32(s[0]), g.status) {
			return proxywasm.StatusInvalidMemoryAccess
		}
		return g.give(m, []byte(g.message), s[1], s[2])
	})
	fn("proxy_set_effective_context", n(1), func(g *Guest, m api.Module, s []uint64) proxywasm.Status {
		if g.host.SetEffectiveContext(uint32(s[0])) != nil {
			return proxywasm.StatusBadArgument
		}
		return proxywasm.StatusOK
	})
	fn("proxy_define_metric", n(4), func(g *Guest, m api.Module, s []uint64) proxywasm.Status {
		name, ok := read(m, s[1], s[2])
		if !ok {
			return proxywasm.StatusInvalidMemoryAccess
		}
		if s[0] > uint64(proxywasm.MetricHistogram) {
			return proxywasm.StatusBadArgument
		}
		id, err := g.host.DefineMetric(proxywasm.MetricType(s[0]), string(name))
		if err != nil {
			return proxywasm.StatusBadArgument
		}
		if !m.Memory().WriteUint32Le(uint32(s[3]), id) {
			return proxywasm.StatusInvalidMemoryAccess
		}
		return proxywasm.StatusOK
	})
	fn("proxy_increment_metric", []api.ValueType{i32, i64}, func(g *Guest, m api.Module, s []uint64) proxywasm.Status {
		return statusOf(g.host.IncrementMetric(uint32(s[0]), int64(s[1])))
	})
	fn("proxy_record_metric", []api.ValueType{i32, i64}, func(g *Guest, m api.Module, s []uint64) proxywasm.Status {
		return statusOf(g.host.RecordMetric(uint32(s[0]), s[1]))
	})
	fn("proxy_set_property", n(4), func(g *Guest, m api.Module, s []uint64) proxywasm.Status {
		path, ok := read(m, s[0], s[1])
		val, ok2 := read(m, s[2], s[3])
		if !ok || !ok2 {
			return proxywasm.StatusInvalidMemoryAccess
		}
		if g.host.SetProperty(string(path), string(val)) != nil {
			return proxywasm.StatusNotFound
		}
		return proxywasm.StatusOK
	})
	_, err := b.Instantiate(ctx)
	return err
}

// statusOf maps a Host error to the status a host answers.
func statusOf(err error) proxywasm.Status {
	if err != nil {
		return proxywasm.StatusBadArgument
	}
	return proxywasm.StatusOK
}

// mapArg accepts the HTTP header and trailer maps.
func mapArg(v uint64) (proxywasm.MapType, bool) {
	return proxywasm.MapType(v), v <= uint64(proxywasm.MapResponseTrailers)
}

// read copies size bytes at ptr out of the module's memory.
func read(m api.Module, ptr, size uint64) ([]byte, bool) {
	b, ok := m.Memory().Read(uint32(ptr), uint32(size))
	if !ok {
		return nil, false
	}
	return append([]byte(nil), b...), true
}

// window is data[start:start+size], clipped.
func window(data []byte, start, size uint64) []byte {
	if start > uint64(len(data)) {
		return nil
	}
	return data[start:min(start+size, uint64(len(data)))]
}

// give hands data to the module the proxy-wasm way: in memory its malloc
// allocated, address and size written to the return pointers.
func (g *Guest) give(m api.Module, data []byte, retPtr, retSize uint64) proxywasm.Status {
	malloc := g.fns["malloc"]
	if malloc == nil {
		return proxywasm.StatusInternalFailure
	}
	r, err := malloc.Call(g.ctx, uint64(len(data)))
	if err != nil {
		return proxywasm.StatusInternalFailure
	}
	addr := uint32(r[0])
	mem := m.Memory()
	if !mem.Write(addr, data) || !mem.WriteUint32Le(uint32(retPtr), addr) || !mem.WriteUint32Le(uint32(retSize), uint32(len(data))) {
		return proxywasm.StatusInvalidMemoryAccess
	}
	return proxywasm.StatusOK
}

// pairs decodes the proxy-wasm pairs encoding strictly (empty: none).
func pairs(b []byte) ([][2]string, bool) {
	if len(b) == 0 {
		return nil, true
	}
	if len(b) < 4 {
		return nil, false
	}
	n := int(binary.LittleEndian.Uint32(b))
	if len(b) < 4+8*n {
		return nil, false
	}
	sizes, data := b[4:4+8*n], b[4+8*n:]
	out := make([][2]string, n)
	for i := range out {
		for j, l := range []uint32{binary.LittleEndian.Uint32(sizes[8*i:]), binary.LittleEndian.Uint32(sizes[8*i+4:])} {
			if uint64(len(data)) < uint64(l)+1 || data[l] != 0 {
				return nil, false
			}
			out[i][j] = string(data[:l])
			data = data[l+1:]
		}
	}
	return out, len(data) == 0
}

// envoyGrpcTarget decodes the GrpcService the filter passes to
// proxy_grpc_call: its envoy_grpc cluster_name (required) and authority.
// Anything else set in it is refused, as the filter never sends it.
func envoyGrpcTarget(b []byte) (cluster, authority string, ok bool) {
	var gs core.GrpcService
	if err := proto.Unmarshal(b, &gs); err != nil {
		return "", "", false
	}
	eg := gs.GetEnvoyGrpc()
	if eg == nil || eg.GetClusterName() == "" || eg.GetRetryPolicy() != nil || eg.GetMaxReceiveMessageLength() != nil ||
		eg.GetSkipEnvoyHeaders() || gs.GetTimeout() != nil || len(gs.GetInitialMetadata()) > 0 || gs.GetRetryPolicy() != nil {
		return "", "", false
	}
	return eg.GetClusterName(), eg.GetAuthority(), true
}
