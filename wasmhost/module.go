package wasmhost

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// generation is one loaded plugin: a wazero runtime with the host modules of
// the configured WASI profile, the compiled module, and its pool of VMs.
// Host.UpdatePlugin starts a new generation for new streams while streams
// already running finish on the old one.
type generation struct {
	h        *Host
	plugin   Plugin
	rt       wazero.Runtime
	compiled wazero.CompiledModule
	pool     *pool

	mu      sync.Mutex
	refs    int  // streams in flight
	retired bool // replaced; close when refs reaches 0
	closed  bool
}

// abiVersions are the proxy-wasm ABI version exports we accept, newest first.
var abiVersions = []string{"proxy_abi_version_0_2_1", "proxy_abi_version_0_2_0"}

// newGeneration compiles and checks the module like Envoy's WasmBase::load
// and starts every VM of the pool (proxy_on_vm_start and proxy_on_configure
// must succeed on all of them).
func newGeneration(ctx context.Context, h *Host, p Plugin) (*generation, error) {
	g := &generation{h: h, plugin: p}
	g.rt = newRuntime(ctx)
	ok := false
	defer func() {
		if !ok {
			_ = g.rt.Close(context.Background())
		}
	}()
	funcs := h.hostFunctions()
	if err := registerHostModules(ctx, g.rt, funcs, h.profile); err != nil {
		return nil, err
	}
	compiled, err := compile(ctx, g.rt, p.Module)
	if err != nil {
		return nil, &LoadError{Reason: "Failed to load Wasm bytecode", Err: err}
	}
	g.compiled = compiled
	if err := checkModule(compiled, funcs); err != nil {
		return nil, err
	}
	g.pool, err = newPool(ctx, g, h.cfg.VMs)
	if err != nil {
		return nil, err
	}
	ok = true
	return g, nil
}

// registerHostModules instantiates env, wasi_snapshot_preview1 and
// wasi_unstable in rt, each function guarded by the profile's allow-lists.
func registerHostModules(ctx context.Context, rt wazero.Runtime, funcs map[string]map[string]hostFunc, ps profileSpec) error {
	for _, module := range []string{moduleEnv, moduleWASI, moduleWASIUnstable} {
		b := rt.NewHostModuleBuilder(module)
		names := make([]string, 0, len(funcs[module]))
		for n := range funcs[module] {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			f := funcs[module][n]
			b.NewFunctionBuilder().
				WithGoModuleFunction(goFunc(f, ps.allowed(ps.initAllow, f), ps.allowed(ps.allocAllow, f)), f.params, f.results).
				WithName(n).
				Export(n)
		}
		if _, err := b.Instantiate(ctx); err != nil {
			return fmt.Errorf("wasmhost: host module %s: %w", module, err)
		}
	}
	return nil
}

// checkModule applies Envoy's load-time checks: an ABI version export, every
// import provided with the same signature, and an allocator.
func checkModule(c wazero.CompiledModule, funcs map[string]map[string]hostFunc) error {
	exports := c.ExportedFunctions()
	abi := ""
	for _, name := range abiVersions {
		if _, ok := exports[name]; ok {
			abi = name
			break
		}
	}
	if abi == "" {
		return &LoadError{Reason: "Missing or unknown Proxy-Wasm ABI version"}
	}
	for _, imp := range c.ImportedFunctions() {
		module, name, _ := imp.Import()
		f, ok := funcs[module][name]
		if !ok || (abi != "proxy_abi_version_0_2_1" && module == moduleEnv && abi021Only[name]) {
			return &LoadError{Reason: "missing import: " + module + "." + name}
		}
		if !sameTypes(imp.ParamTypes(), f.params) || !sameTypes(imp.ResultTypes(), f.results) {
			return &LoadError{Reason: "import type mismatch: " + module + "." + name}
		}
	}
	if _, ok := exports["malloc"]; !ok {
		if _, ok := exports["proxy_on_memory_allocate"]; !ok {
			return &LoadError{Reason: "Wasm module is missing malloc function."}
		}
	}
	return nil
}

func sameTypes(a, b []api.ValueType) bool { return slices.Equal(a, b) }

// acquire registers a stream on the generation; false if it is closed.
func (g *generation) acquire() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.refs++
	return true
}

// release ends a stream; a retired generation closes with its last stream.
func (g *generation) release() {
	g.mu.Lock()
	g.refs--
	closeNow := g.retired && g.refs == 0 && !g.closed
	if closeNow {
		g.closed = true
	}
	g.mu.Unlock()
	if closeNow {
		g.h.goBackground(func() { g.shutdown(context.Background()) })
	}
}

// retire marks the generation replaced; it closes once idle.
func (g *generation) retire() {
	g.mu.Lock()
	g.retired = true
	closeNow := g.refs == 0 && !g.closed
	if closeNow {
		g.closed = true
	}
	g.mu.Unlock()
	if closeNow {
		g.h.goBackground(func() { g.shutdown(context.Background()) })
	}
}

// policy is the generation's effective failure policy: FailOpen when the
// host's FailOpen forces it, else the plugin's (default FailClosed).
func (g *generation) policy() FailurePolicy {
	switch {
	case g.h.cfg.FailOpen:
		return FailOpen
	case g.plugin.FailurePolicy == "":
		return FailClosed
	}
	return g.plugin.FailurePolicy
}

// shutdown closes every VM and the runtime.
func (g *generation) shutdown(ctx context.Context) {
	if g.pool != nil {
		g.pool.close(ctx)
	}
	_ = g.rt.Close(ctx)
}
