//go:build wasip1

// This file binds the proxy-wasm ABI 0.2.1 host functions with standard Go
// (go:wasmimport), as the filter does. Pointers are guest addresses (uint32).
package main

import "unsafe"

//go:wasmimport env proxy_log
func proxy_log(level uint32, msg unsafe.Pointer, size uint32) uint32

//go:wasmimport env proxy_get_log_level
func proxy_get_log_level(ret *uint32) uint32

//go:wasmimport env proxy_get_status
func proxy_get_status(code *uint32, ptr *uint32, size *uint32) uint32

//go:wasmimport env proxy_get_property
func proxy_get_property(path unsafe.Pointer, pathSize uint32, ptr *uint32, size *uint32) uint32

//go:wasmimport env proxy_set_property
func proxy_set_property(path unsafe.Pointer, pathSize uint32, val unsafe.Pointer, valSize uint32) uint32

//go:wasmimport env proxy_continue_stream
func proxy_continue_stream(t uint32) uint32

//go:wasmimport env proxy_close_stream
func proxy_close_stream(t uint32) uint32

//go:wasmimport env proxy_send_local_response
func proxy_send_local_response(code uint32, details unsafe.Pointer, detailsSize uint32, body unsafe.Pointer, bodySize uint32, headers unsafe.Pointer, headersSize uint32, grpcStatus int32) uint32

//go:wasmimport env proxy_get_shared_data
func proxy_get_shared_data(key unsafe.Pointer, keySize uint32, ptr *uint32, size *uint32, cas *uint32) uint32

//go:wasmimport env proxy_set_shared_data
func proxy_set_shared_data(key unsafe.Pointer, keySize uint32, val unsafe.Pointer, valSize uint32, cas uint32) uint32

//go:wasmimport env proxy_register_shared_queue
func proxy_register_shared_queue(name unsafe.Pointer, nameSize uint32, id *uint32) uint32

//go:wasmimport env proxy_resolve_shared_queue
func proxy_resolve_shared_queue(vmID unsafe.Pointer, vmIDSize uint32, name unsafe.Pointer, nameSize uint32, id *uint32) uint32

//go:wasmimport env proxy_dequeue_shared_queue
func proxy_dequeue_shared_queue(id uint32, ptr *uint32, size *uint32) uint32

//go:wasmimport env proxy_enqueue_shared_queue
func proxy_enqueue_shared_queue(id uint32, val unsafe.Pointer, valSize uint32) uint32

//go:wasmimport env proxy_get_header_map_value
func proxy_get_header_map_value(t uint32, key unsafe.Pointer, keySize uint32, ptr *uint32, size *uint32) uint32

//go:wasmimport env proxy_add_header_map_value
func proxy_add_header_map_value(t uint32, key unsafe.Pointer, keySize uint32, val unsafe.Pointer, valSize uint32) uint32

//go:wasmimport env proxy_replace_header_map_value
func proxy_replace_header_map_value(t uint32, key unsafe.Pointer, keySize uint32, val unsafe.Pointer, valSize uint32) uint32

//go:wasmimport env proxy_remove_header_map_value
func proxy_remove_header_map_value(t uint32, key unsafe.Pointer, keySize uint32) uint32

//go:wasmimport env proxy_get_header_map_pairs
func proxy_get_header_map_pairs(t uint32, ptr *uint32, size *uint32) uint32

//go:wasmimport env proxy_set_header_map_pairs
func proxy_set_header_map_pairs(t uint32, ptr unsafe.Pointer, size uint32) uint32

//go:wasmimport env proxy_get_header_map_size
func proxy_get_header_map_size(t uint32, size *uint32) uint32

//go:wasmimport env proxy_get_buffer_status
func proxy_get_buffer_status(t uint32, length *uint32, flags *uint32) uint32

//go:wasmimport env proxy_get_buffer_bytes
func proxy_get_buffer_bytes(t uint32, start uint32, max uint32, ptr *uint32, size *uint32) uint32

//go:wasmimport env proxy_set_buffer_bytes
func proxy_set_buffer_bytes(t uint32, start uint32, length uint32, ptr unsafe.Pointer, size uint32) uint32

//go:wasmimport env proxy_http_call
func proxy_http_call(up unsafe.Pointer, upSize uint32, hdrs unsafe.Pointer, hdrsSize uint32, body unsafe.Pointer, bodySize uint32, trl unsafe.Pointer, trlSize uint32, timeout uint32, token *uint32) uint32

//go:wasmimport env proxy_grpc_call
func proxy_grpc_call(svc unsafe.Pointer, svcSize uint32, name unsafe.Pointer, nameSize uint32, method unsafe.Pointer, methodSize uint32, md unsafe.Pointer, mdSize uint32, msg unsafe.Pointer, msgSize uint32, timeout uint32, token *uint32) uint32

//go:wasmimport env proxy_grpc_stream
func proxy_grpc_stream(svc unsafe.Pointer, svcSize uint32, name unsafe.Pointer, nameSize uint32, method unsafe.Pointer, methodSize uint32, md unsafe.Pointer, mdSize uint32, token *uint32) uint32

//go:wasmimport env proxy_grpc_send
func proxy_grpc_send(token uint32, msg unsafe.Pointer, msgSize uint32, end uint32) uint32

//go:wasmimport env proxy_grpc_cancel
func proxy_grpc_cancel(token uint32) uint32

//go:wasmimport env proxy_grpc_close
func proxy_grpc_close(token uint32) uint32

//go:wasmimport env proxy_set_tick_period_milliseconds
func proxy_set_tick_period_milliseconds(ms uint32) uint32

//go:wasmimport env proxy_get_current_time_nanoseconds
func proxy_get_current_time_nanoseconds(ret *uint64) uint32

//go:wasmimport env proxy_define_metric
func proxy_define_metric(t uint32, name unsafe.Pointer, nameSize uint32, id *uint32) uint32

//go:wasmimport env proxy_increment_metric
func proxy_increment_metric(id uint32, offset int64) uint32

//go:wasmimport env proxy_record_metric
func proxy_record_metric(id uint32, value uint64) uint32

//go:wasmimport env proxy_get_metric
func proxy_get_metric(id uint32, ret *uint64) uint32

//go:wasmimport env proxy_set_effective_context
func proxy_set_effective_context(id uint32) uint32

//go:wasmimport env proxy_done
func proxy_done() uint32

//go:wasmimport env proxy_call_foreign_function
func proxy_call_foreign_function(name unsafe.Pointer, nameSize uint32, args unsafe.Pointer, argsSize uint32, ptr *uint32, size *uint32) uint32

// Memory handed to the host stays reachable in pinned until taken back.
var pinned = map[uint32][]byte{}

var allocCalls, mallocCalls int

// trapInAlloc makes the next allocation call a host function outside the
// allocation allow-list, which must trap the VM.
var trapInAlloc bool

func allocate(size uint32) uint32 {
	if trapInAlloc {
		trapInAlloc = false
		var p, n uint32
		path := "plugin_name"
		proxy_get_property(sp(path), uint32(len(path)), &p, &n)
	}
	if size == 0 {
		size = 1
	}
	b := make([]byte, size)
	p := uint32(uintptr(unsafe.Pointer(&b[0])))
	pinned[p] = b
	return p
}

//go:wasmexport proxy_on_memory_allocate
func proxyOnMemoryAllocate(size uint32) uint32 {
	allocCalls++
	return allocate(size)
}

// take returns host-written memory and unpins it.
func take(ptr, size uint32) []byte {
	if ptr == 0 {
		return nil
	}
	b := pinned[ptr]
	delete(pinned, ptr)
	if b == nil {
		return nil
	}
	return b[:size]
}

func sp(s string) unsafe.Pointer {
	if s == "" {
		return nil
	}
	return unsafe.Pointer(unsafe.StringData(s))
}

func bp(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

func logf(level uint32, msg string) { proxy_log(level, sp(msg), uint32(len(msg))) }

func getHeader(t uint32, k string) (string, uint32) {
	var p, n uint32
	st := proxy_get_header_map_value(t, sp(k), uint32(len(k)), &p, &n)
	return string(take(p, n)), st
}

func addHeader(t uint32, k, v string) uint32 {
	return proxy_add_header_map_value(t, sp(k), uint32(len(k)), sp(v), uint32(len(v)))
}

func replaceHeader(t uint32, k, v string) uint32 {
	return proxy_replace_header_map_value(t, sp(k), uint32(len(k)), sp(v), uint32(len(v)))
}

func removeHeader(t uint32, k string) uint32 {
	return proxy_remove_header_map_value(t, sp(k), uint32(len(k)))
}

func getPairs(t uint32) ([][2]string, uint32) {
	var p, n uint32
	st := proxy_get_header_map_pairs(t, &p, &n)
	return decodePairs(take(p, n)), st
}

func getBuffer(t, start, max uint32) ([]byte, uint32) {
	var p, n uint32
	st := proxy_get_buffer_bytes(t, start, max, &p, &n)
	return take(p, n), st
}

func setBuffer(t, start, length uint32, b []byte) uint32 {
	return proxy_set_buffer_bytes(t, start, length, bp(b), uint32(len(b)))
}

func getProperty(path ...string) (string, uint32) {
	joined := ""
	for i, p := range path {
		if i > 0 {
			joined += "\x00"
		}
		joined += p
	}
	var p, n uint32
	st := proxy_get_property(sp(joined), uint32(len(joined)), &p, &n)
	return string(take(p, n)), st
}

func le32(b []byte, off int) uint32 {
	return uint32(b[off]) | uint32(b[off+1])<<8 | uint32(b[off+2])<<16 | uint32(b[off+3])<<24
}

func decodePairs(b []byte) [][2]string {
	if len(b) < 4 {
		return nil
	}
	n := int(le32(b, 0))
	sizes := b[4:]
	data := b[4+8*n:]
	out := make([][2]string, 0, n)
	for i := 0; i < n; i++ {
		kl, vl := int(le32(sizes, 8*i)), int(le32(sizes, 8*i+4))
		k := string(data[:kl])
		data = data[kl+1:]
		v := string(data[:vl])
		data = data[vl+1:]
		out = append(out, [2]string{k, v})
	}
	return out
}

func encodePairs(pairs [][2]string) []byte {
	b := make([]byte, 4)
	put := func(x uint32) { b = append(b, byte(x), byte(x>>8), byte(x>>16), byte(x>>24)) }
	b[0] = byte(len(pairs))
	for _, p := range pairs {
		put(uint32(len(p[0])))
		put(uint32(len(p[1])))
	}
	for _, p := range pairs {
		b = append(b, p[0]...)
		b = append(b, 0)
		b = append(b, p[1]...)
		b = append(b, 0)
	}
	return b
}
