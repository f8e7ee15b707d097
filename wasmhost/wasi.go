package wasmhost

import (
	"crypto/rand"
	"encoding/binary"
	"sort"
	"strings"
	"time"

	"github.com/angzarr-mesh/angzarr/internal/proxywasm"
	"github.com/tetratelabs/wazero/api"
)

// The WASI the host provides, per Envoy profile. Envoy does not give modules
// a WASI runtime: it answers a fixed set of wasi_snapshot_preview1 (and
// wasi_unstable) imports itself, writing stdout/stderr to its log and
// stubbing the rest. We do the same, so a module that would not load in a
// given Envoy does not load here either.

// wasiEnvoy133 is the set of proxy-wasm-cpp-host before #533 (Envoy 1.33).
var wasiEnvoy133 = []string{
	"fd_write", "fd_read", "fd_seek", "fd_close", "fd_fdstat_get", "fd_fdstat_set_flags",
	"environ_get", "environ_sizes_get", "args_get", "args_sizes_get", "clock_time_get",
	"random_get", "sched_yield", "poll_oneoff", "proc_exit", "path_open",
	"fd_prestat_get", "fd_prestat_dir_name",
}

// Allow-lists of the _initialize phase (WasmBase::startVm) and of memory
// allocation (WasmBase::allocMemory), per profile. Names are "module.name";
// every WASI name applies to both wasi_unstable and wasi_snapshot_preview1.
var (
	initAllowEnvoy133 = []string{
		"env.emscripten_notify_memory_growth", "env.proxy_log",
		"fd_write", "args_sizes_get", "args_get", "environ_sizes_get", "environ_get",
		"fd_prestat_get", "fd_prestat_dir_name", "clock_time_get", "random_get",
		"fd_fdstat_get", "fd_fdstat_set_flags",
	}
	initAllowEnvoyCurrent = []string{
		"env.emscripten_notify_memory_growth", "env.proxy_log",
		"fd_write", "args_sizes_get", "args_get", "environ_sizes_get", "environ_get",
		"clock_time_get", "clock_res_get", "random_get", "poll_oneoff",
		"fd_fdstat_get", "fd_fdstat_set_flags",
		"fd_advise", "fd_allocate", "fd_datasync", "fd_fdstat_set_rights", "fd_filestat_get",
		"fd_filestat_set_size", "fd_filestat_set_times", "fd_pread", "fd_prestat_dir_name",
		"fd_prestat_get", "fd_pwrite", "fd_readdir", "fd_renumber", "fd_sync", "fd_tell",
		"path_create_directory", "path_filestat_get", "path_filestat_set_times", "path_link",
		"path_readlink", "path_remove_directory", "path_rename", "path_symlink",
		"path_unlink_file", "sock_accept", "sock_recv", "sock_send", "sock_shutdown",
	}
	allocAllowEnvoy133     = []string{"env.proxy_log", "fd_write", "clock_time_get"}
	allocAllowEnvoyCurrent = []string{"env.proxy_log", "fd_write", "clock_time_get", "poll_oneoff"}
)

// profileSpec is what a WASI profile decides.
type profileSpec struct {
	wasi       map[string]bool // WASI function names provided; nil = all
	initAllow  map[string]bool
	allocAllow map[string]bool
	pollENOSYS bool
}

func setOf(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

func profileFor(p WASIProfile) profileSpec {
	if p == WASIEnvoy133 {
		return profileSpec{wasi: setOf(wasiEnvoy133), initAllow: setOf(initAllowEnvoy133), allocAllow: setOf(allocAllowEnvoy133), pollENOSYS: true}
	}
	return profileSpec{initAllow: setOf(initAllowEnvoyCurrent), allocAllow: setOf(allocAllowEnvoyCurrent)}
}

// allowed reports whether f may be called in a restricted phase whose
// allow-list is allow.
func (ps profileSpec) allowed(allow map[string]bool, f hostFunc) bool {
	if f.module == moduleEnv {
		return allow[f.fullName()]
	}
	return allow[f.name]
}

// wasiFunc is a WASI function's Go implementation: it returns the errno,
// which becomes its i32 result, as wazero's own WASI functions do.
type wasiFunc func(v *vm, stack []uint64) proxywasm.Errno

// wasiFunctions returns the WASI functions of the profile, for one module
// name (wasi_snapshot_preview1 or wasi_unstable).
func wasiFunctions(module string, ps profileSpec) []hostFunc {
	w := func(name string, params []api.ValueType, impl wasiFunc) hostFunc {
		return hostFunc{module: module, name: name, params: params, results: ret32, impl: func(v *vm, s []uint64) {
			s[0] = uint64(impl(v, s))
		}}
	}
	ret := func(e proxywasm.Errno) wasiFunc { return func(*vm, []uint64) proxywasm.Errno { return e } }
	stdio := func(v *vm, s []uint64) proxywasm.Errno {
		if fd := uint32(s[0]); fd != 1 && fd != 2 {
			return proxywasm.ErrnoBadf
		}
		return proxywasm.ErrnoSuccess
	}
	p := func(types ...api.ValueType) []api.ValueType { return types }
	all := []hostFunc{
		w("fd_write", sig(4), wasiFdWrite),
		w("fd_read", sig(4), ret(proxywasm.ErrnoNosys)),
		w("fd_seek", p(i32, i64, i32, i32), func(v *vm, _ []uint64) proxywasm.Errno {
			v.logHost("wasi_unstable fd_seek")
			return proxywasm.ErrnoSuccess
		}),
		w("fd_close", sig(1), func(v *vm, _ []uint64) proxywasm.Errno {
			v.logHost("wasi_unstable fd_close")
			return proxywasm.ErrnoSuccess
		}),
		w("fd_fdstat_get", sig(2), wasiFdFdstatGet),
		w("fd_fdstat_set_flags", sig(2), ret(proxywasm.ErrnoNosys)),
		w("environ_get", sig(2), wasiEnvironGet),
		w("environ_sizes_get", sig(2), wasiEnvironSizesGet),
		w("args_get", sig(2), ret(proxywasm.ErrnoSuccess)),
		w("args_sizes_get", sig(2), wasiArgsSizesGet),
		w("clock_time_get", p(i32, i64, i32), wasiClockTimeGet),
		w("random_get", sig(2), wasiRandomGet),
		w("sched_yield", nil, ret(proxywasm.ErrnoSuccess)),
		w("poll_oneoff", sig(4), func(v *vm, s []uint64) proxywasm.Errno {
			if ps.pollENOSYS {
				return proxywasm.ErrnoNosys
			}
			if !v.writeU32(uint32(s[3]), 0) {
				return proxywasm.ErrnoFault
			}
			return proxywasm.ErrnoSuccess
		}),
		{module: module, name: "proc_exit", params: sig(1), impl: func(v *vm, s []uint64) { v.logHost("wasi_unstable proc_exit") }},
		w("path_open", p(i32, i32, i32, i32, i32, i64, i64, i32, i32), ret(proxywasm.ErrnoNoent)),
		w("fd_prestat_get", sig(2), ret(proxywasm.ErrnoBadf)),
		w("fd_prestat_dir_name", sig(3), ret(proxywasm.ErrnoNosys)),
		// The rest exist from cpp-host #533 on (envoy-current).
		w("clock_res_get", sig(2), wasiClockResGet),
		w("fd_advise", p(i32, i64, i64, i32), ret(proxywasm.ErrnoSuccess)),
		w("fd_allocate", p(i32, i64, i64), stdio),
		w("fd_datasync", sig(1), stdio),
		w("fd_fdstat_set_rights", p(i32, i64, i64), stdio),
		w("fd_filestat_get", sig(2), ret(proxywasm.ErrnoBadf)),
		w("fd_filestat_set_size", p(i32, i64), stdio),
		w("fd_filestat_set_times", p(i32, i64, i64, i32), stdio),
		w("fd_pread", p(i32, i32, i32, i64, i32), ret(proxywasm.ErrnoNosys)),
		w("fd_pwrite", p(i32, i32, i32, i64, i32), wasiFdPwrite),
		w("fd_readdir", p(i32, i32, i32, i64, i32), func(v *vm, s []uint64) proxywasm.Errno {
			if !v.writeU32(uint32(s[4]), 0) {
				return proxywasm.ErrnoFault
			}
			// cpp-host's wasi_unstable_fd_readdir means ENOTDIR but
			// returns 20, POSIX's number for it, which WASI reads as
			// EEXIST; the module sees what Envoy answers.
			return proxywasm.ErrnoExist
		}),
		w("fd_renumber", sig(2), func(_ *vm, s []uint64) proxywasm.Errno {
			fd, to := uint32(s[0]), uint32(s[1])
			if (fd != 1 && fd != 2) || (to != 1 && to != 2) {
				return proxywasm.ErrnoBadf
			}
			return proxywasm.ErrnoNotsup
		}),
		w("fd_sync", sig(1), stdio),
		w("fd_tell", sig(2), func(v *vm, s []uint64) proxywasm.Errno {
			if fd := uint32(s[0]); fd != 1 && fd != 2 {
				return proxywasm.ErrnoBadf
			}
			if !v.writeU64(uint32(s[1]), 0) {
				return proxywasm.ErrnoFault
			}
			return proxywasm.ErrnoSuccess
		}),
		w("path_create_directory", sig(3), ret(proxywasm.ErrnoNotsup)),
		w("path_filestat_get", sig(5), ret(proxywasm.ErrnoNotsup)),
		w("path_filestat_set_times", p(i32, i32, i32, i32, i64, i64, i32), ret(proxywasm.ErrnoNotsup)),
		// cpp-host declares path_link with 6 and path_symlink with 4
		// parameters (one fewer than WASI); a module importing the WASI
		// signature gets an import type mismatch there, and here.
		w("path_link", sig(6), ret(proxywasm.ErrnoNotsup)),
		w("path_readlink", sig(6), func(v *vm, s []uint64) proxywasm.Errno {
			if !v.writeU32(uint32(s[5]), 0) {
				return proxywasm.ErrnoFault
			}
			return proxywasm.ErrnoNotsup
		}),
		w("path_remove_directory", sig(3), ret(proxywasm.ErrnoNotsup)),
		w("path_rename", sig(6), ret(proxywasm.ErrnoNotsup)),
		w("path_symlink", sig(4), ret(proxywasm.ErrnoNotsup)),
		w("path_unlink_file", sig(3), ret(proxywasm.ErrnoNotsup)),
		w("sock_accept", sig(3), func(v *vm, s []uint64) proxywasm.Errno {
			if !v.writeU64(uint32(s[2]), 0) {
				return proxywasm.ErrnoFault
			}
			return proxywasm.ErrnoNotsup
		}),
		w("sock_recv", sig(6), func(v *vm, s []uint64) proxywasm.Errno {
			if !v.writeU32(uint32(s[4]), 0) || !v.writeU16(uint32(s[5]), 0) {
				return proxywasm.ErrnoFault
			}
			return proxywasm.ErrnoNotsup
		}),
		w("sock_send", sig(5), func(v *vm, s []uint64) proxywasm.Errno {
			if !v.writeU32(uint32(s[4]), 0) {
				return proxywasm.ErrnoFault
			}
			return proxywasm.ErrnoNotsup
		}),
		w("sock_shutdown", sig(2), ret(proxywasm.ErrnoNotsup)),
	}
	if ps.wasi == nil {
		return all
	}
	out := all[:0]
	for _, f := range all {
		if ps.wasi[f.name] {
			out = append(out, f)
		}
	}
	return out
}

// wasiWrite gathers an iovec array and logs it like Envoy: stdout at info,
// stderr at error, one trailing newline removed.
func wasiWrite(v *vm, fd, iovs, iovsLen uint32) (uint32, proxywasm.Errno) {
	var level proxywasm.LogLevel
	switch fd {
	case 1:
		level = proxywasm.LogInfo
	case 2:
		level = proxywasm.LogError
	default:
		return 0, proxywasm.ErrnoBadf
	}
	var sb strings.Builder
	for i := uint32(0); i < iovsLen; i++ {
		vec, ok := v.read(iovs+i*8, 8)
		if !ok {
			return 0, proxywasm.ErrnoFault
		}
		ptr, n := binary.LittleEndian.Uint32(vec), binary.LittleEndian.Uint32(vec[4:])
		if n == 0 {
			continue
		}
		b, ok := v.read(ptr, n)
		if !ok {
			return 0, proxywasm.ErrnoFault
		}
		sb.Write(b)
	}
	s := sb.String()
	written := uint32(len(s))
	if written > 0 {
		v.pluginLog(level, strings.TrimSuffix(s, "\n"))
	}
	return written, proxywasm.ErrnoSuccess
}

func wasiFdWrite(v *vm, s []uint64) proxywasm.Errno {
	n, e := wasiWrite(v, uint32(s[0]), uint32(s[1]), uint32(s[2]))
	if e != proxywasm.ErrnoSuccess {
		return e
	}
	if !v.writeU32(uint32(s[3]), n) {
		return proxywasm.ErrnoFault
	}
	return proxywasm.ErrnoSuccess
}

func wasiFdPwrite(v *vm, s []uint64) proxywasm.Errno {
	n, e := wasiWrite(v, uint32(s[0]), uint32(s[1]), uint32(s[2]))
	if e != proxywasm.ErrnoSuccess {
		return e
	}
	if !v.writeU32(uint32(s[4]), n) {
		return proxywasm.ErrnoFault
	}
	return proxywasm.ErrnoSuccess
}

func wasiFdFdstatGet(v *vm, s []uint64) proxywasm.Errno {
	if fd := uint32(s[0]); fd != 1 && fd != 2 {
		return proxywasm.ErrnoBadf
	}
	var st [24]byte
	binary.LittleEndian.PutUint64(st[8:], 64) // fs_rights_base = FD_WRITE
	v.write(uint32(s[1]), st[:])
	return proxywasm.ErrnoSuccess
}

func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, val := range env {
		out = append(out, k+"="+val)
	}
	sort.Strings(out)
	return out
}

func wasiEnvironGet(v *vm, s []uint64) proxywasm.Errno {
	arr, buf := uint32(s[0]), uint32(s[1])
	for _, e := range v.env {
		if !v.writeU32(arr, buf) || !v.write(buf, append([]byte(e), 0)) {
			return proxywasm.ErrnoFault
		}
		buf += uint32(len(e)) + 1
		arr += 4
	}
	return proxywasm.ErrnoSuccess
}

func wasiEnvironSizesGet(v *vm, s []uint64) proxywasm.Errno {
	size := 0
	for _, e := range v.env {
		size += len(e) + 1
	}
	if !v.writeU32(uint32(s[0]), uint32(len(v.env))) || !v.writeU32(uint32(s[1]), uint32(size)) {
		return proxywasm.ErrnoFault
	}
	return proxywasm.ErrnoSuccess
}

func wasiArgsSizesGet(v *vm, s []uint64) proxywasm.Errno {
	if !v.writeU32(uint32(s[0]), 0) || !v.writeU32(uint32(s[1]), 0) {
		return proxywasm.ErrnoFault
	}
	return proxywasm.ErrnoSuccess
}

var monoStart = time.Now()

func wasiClockTimeGet(v *vm, s []uint64) proxywasm.Errno {
	var t uint64
	switch uint32(s[0]) {
	case 0:
		t = uint64(time.Now().UnixNano())
	case 1:
		t = uint64(time.Since(monoStart).Nanoseconds())
	default:
		return proxywasm.ErrnoNotsup
	}
	if !v.writeU64(uint32(s[2]), t) {
		return proxywasm.ErrnoFault
	}
	return proxywasm.ErrnoSuccess
}

func wasiClockResGet(v *vm, s []uint64) proxywasm.Errno {
	switch uint32(s[0]) {
	case 0, 1:
	default:
		return proxywasm.ErrnoNotsup
	}
	if !v.writeU64(uint32(s[1]), 1) {
		return proxywasm.ErrnoFault
	}
	return proxywasm.ErrnoSuccess
}

// maxRandomGet mirrors PROXY_WASM_HOST_WASI_RANDOM_GET_MAX_SIZE_BYTES.
const maxRandomGet = 64 * 1024

func wasiRandomGet(v *vm, s []uint64) proxywasm.Errno {
	ptr, n := uint32(s[0]), uint32(s[1])
	if n > maxRandomGet {
		return proxywasm.ErrnoInval
	}
	if n == 0 {
		return proxywasm.ErrnoSuccess
	}
	b := make([]byte, n)
	_, _ = rand.Read(b)
	if !v.write(ptr, b) {
		return proxywasm.ErrnoFault
	}
	return proxywasm.ErrnoSuccess
}
