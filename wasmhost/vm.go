package wasmhost

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/angzarr-mesh/angzarr/internal/proxywasm"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// phase tells which allow-list restricts host calls right now.
type phase uint8

const (
	phaseNormal phase = iota
	phaseInitialize
	phaseAllocate
)

// vm is one instance of the module: Envoy's per-worker Wasm VM. A module is
// single-threaded, so every entry into it — stream callbacks, callout
// results, ticks, queue notifications — happens with mu held. Host
// functions run inside those calls, on the same goroutine, and therefore
// also under mu; they never block and never take another VM's lock.
type vm struct {
	gen  *generation
	log  *slog.Logger
	id   int // index for logs
	mod  api.Module
	mem  api.Memory
	ctx  context.Context // carries vmKey for host functions
	env  []string        // WASI environment, "K=V"
	mu   sync.Mutex
	done chan struct{} // closed when the VM is closed

	phase      phase
	failed     bool
	failErr    error
	unusable   atomic.Bool // failed or closed; readable without mu
	closed     bool
	stack      [16]uint64
	allocStack [1]uint64
	fnAlloc    api.Function
	fns        map[string]api.Function

	rootID    uint32
	nextID    uint32
	current   uint32 // context of the callback being run
	effective uint32 // set by proxy_set_effective_context; 0 = current
	streams   map[uint32]*stream

	// Root-context state visible during callbacks.
	configuring bool // plugin configuration readable (buffer 7)
	// roots maps every root context to its plugin: rootID to the
	// generation's plugin, one more per sibling (Plugin.Siblings).
	roots map[uint32]*Plugin
	// configPlugin is the plugin whose root is being configured.
	configPlugin  *Plugin
	callData      []byte        // buffer 8 (foreign function arguments)
	httpResp      *calloutReply // during proxy_on_http_call_response
	grpcRecv      []byte        // during proxy_on_grpc_receive
	grpcRecvSet   bool
	grpcInitMeta  *headerMap // during proxy_on_grpc_receive_initial_metadata
	grpcTrailMeta *headerMap // during proxy_on_grpc_receive_trailing_metadata
	statusCode    uint32     // proxy_get_status
	statusMsg     string
	rootDone      bool // proxy_on_done(root) returned false; proxy_done pending
	rootDoneCh    chan struct{}

	// Callouts in flight and each root context's token counters
	// (callout.go: calloutID).
	tokens   map[uint32]*tokenCounters
	callouts map[calloutID]*callout

	// Metrics defined by this VM: id -> shared metric.
	metrics    map[uint32]*metric
	nextMetric [3]uint32

	tick tickState

	active int // streams in flight (pool balancing), guarded by pool.mu
}

// newVM instantiates the module and starts it the way Envoy does.
func newVM(ctx context.Context, g *generation, id int) (*vm, error) {
	v := &vm{
		gen:      g,
		id:       id,
		log:      g.h.log.With("plugin", g.plugin.Name, "vm", id),
		env:      envList(g.plugin.Env),
		done:     make(chan struct{}),
		nextID:   1,
		streams:  make(map[uint32]*stream),
		tokens:   make(map[uint32]*tokenCounters),
		callouts: make(map[calloutID]*callout),
		metrics:  make(map[uint32]*metric),
		fns:      make(map[string]api.Function),
	}
	v.ctx = context.WithValue(context.Background(), vmKey{}, v)
	mod, err := g.rt.InstantiateModule(v.ctx, g.compiled, wazero.NewModuleConfig().WithName("").WithStartFunctions())
	if err != nil {
		return nil, &LoadError{Reason: "failed to instantiate module", Err: err}
	}
	v.mod = mod
	v.mem = mod.Memory()
	if v.mem == nil {
		_ = mod.Close(ctx)
		return nil, &LoadError{Reason: "module exports no memory"}
	}
	if f := mod.ExportedFunction("malloc"); f != nil {
		v.fnAlloc = f
	} else {
		v.fnAlloc = mod.ExportedFunction("proxy_on_memory_allocate")
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.start(); err != nil {
		v.closeLocked()
		return nil, err
	}
	return v, nil
}

// start runs _initialize (+ main) or _start under the initialization
// allow-list, then creates the root context and calls proxy_on_vm_start and
// proxy_on_configure.
func (v *vm) start() error {
	v.phase = phaseInitialize
	run := func(name string, args ...uint64) error {
		f := v.mod.ExportedFunction(name)
		if f == nil {
			return nil
		}
		if _, err := f.Call(v.ctx, args...); err != nil {
			return &LoadError{Reason: "Function: " + name + " failed", Err: err}
		}
		return nil
	}
	var err error
	if v.mod.ExportedFunction("_initialize") != nil {
		err = run("_initialize")
		if err == nil {
			if f := v.mod.ExportedFunction("main"); f != nil {
				err = run("main", make([]uint64, len(f.Definition().ParamTypes()))...)
			} else {
				err = run("__main_void")
			}
		}
	} else {
		err = run("_start")
	}
	v.phase = phaseNormal
	if err != nil {
		return err
	}
	v.rootID = v.allocID()
	if _, ok := v.callExport("proxy_on_context_create", v.rootID, uint64(v.rootID), 0); !ok {
		return v.failErr
	}
	if f := v.fn("proxy_on_vm_start"); f != nil {
		r, ok := v.callExport("proxy_on_vm_start", v.rootID, uint64(v.rootID), uint64(len(v.gen.plugin.VMConfiguration)))
		if !ok {
			return v.failErr
		}
		if uint32(r) == 0 {
			return ErrVMStartFailed
		}
	}
	v.roots = map[uint32]*Plugin{v.rootID: &v.gen.plugin}
	if err := v.configure(v.rootID, &v.gen.plugin); err != nil {
		return err
	}
	// Each sibling's own root context, started and configured as Envoy
	// does for every plugin on a VM (ContextBase::onStart, onConfigure).
	for i := range v.gen.plugin.Siblings {
		sib := &v.gen.plugin.Siblings[i]
		id := v.allocID()
		v.roots[id] = sib
		if _, ok := v.callExport("proxy_on_context_create", id, uint64(id), 0); !ok {
			return v.failErr
		}
		if f := v.fn("proxy_on_vm_start"); f != nil {
			r, ok := v.callExport("proxy_on_vm_start", id, uint64(id), uint64(len(v.gen.plugin.VMConfiguration)))
			if !ok {
				return v.failErr
			}
			if uint32(r) == 0 {
				return ErrVMStartFailed
			}
		}
		if err := v.configure(id, sib); err != nil {
			return err
		}
	}
	return nil
}

// configure runs proxy_on_configure for root with p's configuration.
func (v *vm) configure(root uint32, p *Plugin) error {
	if f := v.fn("proxy_on_configure"); f == nil {
		return nil
	}
	v.configuring, v.configPlugin = true, p
	r, ok := v.callExport("proxy_on_configure", root, uint64(root), uint64(len(p.Configuration)))
	v.configuring, v.configPlugin = false, nil
	if !ok {
		return v.failErr
	}
	if uint32(r) == 0 {
		return ErrConfigureFailed
	}
	return nil
}

// currentRoot is the root context the running callback belongs to: the
// root of the stream it acts on, or the root being called.
func (v *vm) currentRoot() uint32 {
	if s := v.contextStream(); s != nil {
		return s.root
	}
	if v.effective != 0 && v.roots[v.effective] != nil {
		return v.effective
	}
	if v.roots[v.current] != nil {
		return v.current
	}
	return v.rootID
}

// pluginOf is the plugin of root context root (the generation's when
// unknown).
func (v *vm) pluginOf(root uint32) *Plugin {
	if p := v.roots[root]; p != nil {
		return p
	}
	return &v.gen.plugin
}

// rootNamed is the root context of the plugin called name.
func (v *vm) rootNamed(name string) (uint32, bool) {
	for id, p := range v.roots {
		if p.Name == name {
			return id, true
		}
	}
	return 0, false
}

func (v *vm) allocID() uint32 {
	id := v.nextID
	v.nextID++
	return id
}

// fn returns the exported function, or nil.
func (v *vm) fn(name string) api.Function {
	if f, ok := v.fns[name]; ok {
		return f
	}
	f := v.mod.ExportedFunction(name)
	v.fns[name] = f
	return f
}

// callExport calls an exported callback for context ctxID with mu held. A
// missing export returns (0, true), like cpp-host skipping absent callbacks.
// ok is false when the VM has failed (now or before); the VM is then
// replaced by its pool.
func (v *vm) callExport(name string, ctxID uint32, args ...uint64) (uint64, bool) {
	if v.failed || v.closed {
		if v.failErr == nil {
			v.failErr = ErrClosed
		}
		return 0, false
	}
	f := v.fn(name)
	if f == nil {
		return 0, true
	}
	savedCur, savedEff := v.current, v.effective
	v.current, v.effective = ctxID, 0
	stack := v.stack[:]
	copy(stack, args)
	err := f.CallWithStack(v.ctx, stack)
	v.current, v.effective = savedCur, savedEff
	if err != nil {
		v.fail(&TrapError{Func: name, Err: err})
		return 0, false
	}
	return stack[0], true
}

// fail marks the VM failed: every stream on it is woken to fail (or pass
// through under FailOpen). Under FailReload the pool replaces the VM after
// the back-off; otherwise it stays in its slot, failed, and the worker's
// streams fail (or pass through) until the next UpdatePlugin, as in Envoy.
func (v *vm) fail(err error) {
	if v.failed {
		return
	}
	v.failed = true
	v.unusable.Store(true)
	v.failErr = err
	v.log.Error("wasm VM failed", "err", err)
	v.gen.h.metrics.vmFailures.Add(1)
	for _, s := range v.streams {
		s.cond.Broadcast()
	}
	v.cancelCallouts()
	v.tick.stop()
	if v.gen.policy() == FailReload {
		v.gen.pool.replace(v)
		return
	}
	v.log.Error("wasm plugin failed on this worker until the next configuration push", "policy", string(v.gen.policy()))
}

// contextStream returns the stream the current host call acts on (the
// effective context if set and alive, else the current one), or nil for the
// root context.
func (v *vm) contextStream() *stream {
	id := v.current
	if v.effective != 0 {
		if _, ok := v.streams[v.effective]; ok || v.roots[v.effective] != nil {
			id = v.effective
		}
	}
	return v.streams[id]
}

// logHost logs a host-side message about the module at error level, as
// Envoy's context->error does for unsupported WASI calls.
func (v *vm) logHost(msg string) { v.log.Debug(msg) }

// pluginLog emits a plugin log line at the given proxy-wasm level.
func (v *vm) pluginLog(level proxywasm.LogLevel, msg string) {
	var l slog.Level
	switch level {
	case proxywasm.LogTrace:
		l = slog.LevelDebug - 4
	case proxywasm.LogDebug:
		l = slog.LevelDebug
	case proxywasm.LogInfo:
		l = slog.LevelInfo
	case proxywasm.LogWarn:
		l = slog.LevelWarn
	default:
		l = slog.LevelError
	}
	if l < v.gen.h.cfg.LogLevel {
		return
	}
	v.log.Log(context.Background(), l, msg, "wasm_level", int(level))
}

// close runs the root context's proxy_on_done / proxy_on_delete and closes
// the instance. It waits (bounded by ctx) for proxy_done if proxy_on_done
// returns false.
func (v *vm) close(ctx context.Context) {
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return
	}
	if !v.failed && v.rootID != 0 {
		r, ok := v.callExport("proxy_on_done", v.rootID, uint64(v.rootID))
		if ok && v.fn("proxy_on_done") != nil && uint32(r) == 0 {
			v.rootDone = true
			v.rootDoneCh = make(chan struct{})
			ch := v.rootDoneCh
			v.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
			case <-time.After(5 * time.Second):
			}
			v.mu.Lock()
		}
		if !v.failed && !v.closed {
			v.callExport("proxy_on_delete", v.rootID, uint64(v.rootID))
		}
		for id := range v.roots {
			if id != v.rootID && !v.failed && !v.closed {
				v.callExport("proxy_on_delete", id, uint64(id))
			}
		}
	}
	v.closeLocked()
	v.mu.Unlock()
}

func (v *vm) closeLocked() {
	if v.closed {
		return
	}
	v.closed = true
	v.unusable.Store(true)
	v.cancelCallouts()
	v.tick.stop()
	close(v.done)
	if v.mod != nil {
		_ = v.mod.Close(context.Background())
	}
	for _, s := range v.streams {
		s.cond.Broadcast()
	}
}

func (v *vm) String() string { return fmt.Sprintf("vm#%d", v.id) }
