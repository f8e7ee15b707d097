// Package wasmhost is a proxy-wasm host on wazero: an HTTP/2 (h2c) gRPC
// proxy that loads the very same .wasm Envoy would load and implements the
// proxy-wasm ABI 0.2.1 with Envoy's semantics. It is the local runtime
// (`angzarr proxy`) and the harness of the end-to-end tests; it is not a
// production proxy.
//
// # API
//
//	h, err := wasmhost.New(ctx, wasmhost.Config{
//		Plugin:   wasmhost.Plugin{Module: wasm, Configuration: pluginJSON},
//		Upstream: "127.0.0.1:9000",                         // business logic
//		Clusters: map[string]string{"eventsvc": "127.0.0.1:9100"},
//	})
//	defer h.Close()
//	go h.ServeAdmin(ctx, adminListener) // /stats/prometheus, /ready
//	err = h.Serve(ctx, listener)        // until ctx is done
//
// Run(ctx) does both on Config.Listen / Config.AdminListen. Host is also an
// http.Handler. UpdatePlugin swaps module and configuration live (new
// streams use the new VMs, running streams finish on the old ones) and
// SetClusters replaces the callout clusters: the hooks for xDS/ECDS.
// Package wasmhosttest starts a Host on 127.0.0.1:0 in tests and builds Go
// proxy-wasm modules with the standard toolchain.
//
// # Loading (Envoy's WasmBase::load / startVm)
//
//   - The module must export proxy_abi_version_0_2_0 or _0_2_1
//     (proxy_get_log_level is importable by 0.2.1 modules only).
//   - Every import must be a host function of module env or of the WASI
//     profile, with the same signature; otherwise the load fails with
//     "missing import: <module>.<name>" / "import type mismatch: …".
//   - An allocator is required: malloc is preferred over
//     proxy_on_memory_allocate.
//   - _initialize then main (or __main_void) if exported, else _start, all
//     under Envoy's initialisation allow-list; allocation runs under the
//     allocation allow-list. A host call outside the list traps
//     ("restricted_callback: … called during _initialize").
//   - Then proxy_on_context_create(root, 0), proxy_on_vm_start(root,
//     vm_config_size) and proxy_on_configure(root, plugin_config_size); a
//     false result fails New / UpdatePlugin (ErrVMStartFailed,
//     ErrConfigureFailed): a refused configuration is never served.
//
// # WASI profiles
//
// envoy-1.33: the 18 functions of proxy-wasm-cpp-host before #533,
// poll_oneoff answers ENOSYS, the narrower allow-lists. envoy-current
// (default): all of wasi_snapshot_preview1 as cpp-host #533 provides it
// (mostly stubs: fd_read ENOSYS, fd_filestat_get BADF, path_filestat_get
// ENOTSUP, path_open NOENT; path_link and path_symlink with cpp-host's
// signatures), poll_oneoff succeeds with zero events. fd_write to stdout and
// stderr is logged (info / error); proc_exit only logs, as in Envoy. The
// module sees no arguments and Plugin.Env as its environment.
//
// # VMs and concurrency
//
// Config.VMs VMs (default GOMAXPROCS), one per Envoy worker, all from one
// compilation (wazero compiler, process-wide compilation cache). As Envoy
// gives each downstream connection to one worker, Serve gives each
// connection one VM (round-robin at accept) and runs all its streams there,
// so a plugin's per-VM state (the angzarr filter's aggregate cache) sees a
// client's whole conversation; streams served through ServeHTTP on another
// server, or whose VM is being replaced, go to the least busy VM. A stream
// stays on one VM. A VM is single-threaded: every call into it — stream
// callbacks, callout results, ticks, queue notifications — holds the VM's
// lock; callouts run on their own goroutines and post their results back
// onto the VM. Streams, request body pumps and callouts run on long-lived
// worker goroutines, whose stacks have already grown deep enough for calls
// into a VM. A trap fails the VM: its streams get UNAVAILABLE (HTTP 503),
// or pass through unfiltered under FailOpen. What follows is the plugin's
// FailurePolicy, as in Envoy: FailClosed (the default) and FailOpen leave
// that worker's plugin failed until the next UpdatePlugin, FailReload
// replaces the VM after ReloadBackoff. A VM's memory is capped at 1 GiB
// (MaxMemoryPages), and a body the plugin stops is buffered up to
// Config.BufferLimitBytes (413 past it). Plugin.Siblings put more plugins
// on the same VMs, one root context each (Envoy's VM sharing by vm_id and
// code); their streams come through PluginHandler / ServePlugin. Callout
// tokens are counted per root context, as in Envoy: two plugins on one VM
// see the same token numbers, and proxy_grpc_cancel/close/send find only
// the calling root's callouts.
//
// # HTTP/2, limits and timeouts
//
// Serve is net/http's server speaking HTTP/1.1 and HTTP/2 with prior
// knowledge (h2c) on one port (server.go); the upstream and the callout
// clusters are reached with net/http's HTTP/2 client over h2c
// (transport.go), which opens another connection when a server's stream
// limit is reached, as Envoy's pool does. Their protections stay on: a
// connection runs at most SETTINGS_MAX_CONCURRENT_STREAMS (1000) handlers
// at once, more streams wait and a connection that queues too many is
// closed; ping, SETTINGS and RST_STREAM floods close the connection;
// request headers are bounded at 60 KiB (Envoy's max_request_headers_kb).
// Envoy's premature-reset defence (ConnectionManagerImpl::
// maybeDrainDueToPrematureResets) closes a connection once half of its
// streams (past 500, or 250 of the first 500) were reset by the client
// within a second: the rapid-reset attack (CVE-2023-44487) ends there.
//
// Stream timeouts (timeouts.go), configurable in Config, with the flags of
// `angzarr proxy` and from the ingress listener's HttpConnectionManager
// over xDS (SetStreamTimeouts):
//
//   - StreamIdleTimeout (Envoy's stream_idle_timeout, default 5 min):
//     nothing moved on the stream either way;
//   - RequestTimeout (Envoy's request_timeout, off in Envoy, 30 s here):
//     the request did not end, and no response began, within it. A
//     command is one small message, and a body that never ends must not
//     hold a stream (a worker thread) of the business logic for the idle
//     timeout's 5 minutes;
//   - RequestHeadersTimeout (Envoy's request_headers_timeout, off in Envoy,
//     10 s here): reading an HTTP/1.1 request's headers.
//
// A timeout is a local reply 408 "stream timeout" / "request timeout"
// (gRPC: UNKNOWN, Envoy's mapping), or a reset once response headers went
// downstream; the stalled body's read is ended and the upstream stream
// cancelled.
//
// # Streams (Envoy's Wasm HTTP filter)
//
//   - Request headers include :authority, :path, :method, :scheme; response
//     headers :status. Keys are lower-case, repeated keys separate entries.
//   - Headers PAUSE stops everything: no body callbacks until
//     proxy_continue_stream (Envoy's StopAllIterationAndWatermark). With
//     Plugin.AllowOnHeadersStopIteration (Envoy's PluginConfig field) it
//     is StopIteration: the body and trailer callbacks go on, the headers
//     stay visible and changeable, and the headers are held until the
//     plugin continues them (proxy_continue_stream, or CONTINUE from a
//     body or trailers callback). In both cases no upstream stream exists
//     before the request headers go on: Envoy's router only sees them once
//     the filter chain continues them (FilterManager::decodeHeaders).
//   - Body PAUSE buffers; body_size is the total buffered; the buffer goes
//     on with CONTINUE, or with continue_stream after a PAUSE at end of
//     stream. Trailers PAUSE holds trailers and any buffered body. A body
//     callback at end of stream may add trailers.
//   - A map or body is visible only in its own callback and while paused
//     after it (also from callout callbacks with
//     proxy_set_effective_context); otherwise maps answer BAD_ARGUMENT and
//     bodies NOT_FOUND. So request headers (and request.* properties) are
//     gone once the request continued, as in Envoy.
//   - proxy_send_local_response: for a gRPC request a trailers-only reply
//     (HTTP 200, grpc-status given or mapped from the HTTP code,
//     grpc-message = the body, percent-encoded); otherwise the HTTP code and
//     body. Sent while the request is processed it runs through the
//     plugin's response callbacks (as Envoy encodes local replies through
//     the filter chain); sent during the response it replaces the response
//     if no header went downstream yet, else the stream is reset.
//   - proxy_close_stream resets the stream. Per stream, the host calls
//     proxy_on_log, proxy_on_done, proxy_on_delete (Envoy's order).
//   - An unreachable upstream is Envoy's local reply 503 / UNAVAILABLE
//     "upstream connect error or disconnect/reset before headers…", which
//     the plugin sees in proxy_on_response_headers.
//
// # Callouts
//
// proxy_http_call and proxy_grpc_call / proxy_grpc_stream go to
// Config.Clusters over HTTP/2 with prior knowledge. Results arrive on the
// root context. http_call: an unknown cluster or missing :method, :path or
// :authority is BAD_ARGUMENT; timeouts and connection failures are
// delivered as 504 / 503 responses, a reset after headers as a call with no
// headers and proxy_get_status BROKEN_CONNECTION "reset". grpc_call (odd
// tokens): service is a cluster name or a serialised GrpcService; success
// delivers proxy_on_grpc_receive only, failure proxy_on_grpc_close only
// (message via proxy_get_status) — Envoy's behaviour. grpc_stream (even
// tokens) delivers initial metadata, each message, trailing metadata, close.
// As Envoy's async gRPC client, a call's :authority is the GrpcService's
// envoy_grpc.authority or else the cluster name (a name that is no valid
// authority fails UNAVAILABLE, as the peer's reset makes it fail); a
// unary call always carries grpc-timeout ("0m" for none); a timeout is
// UNAVAILABLE "upstream request timeout"; a GrpcService naming an unknown
// cluster fails the call with INTERNAL_FAILURE and then delivers a close
// UNAVAILABLE "Cluster not available" for a token the plugin never got;
// an OriginalDst cluster has no host for a callout ("no healthy upstream").
// The server refuses an invalid :authority with 400 before any plugin runs.
//
// # Properties (documented subset of Envoy's attributes)
//
// plugin_name, plugin_root_id, plugin_vm_id; node.id, node.cluster,
// node.metadata[.KEY…] (Config.Node*); request.path, request.url_path,
// request.host, request.scheme, request.method, request.id (x-request-id),
// request.headers[.NAME] (while request headers are available),
// request.protocol; response.code, response.headers[.NAME] (while response
// headers are available); source.address, source.port,
// destination.address, destination.port. Values are serialised like
// Envoy's: strings raw, integers 8-byte little-endian, node metadata
// numbers as 8-byte doubles, maps in the pairs encoding. proxy_set_property
// stores per stream; reading the same path returns it.
//
// # Tracing and command metrics
//
// With a Config.TracerProvider that creates spans (default: the global one,
// as internal/telemetry installs it) the host creates the spans Envoy's
// tracing would: a server span per downstream request, started from its
// W3C headers, whose context replaces the request's traceparent/tracestate
// before proxy_on_request_headers (so what the plugin forwards into its
// callouts descends from it); a client span for the upstream request and
// for every proxy_grpc_call / proxy_http_call (parent: the callout's own
// traceparent metadata, else the stream's request span), injected into
// the request. Names come from SpanNames (AngzarrSpanNames by default:
// aggregate.handle, aggregate.execute, aggregate.sync_projectors,
// saga.orchestrate); the plugin's angzarr.* stream properties become the
// attributes domain, root, correlation_id and outcome. Without a provider
// that creates spans nothing of this runs and headers pass unchanged.
// A stream whose plugin set angzarr.domain is counted when it ends:
// angzarr.command.duration (s) and angzarr.command.total by domain and
// outcome, on Config.MeterProvider or, by default, appended to
// /stats/prometheus as angzarr_command_duration_seconds and
// angzarr_command_total.
//
// # Other host functions
//
// Metrics: counters, gauges, histograms shared by name across VMs, exported
// at /stats/prometheus without prefix (Envoy's wasmcustom namespace) plus
// wasmhost_* host metrics. Shared data (with CAS) and shared queues are
// process-wide per vm_id; proxy_on_queue_ready goes to the root context of
// the VM that registered the queue last. proxy_set_tick_period_milliseconds
// drives proxy_on_tick. proxy_log and stdout/stderr go to Config.Logger with
// attribute plugin=<name>. proxy_call_foreign_function knows no function
// (NOT_FOUND); continue_stream(upstream) is UNIMPLEMENTED.
//
// # Files
//
// The host and its configuration:
//
//	host.go        Host: New, Serve, ServeAdmin, Run, Close, UpdatePlugin,
//	               SetClusters, SetUpstream; hands each stream to a worker
//	config.go      Config and Plugin, their defaults and Validate
//	errors.go      the errors New and UpdatePlugin return
//	admin.go       /stats/prometheus and /ready
//
// HTTP, downstream and upstream:
//
//	server.go      the downstream server (net/http h2c + HTTP/1.1), its
//	               limits, the premature-reset defence
//	transport.go   the client to the upstream and the clusters (net/http
//	               HTTP/2 over h2c)
//	timeouts.go    stream idle and request timeouts
//	proxy.go       one proxied stream: request and response through the
//	               plugin's callbacks (both halves share bodyCallback,
//	               trailersCallback and transfer), local replies
//	stream.go      a stream's state as the plugin sees it: header maps,
//	               bodies, pause/continue, held request headers
//	bodypipe.go    the request body from the pump to the upstream request
//	headers.go     header maps and their conversion to and from net/http
//	local_reply.go local replies rendered as Envoy renders them
//	callout.go     proxy_http_call and the gRPC callouts on the wire
//	tracing.go     the spans Envoy's tracing would create
//	metrics.go     plugin metrics, host metrics, command metrics
//
// The Wasm side:
//
//	module.go      a plugin generation: compile, start and retire its VMs
//	precompile.go  Precompile: a module into the shared compilation cache
//	               (tests compile once per binary, before any wait)
//	pool.go        the VMs of a generation and which stream runs on which
//	vm.go          one VM: instantiation, calls into the module, traps
//	workers.go     long-lived goroutines for streams, pumps and callouts
//	abi*.go        the proxy-wasm host functions, by family, each
//	               returning its status (the ABI's numbers are defined
//	               once, in internal/proxywasm)
//	memory.go      checked access to the module's memory
//	wasi.go        the WASI functions of each Envoy profile
//	shared.go      shared data and shared queues
//	tick.go        proxy_on_tick
//	intern.go      interned header names and property paths
//
// Tests: attack_test.go (rapid reset, ping flood, oversized headers),
// timeouts_test.go (stalled bodies, held headers), proxy_test.go and
// abi_test.go (conformance with the test plugin in testdata/plugin),
// bench_test.go (the no-op plugin's cost).
package wasmhost
