package wasmhost

import "github.com/angzarr-mesh/angzarr/internal/proxywasm"

// Buffer host functions. Bodies are visible during their body callback and,
// once a body callback returned PAUSE, while they stay buffered (also from
// callout callbacks after proxy_set_effective_context) — otherwise
// NOT_FOUND. The plugin configuration (7) is readable only during
// proxy_on_configure, the VM configuration (6) always; the callout buffers
// (4, 5) during their callbacks. set_buffer_bytes follows Envoy's
// Buffer::copyFrom: start=0,size=0 prepends; start=0,size>=len replaces the
// whole buffer; start>=len appends; anything else is BAD_ARGUMENT; the
// read-only buffers answer BAD_ARGUMENT.

// bufferFor returns the buffer's bytes, whether it exists now, and where
// the mutable ones are stored (nil for the read-only ones).
func (v *vm) bufferFor(t proxywasm.BufferType) ([]byte, bool, *[]byte) {
	s := v.contextStream()
	switch t {
	case proxywasm.BufferRequestBody:
		if s != nil && s.reqBodyVisible {
			return s.reqBody, true, &s.reqBody
		}
	case proxywasm.BufferResponseBody:
		if s != nil && s.respBodyVisible {
			return s.respBody, true, &s.respBody
		}
	case proxywasm.BufferHTTPCallResponse:
		if v.httpResp != nil {
			return v.httpResp.body, true, nil
		}
	case proxywasm.BufferGRPCReceive:
		if v.grpcRecvSet {
			return v.grpcRecv, true, nil
		}
	case proxywasm.BufferVMConfiguration:
		return v.gen.plugin.VMConfiguration, true, nil
	case proxywasm.BufferPluginConfig:
		if v.configuring {
			return v.configPlugin.Configuration, true, nil
		}
	case proxywasm.BufferCallData:
		return v.callData, true, nil
	}
	return nil, false, nil
}

// proxy_get_buffer_bytes(buffer_type, start, max_size, return_ptr, return_size)
func abiGetBufferBytes(v *vm, s []uint64) proxywasm.Status {
	t := proxywasm.BufferType(s[0])
	if t > proxywasm.BufferTypeMax {
		return proxywasm.StatusBadArgument
	}
	buf, ok, _ := v.bufferFor(t)
	if !ok {
		return proxywasm.StatusNotFound
	}
	start, length := uint64(uint32(s[1])), uint64(uint32(s[2]))
	size := uint64(len(buf))
	switch {
	case start > size:
		length = 0
	case start+length > size:
		length = size - start
	}
	if length == 0 {
		if !v.writeU32(uint32(s[3]), 0) || !v.writeU32(uint32(s[4]), 0) {
			return proxywasm.StatusInvalidMemoryAccess
		}
		return proxywasm.StatusOK
	}
	return v.copyOut(buf[start:start+length], uint32(s[3]), uint32(s[4]))
}

// proxy_get_buffer_status(buffer_type, return_length_ptr, return_flags_ptr)
func abiGetBufferStatus(v *vm, s []uint64) proxywasm.Status {
	t := proxywasm.BufferType(s[0])
	if t > proxywasm.BufferTypeMax {
		return proxywasm.StatusBadArgument
	}
	buf, ok, _ := v.bufferFor(t)
	if !ok {
		return proxywasm.StatusNotFound
	}
	if !v.writeU32(uint32(s[1]), uint32(len(buf))) || !v.writeU32(uint32(s[2]), 0) {
		return proxywasm.StatusInvalidMemoryAccess
	}
	return proxywasm.StatusOK
}

// proxy_set_buffer_bytes(buffer_type, start, size, buffer_ptr, buffer_size)
func abiSetBufferBytes(v *vm, s []uint64) proxywasm.Status {
	t := proxywasm.BufferType(s[0])
	if t > proxywasm.BufferTypeMax {
		return proxywasm.StatusBadArgument
	}
	buf, ok, slot := v.bufferFor(t)
	if !ok {
		return proxywasm.StatusNotFound
	}
	data, ok := v.readBytes(uint32(s[3]), uint32(s[4]))
	if !ok {
		return proxywasm.StatusInvalidMemoryAccess
	}
	if slot == nil {
		return proxywasm.StatusBadArgument
	}
	start, length := uint64(uint32(s[1])), uint64(uint32(s[2]))
	size := uint64(len(buf))
	switch {
	case start == 0 && length == 0:
		*slot = append(data, buf...)
	case start == 0 && length >= size:
		*slot = data
	case start != 0 && start >= size:
		*slot = append(buf, data...)
	default:
		return proxywasm.StatusBadArgument
	}
	return proxywasm.StatusOK
}
