//go:build !wasip1

package filter

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/angzarr-mesh/angzarr/filter/internal/wasmbuild"
	"github.com/angzarr-mesh/angzarr/internal/proxywasm"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"google.golang.org/protobuf/encoding/protowire"
)

// The wasm mode: the built filter module on wazero, its proxy-wasm imports
// answered by the harness's fakeHost. Every host call the module makes goes
// through filter/internal/abi (pointers, malloc hand-over, pairs encoding,
// status mapping) and lands in the same fakeHost the native mode calls
// directly, so a scenario's checks read the same state in both modes.
//
// The adapter is deliberately thin and strict: it checks what crosses the
// boundary (map and buffer types, memory ranges, the pairs encoding, the
// GrpcService) and leaves the semantics to fakeHost. Envoy's own rules are
// wasmhost's to check (TestABI); this mode checks that the binding says to
// a host what the Plugin says to fakeHost.

// wasmRootID is the root context's id: far above the harness's stream ids.
const wasmRootID = 1 << 30

// wasmRuntime is one wazero runtime per test binary, with the filter
// compiled once (filter/internal/wasmbuild) and the env and WASI host
// modules instantiated once; each harness instantiates its own module.
var wasmRuntime struct {
	once     sync.Once
	err      error
	rt       wazero.Runtime
	compiled wazero.CompiledModule
	next     atomic.Uint64
}

func compiledFilter(t *testing.T) (wazero.Runtime, wazero.CompiledModule) {
	t.Helper()
	r := &wasmRuntime
	r.once.Do(func() {
		if r.err = consultWasip1Sources(); r.err != nil {
			return
		}
		dir, err := os.MkdirTemp("", "angzarr-filter-test-*")
		if err != nil {
			r.err = err
			return
		}
		defer os.RemoveAll(dir)
		path, err := wasmbuild.Build(dir)
		if err != nil {
			r.err = err
			return
		}
		bin, err := os.ReadFile(path)
		if err != nil {
			r.err = err
			return
		}
		ctx := context.Background()
		r.rt = wazero.NewRuntime(ctx)
		if _, r.err = wasi_snapshot_preview1.Instantiate(ctx, r.rt); r.err != nil {
			return
		}
		if r.err = instantiateEnv(ctx, r.rt); r.err != nil {
			return
		}
		r.compiled, r.err = r.rt.CompileModule(ctx, bin)
	})
	if r.err != nil {
		t.Fatalf("filter module: %v", r.err)
	}
	return r.rt, r.compiled
}

// wasip1Sources are the module's packages that only build for wasip1: the
// test binary does not contain them, so go test's cache would not notice
// when they change.
var wasip1Sources = []string{"internal/abi", "cmd/angzarr-filter"}

// consultWasip1Sources reads those sources from the test process, which
// makes go test key its cached result on them too (it records the files a
// test opens): a changed binding reruns the wasm scenarios.
func consultWasip1Sources() error {
	for _, dir := range wasip1Sources {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".go") {
				if _, err := os.ReadFile(filepath.Join(dir, e.Name())); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// wasmGuest is one instance of the module and the fakeHost it talks to.
type wasmGuest struct {
	t   *testing.T
	h   *fakeHost
	ctx context.Context
	mod api.Module
	fns map[string]api.Function
	cfg []byte
	// status and message are what proxy_get_status answers while a
	// callout's failure is delivered.
	status  Code
	message string
}

type guestKey struct{}

func newWasmGuest(t *testing.T, h *fakeHost, cfg []byte) guest {
	t.Helper()
	rt, compiled := compiledFilter(t)
	g := &wasmGuest{t: t, h: h, cfg: cfg, fns: map[string]api.Function{}}
	g.ctx = context.WithValue(context.Background(), guestKey{}, g)
	name := fmt.Sprintf("filter-%d", wasmRuntime.next.Add(1))
	mod, err := rt.InstantiateModule(g.ctx, compiled, wazero.NewModuleConfig().WithName(name).WithStartFunctions("_initialize"))
	if err != nil {
		t.Fatalf("instantiate the filter: %v", err)
	}
	t.Cleanup(func() { mod.Close(context.Background()) })
	g.mod = mod
	for n := range compiled.ExportedFunctions() {
		g.fns[n] = mod.ExportedFunction(n)
	}
	g.call("proxy_on_context_create", wasmRootID, 0)
	if g.call("proxy_on_vm_start", wasmRootID, 0) != 1 {
		t.Fatal("proxy_on_vm_start refused")
	}
	if g.call("proxy_on_configure", wasmRootID, uint64(len(cfg))) != 1 {
		t.Fatalf("proxy_on_configure refused %s: %q", cfg, h.logs)
	}
	return g
}

// call runs an export; a trap fails the test.
func (g *wasmGuest) call(name string, args ...uint64) uint32 {
	g.t.Helper()
	f := g.fns[name]
	if f == nil {
		g.t.Fatalf("the module exports no %s", name)
	}
	r, err := f.Call(g.ctx, args...)
	if err != nil {
		g.t.Fatalf("%s: %v", name, err)
	}
	if len(r) == 0 {
		return 0
	}
	return uint32(r[0])
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

func (g *wasmGuest) NewStream(id uint32) guestStream {
	g.call("proxy_on_context_create", uint64(id), wasmRootID)
	return wasmStream{g: g, id: id}
}

func (g *wasmGuest) DeleteStream(id uint32) {
	g.call("proxy_on_done", uint64(id))
	g.call("proxy_on_delete", uint64(id))
}

func (g *wasmGuest) OnGrpcReceive(token uint32, size int) {
	g.call("proxy_on_grpc_receive", wasmRootID, uint64(token), uint64(size))
}

func (g *wasmGuest) OnGrpcClose(token uint32, code Code, message string) {
	g.status, g.message = code, message
	g.call("proxy_on_grpc_close", wasmRootID, uint64(token), uint64(code))
	g.status, g.message = OK, ""
}

// wasmStream is a stream context of the module.
type wasmStream struct {
	g  *wasmGuest
	id uint32
}

func (s wasmStream) headers(m MapType) uint64 { return uint64(len(s.g.h.stream(s.id).maps[m])) }

func (s wasmStream) OnRequestHeaders(eos bool) Action {
	return Action(s.g.call("proxy_on_request_headers", uint64(s.id), s.headers(RequestHeaders), b2u(eos)))
}

func (s wasmStream) OnRequestBody(size int, eos bool) Action {
	return Action(s.g.call("proxy_on_request_body", uint64(s.id), uint64(size), b2u(eos)))
}

func (s wasmStream) OnRequestTrailers() Action {
	return Action(s.g.call("proxy_on_request_trailers", uint64(s.id), s.headers(RequestTrailers)))
}

func (s wasmStream) OnResponseHeaders(eos bool) Action {
	return Action(s.g.call("proxy_on_response_headers", uint64(s.id), s.headers(ResponseHeaders), b2u(eos)))
}

func (s wasmStream) OnResponseBody(size int, eos bool) Action {
	return Action(s.g.call("proxy_on_response_body", uint64(s.id), uint64(size), b2u(eos)))
}

func (s wasmStream) OnResponseTrailers() Action {
	return Action(s.g.call("proxy_on_response_trailers", uint64(s.id), s.headers(ResponseTrailers)))
}

// instantiateEnv defines the env functions the filter imports (the
// signatures filter/internal/abi/imports.go declares), each answering from
// the calling harness's fakeHost.
func instantiateEnv(ctx context.Context, rt wazero.Runtime) error {
	b := rt.NewHostModuleBuilder("env")
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	fn := func(name string, params []api.ValueType, f func(g *wasmGuest, m api.Module, s []uint64) proxywasm.Status) {
		b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, m api.Module, s []uint64) {
			g := ctx.Value(guestKey{}).(*wasmGuest)
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
	fn("proxy_log", n(3), func(g *wasmGuest, m api.Module, s []uint64) proxywasm.Status {
		msg, ok := read(m, s[1], s[2])
		if !ok {
			return proxywasm.StatusInvalidMemoryAccess
		}
		if s[0] > uint64(proxywasm.LogCritical) {
			return proxywasm.StatusBadArgument
		}
		g.h.Log(LogLevel(s[0]), string(msg))
		return proxywasm.StatusOK
	})
	fn("proxy_get_current_time_nanoseconds", n(1), func(g *wasmGuest, m api.Module, s []uint64) proxywasm.Status {
		if !m.Memory().WriteUint64Le(uint32(s[0]), uint64(g.h.Now().UnixNano())) {
			return proxywasm.StatusInvalidMemoryAccess
		}
		return proxywasm.StatusOK
	})
	fn("proxy_get_header_map_value", n(5), func(g *wasmGuest, m api.Module, s []uint64) proxywasm.Status {
		mt, ok := mapArg(s[0])
		key, ok2 := read(m, s[1], s[2])
		if !ok || !ok2 {
			return proxywasm.StatusBadArgument
		}
		v, found := g.h.GetHeader(mt, string(key))
		if !found {
			return proxywasm.StatusNotFound
		}
		return g.give(m, []byte(v), s[3], s[4])
	})
	fn("proxy_replace_header_map_value", n(5), func(g *wasmGuest, m api.Module, s []uint64) proxywasm.Status {
		mt, ok := mapArg(s[0])
		key, ok2 := read(m, s[1], s[2])
		val, ok3 := read(m, s[3], s[4])
		if !ok || !ok2 || !ok3 {
			return proxywasm.StatusBadArgument
		}
		return statusOf(g.h.ReplaceHeader(mt, string(key), string(val)))
	})
	fn("proxy_remove_header_map_value", n(3), func(g *wasmGuest, m api.Module, s []uint64) proxywasm.Status {
		mt, ok := mapArg(s[0])
		key, ok2 := read(m, s[1], s[2])
		if !ok || !ok2 {
			return proxywasm.StatusBadArgument
		}
		return statusOf(g.h.RemoveHeader(mt, string(key)))
	})
	fn("proxy_get_buffer_bytes", n(5), func(g *wasmGuest, m api.Module, s []uint64) proxywasm.Status {
		bt := proxywasm.BufferType(s[0])
		if bt == proxywasm.BufferPluginConfig {
			return g.give(m, window(g.cfg, s[1], s[2]), s[3], s[4])
		}
		data, err := g.h.GetBuffer(bt, int(s[1]), int(s[2]))
		if err != nil {
			return proxywasm.StatusBadArgument
		}
		return g.give(m, data, s[3], s[4])
	})
	fn("proxy_get_buffer_status", n(3), func(g *wasmGuest, m api.Module, s []uint64) proxywasm.Status {
		var size int
		switch bt := proxywasm.BufferType(s[0]); bt {
		case proxywasm.BufferGRPCReceive:
			size = len(g.h.grpcBuf)
		case proxywasm.BufferPluginConfig:
			size = len(g.cfg)
		default:
			size = len(g.h.cur().bufs[bt])
		}
		if !m.Memory().WriteUint32Le(uint32(s[1]), uint32(size)) || !m.Memory().WriteUint32Le(uint32(s[2]), 0) {
			return proxywasm.StatusInvalidMemoryAccess
		}
		return proxywasm.StatusOK
	})
	fn("proxy_set_buffer_bytes", n(5), func(g *wasmGuest, m api.Module, s []uint64) proxywasm.Status {
		bt := proxywasm.BufferType(s[0])
		data, ok := read(m, s[3], s[4])
		if !ok {
			return proxywasm.StatusInvalidMemoryAccess
		}
		// fakeHost replaces whole buffers: start 0 and at least the
		// current length, as the binding sends.
		if s[1] != 0 || int(s[2]) < len(g.h.cur().bufs[bt]) {
			return proxywasm.StatusBadArgument
		}
		return statusOf(g.h.SetBuffer(bt, data))
	})
	fn("proxy_send_local_response", n(8), func(g *wasmGuest, m api.Module, s []uint64) proxywasm.Status {
		body, ok := read(m, s[3], s[4])
		raw, ok2 := read(m, s[5], s[6])
		if !ok || !ok2 {
			return proxywasm.StatusInvalidMemoryAccess
		}
		headers, ok := pairs(raw)
		if !ok {
			return proxywasm.StatusBadArgument
		}
		return statusOf(g.h.SendLocalReply(Code(int32(uint32(s[7]))), string(body), headers))
	})
	fn("proxy_continue_stream", n(1), func(g *wasmGuest, m api.Module, s []uint64) proxywasm.Status {
		if t := StreamType(s[0]); t != StreamRequest && t != StreamResponse {
			return proxywasm.StatusBadArgument
		}
		return statusOf(g.h.ContinueStream(StreamType(s[0])))
	})
	fn("proxy_grpc_call", n(12), func(g *wasmGuest, m api.Module, s []uint64) proxywasm.Status {
		target, ok1 := read(m, s[0], s[1])
		service, ok2 := read(m, s[2], s[3])
		method, ok3 := read(m, s[4], s[5])
		rawMD, ok4 := read(m, s[6], s[7])
		msg, ok5 := read(m, s[8], s[9])
		if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 {
			return proxywasm.StatusInvalidMemoryAccess
		}
		cluster, ok := envoyGrpcCluster(target)
		if !ok {
			return proxywasm.StatusParseFailure
		}
		md, ok := pairs(rawMD)
		if !ok {
			return proxywasm.StatusBadArgument
		}
		token, err := g.h.GrpcCall(cluster, string(service), string(method), md, msg, time.Duration(uint32(s[10]))*time.Millisecond)
		if err != nil {
			// Envoy fails a call to an unknown cluster itself.
			return proxywasm.StatusInternalFailure
		}
		if !m.Memory().WriteUint32Le(uint32(s[11]), token) {
			return proxywasm.StatusInvalidMemoryAccess
		}
		return proxywasm.StatusOK
	})
	fn("proxy_get_status", n(3), func(g *wasmGuest, m api.Module, s []uint64) proxywasm.Status {
		if !m.Memory().WriteUint32Le(uint32(s[0]), uint32(g.status)) {
			return proxywasm.StatusInvalidMemoryAccess
		}
		return g.give(m, []byte(g.message), s[1], s[2])
	})
	fn("proxy_set_effective_context", n(1), func(g *wasmGuest, m api.Module, s []uint64) proxywasm.Status {
		if g.h.SetEffectiveContext(uint32(s[0])) != nil {
			return proxywasm.StatusBadArgument
		}
		return proxywasm.StatusOK
	})
	fn("proxy_define_metric", n(4), func(g *wasmGuest, m api.Module, s []uint64) proxywasm.Status {
		name, ok := read(m, s[1], s[2])
		if !ok {
			return proxywasm.StatusInvalidMemoryAccess
		}
		if s[0] > uint64(proxywasm.MetricHistogram) {
			return proxywasm.StatusBadArgument
		}
		id, err := g.h.DefineMetric(MetricType(s[0]), string(name))
		if err != nil {
			return proxywasm.StatusBadArgument
		}
		if !m.Memory().WriteUint32Le(uint32(s[3]), id) {
			return proxywasm.StatusInvalidMemoryAccess
		}
		return proxywasm.StatusOK
	})
	fn("proxy_increment_metric", []api.ValueType{i32, i64}, func(g *wasmGuest, m api.Module, s []uint64) proxywasm.Status {
		return statusOf(g.h.IncrementMetric(uint32(s[0]), int64(s[1])))
	})
	fn("proxy_record_metric", []api.ValueType{i32, i64}, func(g *wasmGuest, m api.Module, s []uint64) proxywasm.Status {
		return statusOf(g.h.RecordMetric(uint32(s[0]), s[1]))
	})
	fn("proxy_set_property", n(4), func(g *wasmGuest, m api.Module, s []uint64) proxywasm.Status {
		path, ok := read(m, s[0], s[1])
		val, ok2 := read(m, s[2], s[3])
		if !ok || !ok2 {
			return proxywasm.StatusInvalidMemoryAccess
		}
		if g.h.SetProperty(string(path), string(val)) != nil {
			return proxywasm.StatusNotFound
		}
		return proxywasm.StatusOK
	})
	_, err := b.Instantiate(ctx)
	return err
}

// statusOf maps a fakeHost error to the status a host answers.
func statusOf(err error) proxywasm.Status {
	if err != nil {
		return proxywasm.StatusBadArgument
	}
	return proxywasm.StatusOK
}

// mapArg accepts the header maps fakeHost keeps.
func mapArg(v uint64) (MapType, bool) {
	return MapType(v), v <= uint64(proxywasm.MapResponseTrailers)
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
func (g *wasmGuest) give(m api.Module, data []byte, retPtr, retSize uint64) proxywasm.Status {
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

// envoyGrpcCluster reads the cluster name of a serialized
// envoy.config.core.v3.GrpcService{envoy_grpc: {cluster_name}}.
func envoyGrpcCluster(b []byte) (string, bool) {
	inner, ok := onlyBytesField(b, 1) // GrpcService.envoy_grpc
	if !ok {
		return "", false
	}
	name, ok := onlyBytesField(inner, 1) // EnvoyGrpc.cluster_name
	return string(name), ok && len(name) > 0
}

// onlyBytesField is the value of b's one field, when it is field num of
// wire type bytes.
func onlyBytesField(b []byte, num protowire.Number) ([]byte, bool) {
	n, typ, l := protowire.ConsumeTag(b)
	if l < 0 || n != num || typ != protowire.BytesType {
		return nil, false
	}
	v, m := protowire.ConsumeBytes(b[l:])
	return v, m >= 0 && l+m == len(b)
}
