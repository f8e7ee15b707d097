package wasmhost

import (
	"log/slog"
	"time"

	"github.com/angzarr-mesh/angzarr/internal/proxywasm"
)

// proxy_log(level, message_ptr, message_size)
func abiLog(v *vm, s []uint64) proxywasm.Status {
	level := proxywasm.LogLevel(s[0])
	if level > proxywasm.LogCritical {
		return proxywasm.StatusBadArgument
	}
	msg, ok := v.read(uint32(s[1]), uint32(s[2]))
	if !ok {
		return proxywasm.StatusInvalidMemoryAccess
	}
	v.pluginLog(level, string(msg))
	return proxywasm.StatusOK
}

// proxy_get_log_level(return_level_ptr): the host's level as a proxy-wasm
// level (trace 0 … critical 5).
func abiGetLogLevel(v *vm, s []uint64) proxywasm.Status {
	var l proxywasm.LogLevel
	switch lv := v.gen.h.cfg.LogLevel; {
	case lv < slog.LevelDebug:
		l = proxywasm.LogTrace
	case lv < slog.LevelInfo:
		l = proxywasm.LogDebug
	case lv < slog.LevelWarn:
		l = proxywasm.LogInfo
	case lv < slog.LevelError:
		l = proxywasm.LogWarn
	default:
		l = proxywasm.LogError
	}
	if !v.writeU32(uint32(s[0]), uint32(l)) {
		return proxywasm.StatusInvalidMemoryAccess
	}
	return proxywasm.StatusOK
}

// proxy_get_status(return_code_ptr, return_message_ptr, return_message_size):
// the status of the gRPC callout being delivered (Envoy keeps it on the
// root context).
func abiGetStatus(v *vm, s []uint64) proxywasm.Status {
	if !v.writeU32(uint32(s[0]), v.statusCode) {
		return proxywasm.StatusInvalidMemoryAccess
	}
	return v.copyOutString(v.statusMsg, uint32(s[1]), uint32(s[2]))
}

// proxy_get_current_time_nanoseconds(return_time_ptr): wall clock.
func abiGetCurrentTime(v *vm, s []uint64) proxywasm.Status {
	if !v.writeU64(uint32(s[0]), uint64(time.Now().UnixNano())) {
		return proxywasm.StatusInvalidMemoryAccess
	}
	return proxywasm.StatusOK
}

// proxy_set_tick_period_milliseconds(period): proxy_on_tick on the root
// context every period; 0 stops it. Envoy ties the timer to the root
// context whatever context calls.
func abiSetTickPeriod(v *vm, s []uint64) proxywasm.Status {
	v.tick.set(v, time.Duration(uint32(s[0]))*time.Millisecond)
	return proxywasm.StatusOK
}
