package wasmhost_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/angzarr-mesh/angzarr/wasmhost"
)

var errConfigureFailed = wasmhost.ErrConfigureFailed

// newHost creates (and closes at cleanup) a host for the test plugin.
func newHost(t *testing.T, upstream, config string) (*wasmhost.Host, error) {
	t.Helper()
	return newHostWith(t, wasmhost.Config{
		Plugin:   wasmhost.Plugin{Module: pluginWasm(t), Configuration: []byte(config)},
		Upstream: upstream,
		VMs:      1,
	})
}

func newHostWith(t *testing.T, cfg wasmhost.Config) (*wasmhost.Host, error) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(&logRecorder{})
	}
	h, err := wasmhost.New(context.Background(), cfg)
	if err == nil {
		t.Cleanup(func() { h.Close() })
	}
	return h, err
}

// loadModule loads a hand-made module with a recorder and the profile.
func loadModule(t *testing.T, m *wModule, profile wasmhost.WASIProfile) (*logRecorder, error) {
	t.Helper()
	rec := &logRecorder{}
	_, err := newHostWith(t, wasmhost.Config{
		Plugin:      wasmhost.Plugin{Module: m.encode()},
		Upstream:    "127.0.0.1:1",
		VMs:         1,
		WASIProfile: profile,
		Logger:      slog.New(rec),
	})
	return rec, err
}

func wantLoadError(t *testing.T, err error, reason string) {
	t.Helper()
	var le *wasmhost.LoadError
	if !errors.As(err, &le) || !strings.Contains(le.Error(), reason) {
		t.Fatalf("err = %v, want LoadError containing %q", err, reason)
	}
}

// logMessages returns the plugin's log messages (without attributes).
func logMessages(r *logRecorder) []string {
	var out []string
	for _, l := range r.all() {
		msg, _, _ := strings.Cut(l, " |")
		out = append(out, msg)
	}
	return out
}

func TestLoadRequiresABIVersion(t *testing.T) {
	_, err := loadModule(t, proxyModule("", nil), wasmhost.WASIEnvoyCurrent)
	wantLoadError(t, err, "Missing or unknown Proxy-Wasm ABI version")
	_, err = loadModule(t, proxyModule("proxy_abi_version_0_2_0", nil), wasmhost.WASIEnvoyCurrent)
	if err != nil {
		t.Fatalf("0.2.0 module: %v", err)
	}
	_, err = loadModule(t, proxyModule("proxy_abi_version_0_1_0", nil), wasmhost.WASIEnvoyCurrent)
	wantLoadError(t, err, "Missing or unknown Proxy-Wasm ABI version")
}

func TestLoadRequiresAllocator(t *testing.T) {
	m := &wModule{funcs: []wFunc{{export: "proxy_abi_version_0_2_1"}}}
	_, err := loadModule(t, m, wasmhost.WASIEnvoyCurrent)
	wantLoadError(t, err, "Wasm module is missing malloc function.")
}

func TestLoadMissingImports(t *testing.T) {
	filestat := wImport{"wasi_snapshot_preview1", "fd_filestat_get", []byte{tI32, tI32}, []byte{tI32}}
	_, err := loadModule(t, proxyModule("proxy_abi_version_0_2_1", []wImport{filestat}), wasmhost.WASIEnvoy133)
	wantLoadError(t, err, "missing import: wasi_snapshot_preview1.fd_filestat_get")
	if _, err := loadModule(t, proxyModule("proxy_abi_version_0_2_1", []wImport{filestat}), wasmhost.WASIEnvoyCurrent); err != nil {
		t.Fatalf("envoy-current must provide fd_filestat_get: %v", err)
	}
	unknown := wImport{"env", "proxy_no_such_call", nil, []byte{tI32}}
	_, err = loadModule(t, proxyModule("proxy_abi_version_0_2_1", []wImport{unknown}), wasmhost.WASIEnvoyCurrent)
	wantLoadError(t, err, "missing import: env.proxy_no_such_call")
	// proxy_get_log_level only exists for ABI 0.2.1 modules.
	logLevel := wImport{"env", "proxy_get_log_level", []byte{tI32}, []byte{tI32}}
	_, err = loadModule(t, proxyModule("proxy_abi_version_0_2_0", []wImport{logLevel}), wasmhost.WASIEnvoyCurrent)
	wantLoadError(t, err, "missing import: env.proxy_get_log_level")
	// cpp-host declares path_link with one parameter fewer than WASI.
	pathLink := wImport{"wasi_snapshot_preview1", "path_link", []byte{tI32, tI32, tI32, tI32, tI32, tI32, tI32}, []byte{tI32}}
	_, err = loadModule(t, proxyModule("proxy_abi_version_0_2_1", []wImport{pathLink}), wasmhost.WASIEnvoyCurrent)
	wantLoadError(t, err, "import type mismatch: wasi_snapshot_preview1.path_link")
}

// logAt logs the byte at addr (proxy_log is import 0).
func logAt(addr int32) []byte {
	return cat(i32c(2), i32c(addr), i32c(1), call(0), drop)
}

func TestLoadStartFunctions(t *testing.T) {
	// _initialize then main.
	m := proxyModule("proxy_abi_version_0_2_1", []wImport{impLog},
		wFunc{export: "_initialize", body: logAt(100)},
		wFunc{export: "main", params: []byte{tI32, tI32}, results: []byte{tI32}, body: cat(logAt(101), i32c(0))},
		wFunc{export: "_start", body: logAt(102)},
	)
	m.data[100] = "ims"
	rec, err := loadModule(t, m, wasmhost.WASIEnvoyCurrent)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(logMessages(rec), ","); got != "i,m" {
		t.Errorf("start calls = %q, want i,m (no _start with _initialize)", got)
	}
	// _start only.
	m = proxyModule("proxy_abi_version_0_2_1", []wImport{impLog}, wFunc{export: "_start", body: logAt(100)})
	m.data[100] = "s"
	rec, err = loadModule(t, m, wasmhost.WASIEnvoyCurrent)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(logMessages(rec), ","); got != "s" {
		t.Errorf("start calls = %q, want s", got)
	}
}

func TestWASIPollOneoffPerProfile(t *testing.T) {
	// proxy_on_vm_start stores poll_oneoff's errno at 200 and logs it.
	vmStart := wFunc{export: "proxy_on_vm_start", params: []byte{tI32, tI32}, results: []byte{tI32},
		body: cat(i32c(200), i32c(0), i32c(0), i32c(0), i32c(16), call(1), store8, logAt(200), i32c(1))}
	for _, tc := range []struct {
		profile wasmhost.WASIProfile
		errno   byte
	}{{wasmhost.WASIEnvoy133, 52}, {wasmhost.WASIEnvoyCurrent, 0}} {
		rec, err := loadModule(t, proxyModule("proxy_abi_version_0_2_1", []wImport{impLog, impPoll}, vmStart), tc.profile)
		if err != nil {
			t.Fatal(err)
		}
		if got := logMessages(rec); len(got) != 1 || got[0] != string([]byte{tc.errno}) {
			t.Errorf("%s: poll_oneoff errno log = %q, want %d", tc.profile, got, tc.errno)
		}
	}
}

func TestInitializeAllowList(t *testing.T) {
	// poll_oneoff during _initialize: allowed on envoy-current, a trap on 1.33.
	init := wFunc{export: "_initialize", body: cat(i32c(0), i32c(0), i32c(0), i32c(16), call(1), drop)}
	m := proxyModule("proxy_abi_version_0_2_1", []wImport{impLog, impPoll}, init)
	_, err := loadModule(t, m, wasmhost.WASIEnvoy133)
	wantLoadError(t, err, "restricted_callback")
	if _, err := loadModule(t, m, wasmhost.WASIEnvoyCurrent); err != nil {
		t.Fatal(err)
	}
	// A proxy_* call other than proxy_log during _initialize traps.
	getLevel := wImport{"env", "proxy_get_log_level", []byte{tI32}, []byte{tI32}}
	m = proxyModule("proxy_abi_version_0_2_1", []wImport{getLevel}, wFunc{export: "_initialize", body: cat(i32c(16), call(0), drop)})
	_, err = loadModule(t, m, wasmhost.WASIEnvoyCurrent)
	wantLoadError(t, err, "restricted_callback: env.proxy_get_log_level called during _initialize")
	// The Go plugin calling proxy_get_property from init() cannot load.
	_, err = newHostWith(t, wasmhost.Config{Plugin: wasmhost.Plugin{Module: pluginWasm(t, "initcall")}, Upstream: "127.0.0.1:1", VMs: 1})
	wantLoadError(t, err, "restricted_callback: env.proxy_get_property called during _initialize")
}

func TestGoPluginLoadsUnderBothProfiles(t *testing.T) {
	for _, p := range []wasmhost.WASIProfile{wasmhost.WASIEnvoy133, wasmhost.WASIEnvoyCurrent} {
		rec := &logRecorder{}
		_, err := newHostWith(t, wasmhost.Config{Plugin: wasmhost.Plugin{Module: pluginWasm(t)}, Upstream: "127.0.0.1:1", VMs: 1, WASIProfile: p, Logger: slog.New(rec)})
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if !rec.hasFact("init") {
			t.Errorf("%s: init() did not log through proxy_log", p)
		}
	}
}
