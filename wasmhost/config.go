package wasmhost

import (
	"cmp"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	otelmetric "go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// WASIProfile names the set of WASI functions (and their behaviour) a given
// Envoy version offers to Wasm modules.
type WASIProfile string

const (
	// WASIEnvoy133 is the WASI of Envoy 1.33 (proxy-wasm-cpp-host before
	// #533): 18 functions, poll_oneoff answers ENOSYS, and a module importing
	// anything else fails to load with "missing import".
	WASIEnvoy133 WASIProfile = "envoy-1.33"
	// WASIEnvoyCurrent is the WASI of Envoy main with proxy-wasm-cpp-host
	// #533: all of wasi_snapshot_preview1 exists (mostly as stubs) and
	// poll_oneoff succeeds with zero events.
	WASIEnvoyCurrent WASIProfile = "envoy-current"
)

// Plugin is the replaceable part of the configuration: the module and what
// Envoy's Wasm filter config carries with it. Host.UpdatePlugin swaps it live.
type Plugin struct {
	// Module is the .wasm binary. Required unless Config.FilterPath is set.
	Module []byte
	// Name is the plugin name (Envoy's plugin "name"; property plugin_name,
	// and the "plugin" attribute of every log line). Default "angzarr".
	Name string
	// RootID is the root id (property plugin_root_id). Default "".
	RootID string
	// VMID is the vm_id (property plugin_vm_id); shared data and shared
	// queues are scoped by it. Default "".
	VMID string
	// Configuration is the plugin configuration, readable as buffer 7
	// during proxy_on_configure. Default empty.
	Configuration []byte
	// VMConfiguration is the VM configuration, readable as buffer 6 and
	// whose size proxy_on_vm_start receives. Default empty.
	VMConfiguration []byte
	// Env is the environment visible through WASI environ_get (Envoy's
	// vm_config.environment_variables). Default none.
	Env map[string]string
	// AllowOnHeadersStopIteration is Envoy's PluginConfig
	// allow_on_headers_stop_iteration (Envoy >= 1.35): a plugin that stops
	// the request headers still receives the request body and trailers,
	// and the upstream stream opens only once it lets the headers go.
	// Default false: a headers pause stops everything until
	// proxy_continue_stream (StopAllIterationAndWatermark).
	AllowOnHeadersStopIteration bool
	// Siblings are further plugins that share this plugin's VMs, as
	// Envoy shares a VM among the plugins of one vm_id, code and VM
	// configuration (a gateway's per-domain filters): each gets its own
	// root context on every VM, started and configured with its own
	// Configuration; streams reach it through Host.PluginHandler(Name).
	// Only a sibling's Name (required, unique), RootID, Configuration and
	// AllowOnHeadersStopIteration are used. Default none.
	Siblings []Plugin
	// FailurePolicy is Envoy's PluginConfig failure_policy: what a VM that
	// failed (trapped, or its Go runtime died) leaves behind. Default
	// FailClosed.
	FailurePolicy FailurePolicy
	// ReloadBackoff is the base interval of FailReload's back-off (Envoy's
	// reload_config.backoff.base_interval, default 1 s): the time from a
	// failure to the reload; it doubles while reloading fails, up to ten
	// times the base (Envoy's BackoffStrategy default max_interval).
	ReloadBackoff time.Duration
}

// FailurePolicy says what happens to a worker's plugin when its VM fails
// (source/extensions/common/wasm/wasm.cc, getOrCreateThreadLocalPlugin and
// the filter's fail-closed/open handling).
type FailurePolicy string

const (
	// FailClosed (Envoy's FAIL_CLOSED, its default): the worker's plugin
	// stays failed; every later stream of that worker gets 503
	// (UNAVAILABLE) until the next configuration push (UpdatePlugin).
	FailClosed FailurePolicy = "FAIL_CLOSED"
	// FailOpen (FAIL_OPEN): as FailClosed, but the worker's streams pass
	// through unfiltered.
	FailOpen FailurePolicy = "FAIL_OPEN"
	// FailReload (FAIL_RELOAD, Envoy >= 1.33): a new VM replaces the failed
	// one once ReloadBackoff has passed; until then the worker's streams
	// fail closed.
	FailReload FailurePolicy = "FAIL_RELOAD"
)

// DefaultReloadBackoff is Envoy's default reload back-off base interval.
const DefaultReloadBackoff = time.Second

// Config configures a Host. The zero value of every optional field is a
// sensible default, documented per field.
type Config struct {
	// Plugin is the module and its configuration.
	Plugin Plugin
	// FilterPath is read into Plugin.Module when Plugin.Module is empty.
	FilterPath string
	// Upstream is the HOST:PORT every proxied stream goes to, over HTTP/2
	// with prior knowledge (h2c). Required to serve traffic.
	Upstream string
	// Clusters maps cluster names usable by proxy_http_call and
	// proxy_grpc_call to HOST:PORT (HTTP/2 prior knowledge), or to
	// OriginalDst for an ORIGINAL_DST cluster (no host for a callout).
	// Default none.
	Clusters map[string]string
	// FailOpen passes traffic through unfiltered when the plugin fails
	// (trap, no healthy VM), whatever Plugin.FailurePolicy says (the
	// `angzarr proxy --fail-open` switch). Default false: the plugin's
	// failure policy decides.
	FailOpen bool
	// WASIProfile selects the Envoy WASI profile. Default WASIEnvoyCurrent.
	WASIProfile WASIProfile
	// VMs is the number of VMs in the pool (Envoy runs one per worker).
	// Default runtime.GOMAXPROCS(0).
	VMs int
	// Listen is the h2c listen address used by Run. Default "127.0.0.1:15001".
	Listen string
	// AdminListen is the admin listen address used by Run (serves
	// /stats/prometheus and /ready). Default "" (no admin listener).
	AdminListen string
	// NodeID, NodeCluster and NodeMetadata are the Envoy node identity,
	// visible as properties node.id, node.cluster and node.metadata.
	NodeID       string
	NodeCluster  string
	NodeMetadata map[string]any
	// Logger receives the host's logs and the plugin's (proxy_log, stdout,
	// stderr) with attribute plugin=<name>. Default slog.Default().
	Logger *slog.Logger
	// LogLevel is the level proxy_get_log_level reports and below which
	// plugin logs are dropped. Default slog.LevelInfo.
	LogLevel slog.Level
	// TracerProvider creates the proxy's spans: one server span per
	// request, client spans for the upstream request and every callout
	// (tracing.go). Default otel.GetTracerProvider(), resolved by New. A
	// provider that creates no spans (no SDK installed, or noop) turns
	// tracing off: no per-stream work, headers untouched.
	TracerProvider trace.TracerProvider
	// SpanNames names the spans. Default AngzarrSpanNames().
	SpanNames *SpanNames
	// StreamIdleTimeout resets a stream on which nothing moved, in either
	// direction, for this long: a local reply 408 "stream timeout" if no
	// response header went downstream yet, else a reset (Envoy's
	// HttpConnectionManager stream_idle_timeout, whose default it takes).
	// Default 5 min; negative: none.
	StreamIdleTimeout time.Duration
	// RequestTimeout bounds the time from a request's headers to the end
	// of its body: past it the stream gets a local reply 408 "request
	// timeout" (or a reset once response headers went out). Envoy's
	// request_timeout, which Envoy leaves off by default; here the default
	// is 30 s, because a request whose body never ends must not hold a
	// stream of the business logic (one of its worker threads) for the
	// stream idle timeout's 5 minutes when a plugin lets its headers go on
	// first: a command is one small message. Negative: none (for
	// long-lived client-streaming calls).
	RequestTimeout time.Duration
	// RequestHeadersTimeout bounds the time to read an HTTP/1.1 request's
	// headers (Envoy's request_headers_timeout; with HTTP/2 the headers
	// arrive in one block). Default 10 s; negative: none. Envoy leaves it
	// off, but net/http then waits forever for a header that never ends.
	RequestHeadersTimeout time.Duration
	// BufferLimitBytes is the listener's per_connection_buffer_limit_bytes:
	// the most a plugin may buffer of a body it stopped
	// (StopIterationAndBuffer). Past it a request gets Envoy's 413 local
	// reply (gRPC UNKNOWN), a response 500 before its headers went
	// downstream and a reset after (FilterManager's buffer overflow
	// handling). Default 1 MiB, Envoy's default (Istio keeps it for
	// sidecars); negative: none.
	BufferLimitBytes int
	// MeterProvider receives the angzarr.command.duration and
	// angzarr.command.total instruments. Default: a provider of the host's
	// own, rendered at the end of /stats/prometheus.
	MeterProvider otelmetric.MeterProvider

	// ListenerTLS, when set, serves the listener over TLS (HTTP/2 by ALPN)
	// with this configuration, typically requiring client certificates
	// (internal/identity.ServerTLS). Like Envoy's HCM with
	// forward_client_cert_details SANITIZE_SET, a request's own
	// x-forwarded-client-cert is dropped and, on a connection with a client
	// certificate, set to the element By=<ListenerID>;URI=<the client's URI
	// SAN>. Default: cleartext (h2c), and the header is dropped all the same.
	ListenerTLS *tls.Config
	// ListenerID is the proxy's own URI SAN for the By of the
	// x-forwarded-client-cert it sets. Optional.
	ListenerID string
	// ClusterTLS, when set, makes every callout cluster (the event service,
	// coordinators, sagas, projectors) a TLS upstream with this client
	// configuration (internal/identity.ClientTLS), HTTP/2 by ALPN. The
	// business-logic upstream stays cleartext: it is the pod's own.
	// Default: h2c to every cluster.
	ClusterTLS *tls.Config
}

func (c *Config) withDefaults() Config {
	out := *c
	if out.Plugin.Name == "" {
		out.Plugin.Name = "angzarr"
	}
	if out.WASIProfile == "" {
		out.WASIProfile = WASIEnvoyCurrent
	}
	if out.VMs <= 0 {
		out.VMs = runtime.GOMAXPROCS(0)
	}
	if out.Listen == "" {
		out.Listen = "127.0.0.1:15001"
	}
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	if out.TracerProvider == nil {
		out.TracerProvider = otel.GetTracerProvider()
	}
	out.StreamIdleTimeout = timeoutOrDefault(out.StreamIdleTimeout, DefaultStreamIdleTimeout)
	out.RequestTimeout = timeoutOrDefault(out.RequestTimeout, DefaultRequestTimeout)
	out.RequestHeadersTimeout = timeoutOrDefault(out.RequestHeadersTimeout, DefaultRequestHeadersTimeout)
	switch {
	case out.BufferLimitBytes == 0:
		out.BufferLimitBytes = DefaultBufferLimitBytes
	case out.BufferLimitBytes < 0:
		out.BufferLimitBytes = 0
	}
	return out
}

// DefaultBufferLimitBytes is Envoy's default per_connection_buffer_limit_bytes.
const DefaultBufferLimitBytes = 1 << 20

// Timeout defaults (see the Config fields).
const (
	DefaultStreamIdleTimeout     = 5 * time.Minute
	DefaultRequestTimeout        = 30 * time.Second
	DefaultRequestHeadersTimeout = 10 * time.Second
)

// timeoutOrDefault resolves a Config timeout: 0 is the default, negative
// none (0 from then on, which the host and net/http read as "no timeout").
func timeoutOrDefault(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0
	}
	return d
}

// loadModule fills Plugin.Module from FilterPath when needed.
func (c *Config) loadModule() error {
	if len(c.Plugin.Module) > 0 || c.FilterPath == "" {
		return nil
	}
	b, err := os.ReadFile(c.FilterPath)
	if err != nil {
		return fmt.Errorf("wasmhost: read filter: %w", err)
	}
	c.Plugin.Module = b
	return nil
}

// Validate reports every problem of the configuration at once.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Plugin.Module) == 0 && c.FilterPath == "" {
		errs = append(errs, errors.New("wasmhost: a filter module is required (FilterPath or Plugin.Module)"))
	}
	if c.Upstream == "" {
		errs = append(errs, errors.New("wasmhost: Upstream HOST:PORT is required"))
	} else if _, _, err := net.SplitHostPort(c.Upstream); err != nil {
		errs = append(errs, fmt.Errorf("wasmhost: Upstream %q: %w", c.Upstream, err))
	}
	switch c.WASIProfile {
	case "", WASIEnvoy133, WASIEnvoyCurrent:
	default:
		errs = append(errs, fmt.Errorf("wasmhost: unknown WASI profile %q (want %s or %s)", c.WASIProfile, WASIEnvoy133, WASIEnvoyCurrent))
	}
	errs = append(errs, validateSiblings(c.Plugin)...)
	switch c.Plugin.FailurePolicy {
	case "", FailClosed, FailOpen, FailReload:
	default:
		errs = append(errs, fmt.Errorf("wasmhost: unknown failure policy %q (want %s, %s or %s)", c.Plugin.FailurePolicy, FailClosed, FailOpen, FailReload))
	}
	if c.VMs < 0 {
		errs = append(errs, fmt.Errorf("wasmhost: VMs must not be negative, got %d", c.VMs))
	}
	errs = append(errs, validateClusters(c.Clusters)...)
	return errors.Join(errs...)
}

func validateClusters(clusters map[string]string) []error {
	var errs []error
	for name, addr := range clusters {
		if name == "" {
			errs = append(errs, errors.New("wasmhost: cluster with empty name"))
		}
		if addr == OriginalDst {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("wasmhost: cluster %q address %q: %w", name, addr, err))
		}
	}
	return errs
}

// ParseCluster parses a NAME=HOST:PORT cluster flag value.
func ParseCluster(s string) (name, addr string, err error) {
	name, addr, ok := strings.Cut(s, "=")
	if !ok || name == "" || addr == "" {
		return "", "", fmt.Errorf("wasmhost: cluster %q: want NAME=HOST:PORT", s)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return "", "", fmt.Errorf("wasmhost: cluster %q: %w", s, err)
	}
	return name, addr, nil
}

// validateSiblings checks that every sibling plugin has a name of its own.
func validateSiblings(p Plugin) []error {
	var errs []error
	seen := map[string]bool{cmp.Or(p.Name, "angzarr"): true}
	for i, s := range p.Siblings {
		switch {
		case s.Name == "":
			errs = append(errs, fmt.Errorf("wasmhost: sibling plugin %d has no name", i))
		case seen[s.Name]:
			errs = append(errs, fmt.Errorf("wasmhost: plugin name %q used twice", s.Name))
		}
		seen[s.Name] = true
	}
	return errs
}
