//go:build !wasip1

package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/angzarr-mesh/angzarr/filter/internal/counter"
	"github.com/angzarr-mesh/angzarr/filter/internal/wasmdrive"
	"github.com/angzarr-mesh/angzarr/internal/wasmbuild"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

var wasmPath string

func TestMain(m *testing.M) { os.Exit(wasmbuild.Run(m, &wasmPath)) }

const i32, i64 = api.ValueTypeI32, api.ValueTypeI64

// envoy133Env is every host function of module "env" that Envoy 1.33
// (proxy-wasm ABI 0.2.1) exports, with its signature where the filter's
// use of it is checked (nil: any signature).
var envoy133Env = map[string][]api.ValueType{
	"proxy_log":                          {i32, i32, i32},
	"proxy_get_log_level":                nil,
	"proxy_get_status":                   {i32, i32, i32},
	"proxy_get_property":                 nil,
	"proxy_set_property":                 {i32, i32, i32, i32},
	"proxy_continue_stream":              {i32},
	"proxy_close_stream":                 nil,
	"proxy_send_local_response":          {i32, i32, i32, i32, i32, i32, i32, i32},
	"proxy_get_shared_data":              nil,
	"proxy_set_shared_data":              nil,
	"proxy_register_shared_queue":        nil,
	"proxy_resolve_shared_queue":         nil,
	"proxy_dequeue_shared_queue":         nil,
	"proxy_enqueue_shared_queue":         nil,
	"proxy_get_buffer_bytes":             {i32, i32, i32, i32, i32},
	"proxy_get_buffer_status":            {i32, i32, i32},
	"proxy_set_buffer_bytes":             {i32, i32, i32, i32, i32},
	"proxy_get_header_map_value":         {i32, i32, i32, i32, i32},
	"proxy_get_header_map_pairs":         nil,
	"proxy_get_header_map_size":          nil,
	"proxy_add_header_map_value":         nil,
	"proxy_replace_header_map_value":     {i32, i32, i32, i32, i32},
	"proxy_remove_header_map_value":      {i32, i32, i32},
	"proxy_set_header_map_pairs":         nil,
	"proxy_http_call":                    nil,
	"proxy_grpc_call":                    {i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32},
	"proxy_grpc_stream":                  nil,
	"proxy_grpc_send":                    nil,
	"proxy_grpc_cancel":                  nil,
	"proxy_grpc_close":                   nil,
	"proxy_set_tick_period_milliseconds": nil,
	"proxy_get_current_time_nanoseconds": {i32},
	"proxy_define_metric":                {i32, i32, i32, i32},
	"proxy_increment_metric":             {i32, i64},
	"proxy_record_metric":                {i32, i64},
	"proxy_get_metric":                   nil,
	"proxy_set_effective_context":        {i32},
	"proxy_done":                         nil,
	"proxy_call_foreign_function":        nil,
}

// envoy133WASI is the wasi_snapshot_preview1 of Envoy 1.33.
var envoy133WASI = map[string]bool{
	"fd_write": true, "fd_read": true, "fd_seek": true, "fd_close": true, "fd_fdstat_get": true,
	"fd_fdstat_set_flags": true, "environ_get": true, "environ_sizes_get": true, "args_get": true,
	"args_sizes_get": true, "clock_time_get": true, "random_get": true, "sched_yield": true,
	"poll_oneoff": true, "proc_exit": true, "path_open": true, "fd_prestat_get": true, "fd_prestat_dir_name": true,
}

// requiredExports are what Envoy needs to load and drive an HTTP filter.
var requiredExports = []string{
	"_initialize", "memory", "malloc", "proxy_abi_version_0_2_1", "proxy_on_memory_allocate",
	"proxy_on_context_create", "proxy_on_vm_start", "proxy_on_configure", "proxy_on_request_headers",
	"proxy_on_request_body", "proxy_on_request_trailers", "proxy_on_response_headers", "proxy_on_response_body",
	"proxy_on_response_trailers", "proxy_on_grpc_receive", "proxy_on_grpc_close", "proxy_on_done", "proxy_on_delete",
}

func compile(t *testing.T) (wazero.Runtime, wazero.CompiledModule) {
	t.Helper()
	ctx := context.Background()
	bin, err := os.ReadFile(wasmPath)
	if err != nil {
		t.Fatal(err)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	t.Cleanup(func() { rt.Close(ctx) })
	cm, err := rt.CompileModule(ctx, bin)
	if err != nil {
		t.Fatal(err)
	}
	return rt, cm
}

// TestImportsWithinEnvoy133 fails on any import Envoy 1.33 does not provide.
func TestImportsWithinEnvoy133(t *testing.T) {
	_, cm := compile(t)
	var names []string
	for _, f := range cm.ImportedFunctions() {
		mod, name, _ := f.Import()
		names = append(names, mod+"."+name)
		switch mod {
		case "env":
			sig, ok := envoy133Env[name]
			if !ok {
				t.Errorf("imports env.%s, which Envoy 1.33 does not export", name)
				continue
			}
			if sig != nil && (!sameTypes(f.ParamTypes(), sig) || !sameTypes(f.ResultTypes(), []api.ValueType{i32})) {
				t.Errorf("env.%s has signature %v -> %v, want %v -> [i32]", name, f.ParamTypes(), f.ResultTypes(), sig)
			}
		case "wasi_snapshot_preview1":
			if !envoy133WASI[name] {
				t.Errorf("imports wasi_snapshot_preview1.%s, which Envoy 1.33 lacks (\"missing import\")", name)
			}
		default:
			t.Errorf("imports %s.%s from a module Envoy does not provide", mod, name)
		}
	}
	sort.Strings(names)
	t.Logf("imports: %s", strings.Join(names, " "))
	exports := cm.ExportedFunctions()
	for _, e := range requiredExports {
		if _, ok := exports[e]; !ok && e != "memory" {
			t.Errorf("missing export %s", e)
		}
	}
	if _, ok := cm.ExportedMemories()["memory"]; !ok {
		t.Error("missing exported memory")
	}
}

func sameTypes(a, b []api.ValueType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestNoProxyCallDuringInitialize instantiates the module with host
// functions that record every call, runs _initialize (as Envoy does) and
// requires that none was made; then drives a root context through
// configuration to show the recording works.
func TestNoProxyCallDuringInitialize(t *testing.T) {
	ctx := context.Background()
	rt, cm := compile(t)
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	var calls []string
	env := rt.NewHostModuleBuilder("env")
	for _, f := range cm.ImportedFunctions() {
		mod, name, _ := f.Import()
		if mod != "env" {
			continue
		}
		results := f.ResultTypes()
		env.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, stack []uint64) {
			calls = append(calls, name)
			for i := range results {
				stack[i] = 0
			}
		}), f.ParamTypes(), results).Export(name)
	}
	if _, err := env.Instantiate(ctx); err != nil {
		t.Fatal(err)
	}
	mod, err := rt.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithStartFunctions("_initialize"))
	if err != nil {
		t.Fatalf("_initialize: %v", err)
	}
	if len(calls) != 0 {
		t.Fatalf("proxy calls during _initialize: %v", calls)
	}
	for _, c := range []struct {
		name string
		args []uint64
	}{
		{"proxy_on_context_create", []uint64{1, 0}},
		{"proxy_on_vm_start", []uint64{1, 0}},
		{"proxy_on_configure", []uint64{1, 0}},
	} {
		if _, err := mod.ExportedFunction(c.name).Call(ctx, c.args...); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
	}
	if len(calls) == 0 {
		t.Fatal("no proxy call recorded after _initialize: the recorder does not work")
	}
	t.Logf("calls after _initialize: %v", calls)
}

// TestCommandThroughModule drives the built module directly (no proxy): a
// create and an update of a counter, a stale command, and enough commands
// for many GC cycles inside the module.
func TestCommandThroughModule(t *testing.T) {
	bin, err := os.ReadFile(wasmPath)
	if err != nil {
		t.Fatal(err)
	}
	d, err := wasmdrive.New(context.Background(), bin, []byte(`{"domains":["counter"]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	root := make([]byte, 16)
	mk := func(seq uint32, delta int64) *pb.CommandBook {
		return &pb.CommandBook{Cover: &pb.Cover{Domain: counter.Domain, Root: &pb.UUID{Value: root}}, Pages: []*pb.CommandPage{counter.Command(delta, seq)}}
	}
	var agg *wasmdrive.Aggregate
	for a := 0; a < 20; a++ {
		root[0] = byte(a)
		agg = &wasmdrive.Aggregate{}
		for i := 0; i < 100; i++ {
			resp, code, err := d.Handle(agg, mk(uint32(i), 1))
			if err != nil || code != 0 {
				t.Fatalf("command %d: code %d, %v (logs %q)", i, code, err, d.Logs)
			}
			if p := resp.GetEvents().GetPages(); len(p) != 1 || p[0].GetNum() != uint32(i) {
				t.Fatalf("command %d answered %v", i, resp)
			}
		}
	}
	// The facts the proxy reads, through proxy_set_property.
	if p := d.Props; p["angzarr.domain"] != counter.Domain || p["angzarr.outcome"] != "ok" ||
		len(p["angzarr.root"]) != 36 || len(p["angzarr.correlation_id"]) != 36 {
		t.Fatalf("stream properties %v", p)
	}
	_, code, err := d.Handle(agg, mk(5, 1))
	if err != nil || code != 10 {
		t.Fatalf("stale command: code %d, %v", code, err)
	}
	if d.Props["angzarr.outcome"] != "aborted" {
		t.Fatalf("stale command's properties %v", d.Props)
	}
}

// TestModuleMemoryUnderEnvoy133 runs many commands, with heap bursts (large
// commands now and then), through the module with poll_oneoff answering
// ENOSYS as in Envoy 1.33: the runtime must never call it, and the module's
// memory must stay bounded (the collector must not stall).
func TestModuleMemoryUnderEnvoy133(t *testing.T) {
	bin, err := os.ReadFile(wasmPath)
	if err != nil {
		t.Fatal(err)
	}
	d, err := wasmdrive.New(context.Background(), bin, []byte(`{"domains":["counter"]}`), wasmdrive.Options{PollENOSYS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	n := 30000
	if testing.Short() {
		n = 5000
	}
	root := make([]byte, 16)
	var agg *wasmdrive.Aggregate
	for i := 0; i < n; i++ {
		seq := uint32(i % 100)
		if seq == 0 {
			copy(root, fmt.Sprintf("%016d", i))
			agg = &wasmdrive.Aggregate{}
		}
		cmd := &pb.CommandBook{Cover: &pb.Cover{Domain: counter.Domain, Root: &pb.UUID{Value: append([]byte(nil), root...)}},
			Pages: []*pb.CommandPage{counter.Command(1, seq)}}
		if i%1000 == 999 {
			// A burst: a command a few hundred KiB large.
			cmd.IdempotencyKey = strings.Repeat("k", 300<<10)
		}
		if _, code, err := d.Handle(agg, cmd); err != nil || code != 0 {
			t.Fatalf("command %d: code %d, %v, poll_oneoff calls %d", i, code, err, d.PollCalls())
		}
	}
	if d.PollCalls() != 0 {
		t.Fatalf("poll_oneoff called %d times", d.PollCalls())
	}
	if mem := d.MemoryBytes(); mem > 64<<20 {
		t.Fatalf("linear memory grew to %d MiB after %d commands", mem>>20, n)
	}
	t.Logf("%d commands: linear memory %d KiB, heap live %d KiB", n, d.MemoryBytes()>>10, d.Gauges["angzarr.filter.heap_live_bytes"]>>10)
}
