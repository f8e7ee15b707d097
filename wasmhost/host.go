package wasmhost

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
)

// Host is a proxy-wasm host: an h2c gRPC proxy running one plugin in a pool
// of VMs. Create it with New, serve with Serve (or Run), and Close it.
type Host struct {
	cfg     Config
	log     *slog.Logger
	profile profileSpec
	funcs   map[string]map[string]hostFunc

	gen          atomic.Pointer[generation]
	clusters     atomic.Pointer[map[string]string]
	upstreamAddr atomic.Pointer[string] // HOST:PORT of the upstream; SetUpstream replaces it
	timeouts     atomic.Pointer[timeouts]
	updateMu     sync.Mutex

	upstream *h2cTransport // to Config.Upstream
	// connSeq numbers accepted downstream connections: connection i is
	// served by worker (VM slot) i mod VMs.
	connSeq  atomic.Uint64
	callouts *h2cTransport // to clusters
	shared   *sharedStore
	metrics  *metricsRegistry
	commands *commandMetrics
	tracing  *tracing // nil: tracing off

	bg      sync.WaitGroup // background goroutines (callouts, ticks, closes)
	workers *workerPool    // long-lived goroutines for them and for the streams
	closing chan struct{}
	closeMu sync.Mutex
	closed  bool
}

// New loads the plugin and starts its VMs. It fails like Envoy would refuse
// the configuration: a module that does not load (*LoadError), a VM that
// does not start (ErrVMStartFailed) or a configuration the plugin rejects
// (ErrConfigureFailed).
func New(ctx context.Context, cfg Config) (*Host, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.loadModule(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	commands, err := newCommandMetrics(cfg.MeterProvider)
	if err != nil {
		return nil, err
	}
	h := &Host{
		cfg:      cfg,
		log:      cfg.Logger,
		profile:  profileFor(cfg.WASIProfile),
		shared:   newSharedStore(),
		metrics:  newMetricsRegistry(),
		commands: commands,
		tracing:  newTracing(cfg.TracerProvider, cfg.SpanNames),
		closing:  make(chan struct{}),
		workers:  newWorkerPool(workerIdleTimeout),
	}
	h.funcs = map[string]map[string]hostFunc{}
	add := func(fs []hostFunc) {
		for _, f := range fs {
			if h.funcs[f.module] == nil {
				h.funcs[f.module] = map[string]hostFunc{}
			}
			h.funcs[f.module][f.name] = f
		}
	}
	add(envFunctions())
	add(wasiFunctions(moduleWASI, h.profile))
	add(wasiFunctions(moduleWASIUnstable, h.profile))
	clusters := copyClusters(cfg.Clusters)
	h.clusters.Store(&clusters)
	upstream := cfg.Upstream
	h.upstreamAddr.Store(&upstream)
	h.timeouts.Store(&timeouts{idle: cfg.StreamIdleTimeout, request: cfg.RequestTimeout})
	h.upstream = newH2CTransport()
	h.callouts = newClusterTransport(cfg.ClusterTLS)
	g, err := newGeneration(ctx, h, cfg.Plugin)
	if err != nil {
		h.workers.close()
		_ = commands.shutdown(ctx)
		return nil, err
	}
	h.gen.Store(g)
	h.metrics.vmsCreated.Add(int64(cfg.VMs))
	return h, nil
}

func (h *Host) hostFunctions() map[string]map[string]hostFunc { return h.funcs }

func copyClusters(in map[string]string) map[string]string {
	out := make(map[string]string, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}

// UpdatePlugin loads a new module and/or configuration and switches new
// streams to it once all its VMs are configured; streams already running
// finish on the previous VMs, which are closed afterwards. On error the
// current plugin stays in place. (The control plane's ECDS updates use it.)
func (h *Host) UpdatePlugin(ctx context.Context, p Plugin) error {
	h.updateMu.Lock()
	defer h.updateMu.Unlock()
	if h.isClosed() {
		return ErrClosed
	}
	if p.Name == "" {
		p.Name = "angzarr"
	}
	if len(p.Module) == 0 {
		return errors.New("wasmhost: UpdatePlugin needs a module")
	}
	switch p.FailurePolicy {
	case "", FailClosed, FailOpen, FailReload:
	default:
		return fmt.Errorf("wasmhost: unknown failure policy %q", p.FailurePolicy)
	}
	if errs := validateSiblings(p); len(errs) > 0 {
		return errors.Join(errs...)
	}
	g, err := newGeneration(ctx, h, p)
	if err != nil {
		return err
	}
	old := h.gen.Swap(g)
	h.metrics.vmsCreated.Add(int64(h.cfg.VMs))
	if old != nil {
		old.retire()
	}
	h.log.Info("wasm plugin updated", "plugin", p.Name)
	return nil
}

// Plugin returns the plugin new streams run (the last UpdatePlugin's, or
// the configuration's); pushing it again with UpdatePlugin starts fresh
// VMs, as an Envoy configuration push does.
func (h *Host) Plugin() Plugin {
	if g := h.gen.Load(); g != nil {
		return g.plugin
	}
	return h.cfg.Plugin
}

// SetClusters replaces the callout clusters (NAME -> HOST:PORT). Callouts
// already running keep their connection.
func (h *Host) SetClusters(clusters map[string]string) error {
	if errs := validateClusters(clusters); len(errs) > 0 {
		return errors.Join(errs...)
	}
	c := copyClusters(clusters)
	h.clusters.Store(&c)
	return nil
}

// SetUpstream moves the upstream (the business logic) to addr: streams that
// start afterwards go there, streams already running finish where they
// started. (The control plane's CDS updates use it.)
func (h *Host) SetUpstream(addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("wasmhost: Upstream %q: %w", addr, err)
	}
	h.upstreamAddr.Store(&addr)
	return nil
}

// upstreamHost is the current upstream HOST:PORT.
func (h *Host) upstreamHost() string { return *h.upstreamAddr.Load() }

func (h *Host) cluster(name string) (string, bool) {
	addr, ok := (*h.clusters.Load())[name]
	return addr, ok
}

// ServeHTTP proxies one request; Host is an http.Handler so it can also be
// mounted on a server of the caller's own. The stream runs on a worker
// goroutine (see workerPool) while the handler's goroutine waits for it.
func (h *Host) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.serveOn(w, r, "") }

// PluginHandler serves streams on the plugin called name: the main plugin
// or one of its Siblings (on the same VMs, through that plugin's root
// context), as an Envoy listener whose filter chain names that plugin.
// A name no plugin has answers 500 (no such filter configured).
func (h *Host) PluginHandler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.serveOn(w, r, name) })
}

func (h *Host) serveOn(w http.ResponseWriter, r *http.Request, plugin string) {
	t := serveTasks.Get().(*serveTask)
	t.h, t.w, t.r, t.plugin = h, w, r, plugin
	if !h.workers.run(t.fn) {
		t.run() // closed: serve here
	}
	<-t.done
	abort, perr := t.abort, t.panicked
	*t = serveTask{fn: t.fn, done: t.done}
	serveTasks.Put(t)
	if perr != nil {
		panic(perr) // for net/http to recover and log, as from the handler itself
	}
	if abort {
		panic(http.ErrAbortHandler)
	}
}

// serveTask is one ServeHTTP handed to a worker; pooled with its method
// value and channel so the hand-off allocates nothing.
type serveTask struct {
	h        *Host
	w        http.ResponseWriter
	r        *http.Request
	plugin   string // "" for the main plugin
	abort    bool
	panicked any
	fn       func()
	done     chan struct{}
}

var serveTasks = sync.Pool{New: func() any {
	t := &serveTask{done: make(chan struct{}, 1)}
	t.fn = t.run
	return t
}}

func (t *serveTask) run() {
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				t.h.log.Error("panic serving a stream", "panic", p, "stack", string(debug.Stack()))
			}
			t.panicked = p
		}
		t.done <- struct{}{}
	}()
	t.abort = t.h.serve(t.w, t.r, t.plugin)
}

// serve proxies one request; it reports whether the downstream stream must
// be reset.
func (h *Host) serve(w http.ResponseWriter, r *http.Request, plugin string) (abort bool) {
	h.metrics.streams.Add(1)
	h.metrics.activeStreams.Add(1)
	defer h.metrics.activeStreams.Add(-1)
	if !validAuthority(r.Host) {
		// The connection manager refuses it before any filter runs.
		writeLocalReply(w, invalidAuthorityReply(), strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc"))
		return false
	}
	var g *generation
	for {
		g = h.gen.Load()
		if g == nil || g.acquire() {
			break
		}
		// Lost a race with UpdatePlugin: retry on the new generation.
	}
	if g == nil {
		http.Error(w, "wasmhost closed", http.StatusServiceUnavailable)
		return false
	}
	defer g.release()

	worker := -1
	dc, _ := r.Context().Value(downstreamConnKey{}).(*downstreamConn)
	if dc != nil {
		worker = dc.worker
		start := time.Now()
		defer func() {
			// A stream the client reset (or left) before its response
			// was complete counts against its connection.
			if dc.streamEnded(r.Context().Err() != nil, time.Since(start)) {
				h.log.Warn("closed a downstream connection: too many premature stream resets", "remote", dc.conn.RemoteAddr().String())
			}
		}()
	}
	v, err := g.pool.tryAcquire(worker)
	if v == nil && err == nil {
		// Every VM is being replaced: wait, bounded.
		actx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		v, err = g.pool.acquire(actx, worker)
		cancel()
	}
	p := &proxyStream{h: h, w: w, r: r}
	if err != nil {
		if !errors.Is(err, errPluginFailed) {
			h.log.Warn("no wasm VM for stream", "err", err)
		}
		// A placeholder VM that never runs: the stream bypasses the plugin.
		v = &vm{gen: g}
		p.v, p.s = v, newStream(v, r)
		if g.policy() != FailOpen {
			return p.writeDirect(failReply())
		}
		p.s.bypass = true
	} else {
		defer g.pool.release(v)
		p.v, p.s = v, newStream(v, r)
	}
	if plugin != "" && plugin != g.plugin.Name {
		v.mu.Lock()
		root, ok := v.rootNamed(plugin)
		v.mu.Unlock()
		if !ok {
			return p.writeDirect(&localReply{code: http.StatusInternalServerError, body: "no plugin " + plugin, grpcStatus: -1})
		}
		p.s.root = root
	}
	return p.run()
}

// Serve accepts h2c (and HTTP/1.1) connections on ln and proxies them until
// ctx is done; it then shuts the server down gracefully and returns nil.
// The server is net/http's (server.go); each stream is handed to a worker
// goroutine (ServeHTTP).
func (h *Host) Serve(ctx context.Context, ln net.Listener) error {
	return h.ServePlugin(ctx, ln, "")
}

// ServePlugin is Serve for the streams of the plugin called name (Serve's
// is the main plugin; see PluginHandler): a listener of its own, sharing
// the VMs, as Envoy listeners whose filters share a VM.
func (h *Host) ServePlugin(ctx context.Context, ln net.Listener, name string) error {
	var handler http.Handler = h
	if name != "" {
		handler = h.PluginHandler(name)
	}
	srv := newServer(xfccSanitizer{h: h, next: handler}, &h.cfg, h.log, func(ctx context.Context, c net.Conn) context.Context {
		return context.WithValue(ctx, downstreamConnKey{}, &downstreamConn{conn: c, worker: int(h.connSeq.Add(1) - 1)})
	})
	if h.cfg.ListenerTLS != nil {
		cfg := h.cfg.ListenerTLS.Clone()
		cfg.NextProtos = []string{"h2", "http/1.1"}
		srv.Protocols.SetHTTP2(true)
		ln = tls.NewListener(ln, cfg)
	}
	return serve(ctx, ln, srv)
}

// ServeAdmin serves the admin endpoints on ln until ctx is done:
// /stats/prometheus (metrics in Prometheus text format, plugin metrics
// named as Envoy exports them) and /ready.
func (h *Host) ServeAdmin(ctx context.Context, ln net.Listener) error {
	return serve(ctx, ln, newServer(h.AdminHandler(), &h.cfg, h.log, nil))
}

// Run listens on Config.Listen (and Config.AdminListen if set) and serves
// until ctx is done, then closes the host.
func (h *Host) Run(ctx context.Context) error {
	defer h.Close()
	ln, err := net.Listen("tcp", h.cfg.Listen)
	if err != nil {
		return fmt.Errorf("wasmhost: listen %s: %w", h.cfg.Listen, err)
	}
	h.log.Info("wasmhost proxy listening", "addr", ln.Addr().String(), "upstream", h.upstreamHost(), "plugin", h.cfg.Plugin.Name)
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if h.cfg.AdminListen != "" {
		aln, err := net.Listen("tcp", h.cfg.AdminListen)
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("wasmhost: admin listen %s: %w", h.cfg.AdminListen, err)
		}
		h.log.Info("wasmhost admin listening", "addr", aln.Addr().String())
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := h.ServeAdmin(ctx, aln); err != nil {
				errc <- err
				cancel()
			}
		}()
	}
	err = h.Serve(ctx, ln)
	cancel()
	wg.Wait()
	if err != nil {
		return err
	}
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

// goBackground runs f on a worker goroutine Close waits for.
func (h *Host) goBackground(f func()) {
	h.bg.Add(1)
	h.workers.goWorker(f, &h.bg)
}

// workerIdleTimeout is how long an idle worker goroutine waits for a task
// before it exits.
const workerIdleTimeout = 10 * time.Second

func (h *Host) isClosed() bool {
	h.closeMu.Lock()
	defer h.closeMu.Unlock()
	return h.closed
}

// Close stops the VMs (proxy_on_done / proxy_on_delete on each root
// context), cancels callouts and releases everything. Stop serving first.
func (h *Host) Close() error {
	h.closeMu.Lock()
	if h.closed {
		h.closeMu.Unlock()
		return nil
	}
	h.closed = true
	close(h.closing)
	h.closeMu.Unlock()
	h.updateMu.Lock()
	g := h.gen.Swap(nil)
	h.updateMu.Unlock()
	if g != nil {
		g.mu.Lock()
		g.closed = true
		g.mu.Unlock()
		g.shutdown(context.Background())
	}
	h.bg.Wait()
	h.workers.close()
	h.upstream.CloseIdleConnections()
	h.callouts.CloseIdleConnections()
	return h.commands.shutdown(context.Background())
}

var (
	compilationCacheOnce sync.Once
	compilationCache     wazero.CompilationCache
)

// compileLocks holds one mutex per module (by sha256): hosts that load the
// same module at once (angzarr dev starts a proxy per domain) wait for the
// first compile and then hit the shared cache instead of compiling in
// parallel.
var compileLocks sync.Map // [32]byte -> *sync.Mutex

// compile compiles module in rt, once per process for equal bytes.
func compile(ctx context.Context, rt wazero.Runtime, module []byte) (wazero.CompiledModule, error) {
	mu, _ := compileLocks.LoadOrStore(sha256.Sum256(module), &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	return rt.CompileModule(ctx, module)
}

// sharedCompilationCache is the process-wide in-memory compilation cache:
// a module is compiled once per process, whatever the number of VMs,
// plugin generations or hosts (Envoy also compiles a module once and clones
// it per worker).
func sharedCompilationCache() wazero.CompilationCache {
	compilationCacheOnce.Do(func() { compilationCache = wazero.NewCompilationCache() })
	return compilationCache
}

// newRuntime is a wazero runtime on the shared compilation cache: every
// generation's, and Precompile's, so that they find each other's modules.
func newRuntime(ctx context.Context) wazero.Runtime {
	return wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().
		WithCompilationCache(sharedCompilationCache()).
		WithMemoryLimitPages(MaxMemoryPages))
}

// MaxMemoryPages caps a VM's linear memory at 1 GiB (64 KiB pages), as
// Envoy does: proxy-wasm-cpp-host's limits (PROXY_WASM_HOST_MAX_WASM_
// MEMORY_SIZE_BYTES, 1 GiB) and V8's maximum pages. A memory.grow past it
// returns -1; the Go runtime inside the filter then dies with "out of
// memory", which traps the VM (the failure policy decides what follows).
const MaxMemoryPages = 1 << 30 / (64 << 10)
