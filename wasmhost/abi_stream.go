package wasmhost

import "github.com/angzarr-mesh/angzarr/internal/proxywasm"

// Stream control host functions. Their effects happen after the current
// call into the VM returns (the waiting proxy goroutine needs the VM lock),
// which is Envoy's "after VM call action" deferral.

// proxy_continue_stream(stream_type): resume a paused request or response.
// Upstream continuation is UNIMPLEMENTED (as in Envoy); downstream is a
// no-op for HTTP streams.
func abiContinueStream(v *vm, s []uint64) proxywasm.Status {
	t := proxywasm.StreamType(s[0])
	if t > proxywasm.StreamTypeMax {
		return proxywasm.StatusBadArgument
	}
	st := v.contextStream()
	switch t {
	case proxywasm.StreamRequest:
		if st != nil {
			st.reqContinued = true
			st.cond.Broadcast()
		}
	case proxywasm.StreamResponse:
		if st != nil {
			st.respContinued = true
			st.cond.Broadcast()
		}
	case proxywasm.StreamUpstream:
		return proxywasm.StatusUnimplemented
	}
	return proxywasm.StatusOK
}

// proxy_close_stream(stream_type): reset the HTTP stream (Envoy's
// resetStream); the downstream sees RST_STREAM.
func abiCloseStream(v *vm, s []uint64) proxywasm.Status {
	t := proxywasm.StreamType(s[0])
	if t > proxywasm.StreamTypeMax {
		return proxywasm.StatusBadArgument
	}
	if st := v.contextStream(); st != nil && (t == proxywasm.StreamRequest || t == proxywasm.StreamResponse) {
		st.reset = true
		st.cond.Broadcast()
	}
	return proxywasm.StatusOK
}

// proxy_send_local_response(status_code, details_ptr, details_size,
// body_ptr, body_size, headers_ptr, headers_size, grpc_status)
func abiSendLocalResponse(v *vm, s []uint64) proxywasm.Status {
	details, ok1 := v.readString(uint32(s[1]), uint32(s[2]))
	body, ok2 := v.readString(uint32(s[3]), uint32(s[4]))
	hdrs, ok3 := v.read(uint32(s[5]), uint32(s[6]))
	if !ok1 || !ok2 || !ok3 {
		return proxywasm.StatusInvalidMemoryAccess
	}
	lr := &localReply{
		code:       int(uint32(s[0])),
		body:       body,
		headers:    decodePairs(hdrs),
		grpcStatus: int(int32(uint32(s[7]))),
		details:    details,
	}
	if st := v.contextStream(); st != nil && st.local == nil {
		st.local = lr
		st.cond.Broadcast()
	}
	return proxywasm.StatusOK
}

// proxy_set_effective_context(context_id): later host calls in this
// callback act on that context. BAD_ARGUMENT when it does not exist (e.g.
// the stream already finished).
func abiSetEffectiveContext(v *vm, s []uint64) proxywasm.Status {
	id := uint32(s[0])
	if _, ok := v.streams[id]; !ok && v.roots[id] == nil {
		return proxywasm.StatusBadArgument
	}
	v.effective = id
	return proxywasm.StatusOK
}

// proxy_done(): the root context finished the work it asked to finish after
// proxy_on_done returned false. NOT_FOUND when nothing was pending.
func abiDone(v *vm, s []uint64) proxywasm.Status {
	if !v.rootDone {
		return proxywasm.StatusNotFound
	}
	v.rootDone = false
	close(v.rootDoneCh)
	return proxywasm.StatusOK
}

// proxy_call_foreign_function(name_ptr, name_size, args_ptr, args_size,
// return_results_ptr, return_results_size): the host registers no foreign
// functions, so every name is NOT_FOUND (Envoy's answer for unknown names).
func abiCallForeignFunction(v *vm, s []uint64) proxywasm.Status {
	if _, ok := v.read(uint32(s[0]), uint32(s[1])); !ok {
		return proxywasm.StatusInvalidMemoryAccess
	}
	if _, ok := v.read(uint32(s[2]), uint32(s[3])); !ok {
		return proxywasm.StatusInvalidMemoryAccess
	}
	return proxywasm.StatusNotFound
}
