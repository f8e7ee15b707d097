//go:build wasip1

package abi

import (
	"encoding/binary"
	"time"
	"unsafe"

	"github.com/angzarr-mesh/angzarr/filter"
	"github.com/angzarr-mesh/angzarr/internal/proxywasm"
	"google.golang.org/protobuf/encoding/protowire"
)

// StatusError is a host function's failure.
type StatusError struct {
	Func   string
	Status proxywasm.Status
}

func (e *StatusError) Error() string { return e.Func + ": " + e.Status.String() }

func check(fn string, st proxywasm.Status) error {
	if st == proxywasm.StatusOK {
		return nil
	}
	return &StatusError{Func: fn, Status: st}
}

// host implements filter.Host with the proxy-wasm host functions.
type host struct{}

var _ filter.Host = host{}

func (host) Log(level filter.LogLevel, msg string) {
	proxyLog(level, sptr(msg), uint32(len(msg)))
}

func (host) Now() time.Time {
	var ns int64
	if proxyGetCurrentTimeNanoseconds(unsafe.Pointer(&ns)) != proxywasm.StatusOK {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

func (host) GetHeader(m filter.MapType, key string) (string, bool) {
	var addr, size uint32
	if proxyGetHeaderMapValue(m, sptr(key), uint32(len(key)), unsafe.Pointer(&addr), unsafe.Pointer(&size)) != proxywasm.StatusOK {
		return "", false
	}
	return owned(take(addr, size)), true
}

// owned returns the bytes of a buffer take handed over as a string without
// copying them: nothing else refers to the buffer once taken, so it is
// never written again.
func owned(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

func (host) ReplaceHeader(m filter.MapType, key, value string) error {
	return check("proxy_replace_header_map_value",
		proxyReplaceHeaderMapValue(m, sptr(key), uint32(len(key)), sptr(value), uint32(len(value))))
}

func (host) RemoveHeader(m filter.MapType, key string) error {
	return check("proxy_remove_header_map_value", proxyRemoveHeaderMapValue(m, sptr(key), uint32(len(key))))
}

func (host) GetBuffer(b filter.BufferType, start, size int) ([]byte, error) {
	if size == 0 {
		return nil, nil
	}
	var addr, n uint32
	st := proxyGetBufferBytes(b, uint32(start), uint32(size), unsafe.Pointer(&addr), unsafe.Pointer(&n))
	if st == proxywasm.StatusNotFound || st == proxywasm.StatusEmpty {
		return nil, nil
	}
	if err := check("proxy_get_buffer_bytes", st); err != nil {
		return nil, err
	}
	return take(addr, n), nil
}

func (host) SetBuffer(b filter.BufferType, data []byte) error {
	// Replacing the whole buffer needs start 0 and a length of at least
	// the current size.
	var size, flags uint32
	if st := proxyGetBufferStatus(b, unsafe.Pointer(&size), unsafe.Pointer(&flags)); st != proxywasm.StatusOK && st != proxywasm.StatusNotFound {
		return check("proxy_get_buffer_status", st)
	}
	return check("proxy_set_buffer_bytes", proxySetBufferBytes(b, 0, size, ptr(data), uint32(len(data))))
}

func (host) SendLocalReply(c filter.Code, message string, headers [][2]string) error {
	const details = "angzarr_filter"
	pairs := encodePairs(headers)
	return check("proxy_send_local_response", proxySendLocalResponse(200, sptr(details), uint32(len(details)),
		sptr(message), uint32(len(message)), ptr(pairs), uint32(len(pairs)), int32(c)))
}

func (host) ContinueStream(s filter.StreamType) error {
	return check("proxy_continue_stream", proxyContinueStream(s))
}

func (host) GrpcCall(cluster, authority, service, method string, metadata [][2]string, message []byte, timeout time.Duration) (uint32, error) {
	var token uint32
	target := grpcService(cluster, authority)
	var md []byte
	if len(metadata) > 0 {
		md = encodePairs(metadata)
	}
	st := proxyGrpcCall(ptr(target), uint32(len(target)), sptr(service), uint32(len(service)),
		sptr(method), uint32(len(method)), ptr(md), uint32(len(md)), ptr(message), uint32(len(message)),
		uint32(timeout/time.Millisecond), unsafe.Pointer(&token))
	return token, check("proxy_grpc_call", st)
}

func (host) SetEffectiveContext(id uint32) error {
	switch st := proxySetEffectiveContext(id); st {
	case proxywasm.StatusOK:
		return nil
	case proxywasm.StatusBadArgument, proxywasm.StatusNotFound:
		return filter.ErrStreamGone
	default:
		return check("proxy_set_effective_context", st)
	}
}

func (host) DefineMetric(t filter.MetricType, name string) (uint32, error) {
	var id uint32
	st := proxyDefineMetric(t, sptr(name), uint32(len(name)), unsafe.Pointer(&id))
	return id, check("proxy_define_metric", st)
}

func (host) IncrementMetric(id uint32, delta int64) error {
	return check("proxy_increment_metric", proxyIncrementMetric(id, delta))
}

func (host) RecordMetric(id uint32, v uint64) error {
	return check("proxy_record_metric", proxyRecordMetric(id, v))
}

func (host) SetProperty(path, value string) error {
	return check("proxy_set_property", proxySetProperty(sptr(path), uint32(len(path)), sptr(value), uint32(len(value))))
}

// callStatus returns the status of the callout being delivered.
func callStatus() (filter.Code, string) {
	var code, addr, size uint32
	if proxyGetStatus(unsafe.Pointer(&code), unsafe.Pointer(&addr), unsafe.Pointer(&size)) != proxywasm.StatusOK {
		return filter.Unknown, ""
	}
	return filter.Code(code), owned(take(addr, size))
}

// grpcService encodes envoy.config.core.v3.GrpcService{envoy_grpc:
// {cluster_name, authority}} (authority left out when ""). Envoy also
// accepts a bare cluster name, but only when the name does not happen to
// parse as a GrpcService message; the encoded form is unambiguous. The
// few configured clusters are encoded once (the host only reads the bytes
// during the call).
func grpcService(cluster, authority string) []byte {
	for _, t := range targets {
		if t.cluster == cluster && t.authority == authority {
			return t.encoded
		}
	}
	inner := protowire.SizeTag(1) + protowire.SizeBytes(len(cluster))
	if authority != "" {
		inner += protowire.SizeTag(2) + protowire.SizeBytes(len(authority))
	}
	out := make([]byte, 0, protowire.SizeTag(1)+protowire.SizeBytes(inner))
	out = protowire.AppendTag(out, 1, protowire.BytesType) // GrpcService.envoy_grpc
	out = protowire.AppendVarint(out, uint64(inner))
	out = protowire.AppendTag(out, 1, protowire.BytesType) // EnvoyGrpc.cluster_name
	out = protowire.AppendString(out, cluster)
	if authority != "" {
		out = protowire.AppendTag(out, 2, protowire.BytesType) // EnvoyGrpc.authority
		out = protowire.AppendString(out, authority)
	}
	if len(targets) < maxTargets {
		targets = append(targets, target{cluster: cluster, authority: authority, encoded: out})
	}
	return out
}

// targets are the encoded GrpcService of the clusters called so far (at
// most maxTargets: the configuration names a handful).
var targets []target

const maxTargets = 32

type target struct {
	cluster, authority string
	encoded            []byte
}

// encodePairs serializes header pairs the proxy-wasm way: count, then (key
// length, value length) per pair, then NUL-terminated keys and values, all
// little-endian u32.
func encodePairs(h [][2]string) []byte {
	if len(h) == 0 {
		return nil
	}
	n := 4 + 8*len(h)
	for _, kv := range h {
		n += len(kv[0]) + len(kv[1]) + 2
	}
	out := make([]byte, 4+8*len(h), n)
	binary.LittleEndian.PutUint32(out, uint32(len(h)))
	for i, kv := range h {
		binary.LittleEndian.PutUint32(out[4+8*i:], uint32(len(kv[0])))
		binary.LittleEndian.PutUint32(out[8+8*i:], uint32(len(kv[1])))
	}
	for _, kv := range h {
		out = append(out, kv[0]...)
		out = append(out, 0)
		out = append(out, kv[1]...)
		out = append(out, 0)
	}
	return out
}
