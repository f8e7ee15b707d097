//go:build wasip1

package abi

import "github.com/angzarr-mesh/angzarr/filter"

// contexts maps proxy-wasm context ids to the filter's objects. Created on
// the first proxy_on_context_create, never at package init.
type contexts struct {
	roots   map[uint32]*filter.Plugin
	streams map[uint32]streamCtx
	// last is the stream looked up last: the callbacks of one stream
	// mostly come one after the other.
	last streamCtx
}

// streamCtx is a stream and the id of its root context.
type streamCtx struct {
	s    *filter.Stream
	id   uint32
	root uint32
}

var ctxs *contexts

func state() *contexts {
	if ctxs == nil {
		ctxs = &contexts{roots: map[uint32]*filter.Plugin{}, streams: map[uint32]streamCtx{}}
	}
	return ctxs
}

func boolArg(v uint32) bool { return v != 0 }

// ABIVersion marks the module as proxy-wasm ABI 0.2.1.
//
//go:wasmexport proxy_abi_version_0_2_1
func ABIVersion() {}

// OnContextCreate creates a root context (parent 0) or a stream of a root.
//
//go:wasmexport proxy_on_context_create
func OnContextCreate(id, parent uint32) {
	c := state()
	if parent == 0 {
		c.roots[id] = filter.NewPlugin(host{})
		return
	}
	if root, ok := c.roots[parent]; ok {
		sc := streamCtx{s: root.NewStream(id), id: id, root: parent}
		c.streams[id] = sc
		c.last = sc
	}
}

// OnVMStart accepts the VM.
//
//go:wasmexport proxy_on_vm_start
func OnVMStart(rootID, vmConfigSize uint32) uint32 {
	takeOverGC()
	return 1
}

// OnConfigure applies the plugin configuration; a bad one fails.
//
//go:wasmexport proxy_on_configure
func OnConfigure(rootID, size uint32) uint32 {
	root, ok := state().roots[rootID]
	if !ok {
		return 0
	}
	raw, err := host{}.GetBuffer(filter.PluginConfigBody, 0, int(size))
	if err != nil {
		host{}.Log(filter.LogError, "angzarr filter: cannot read the plugin configuration: "+err.Error())
		return 0
	}
	if root.Configure(raw) != nil {
		return 0
	}
	return 1
}

func stream(id uint32) *filter.Stream {
	c := state()
	if c.last.s != nil && c.last.id == id {
		return c.last.s
	}
	sc, ok := c.streams[id]
	if ok {
		c.last = sc
	}
	return sc.s
}

// OnRequestHeaders is proxy_on_request_headers.
//
//go:wasmexport proxy_on_request_headers
func OnRequestHeaders(id, headers, endOfStream uint32) filter.Action {
	if s := stream(id); s != nil {
		return s.OnRequestHeaders(boolArg(endOfStream))
	}
	return filter.Continue
}

// OnRequestBody is proxy_on_request_body.
//
//go:wasmexport proxy_on_request_body
func OnRequestBody(id, size, endOfStream uint32) filter.Action {
	if s := stream(id); s != nil {
		return s.OnRequestBody(int(size), boolArg(endOfStream))
	}
	return filter.Continue
}

// OnRequestTrailers is proxy_on_request_trailers.
//
//go:wasmexport proxy_on_request_trailers
func OnRequestTrailers(id, trailers uint32) filter.Action {
	if s := stream(id); s != nil {
		return s.OnRequestTrailers()
	}
	return filter.Continue
}

// OnResponseHeaders is proxy_on_response_headers.
//
//go:wasmexport proxy_on_response_headers
func OnResponseHeaders(id, headers, endOfStream uint32) filter.Action {
	if s := stream(id); s != nil {
		return s.OnResponseHeaders(boolArg(endOfStream))
	}
	return filter.Continue
}

// OnResponseBody is proxy_on_response_body.
//
//go:wasmexport proxy_on_response_body
func OnResponseBody(id, size, endOfStream uint32) filter.Action {
	if s := stream(id); s != nil {
		return s.OnResponseBody(int(size), boolArg(endOfStream))
	}
	return filter.Continue
}

// OnResponseTrailers is proxy_on_response_trailers.
//
//go:wasmexport proxy_on_response_trailers
func OnResponseTrailers(id, trailers uint32) filter.Action {
	if s := stream(id); s != nil {
		return s.OnResponseTrailers()
	}
	return filter.Continue
}

// OnGrpcReceiveInitialMetadata ignores callout metadata.
//
//go:wasmexport proxy_on_grpc_receive_initial_metadata
func OnGrpcReceiveInitialMetadata(rootID, token, headers uint32) {}

// OnGrpcReceiveTrailingMetadata lets the root keep a callout's status
// details (Plugin.OnGrpcTrailingMetadata).
//
//go:wasmexport proxy_on_grpc_receive_trailing_metadata
func OnGrpcReceiveTrailingMetadata(rootID, token, trailers uint32) {
	if root, ok := state().roots[rootID]; ok {
		root.OnGrpcTrailingMetadata(token)
	}
}

// OnGrpcReceive delivers a callout's response message.
//
//go:wasmexport proxy_on_grpc_receive
func OnGrpcReceive(rootID, token, size uint32) {
	if root, ok := state().roots[rootID]; ok {
		root.OnGrpcReceive(token, int(size))
	}
}

// OnGrpcClose delivers a callout's end (its failure when no message came).
//
//go:wasmexport proxy_on_grpc_close
func OnGrpcClose(rootID, token, status uint32) {
	root, ok := state().roots[rootID]
	if !ok {
		return
	}
	code, msg := filter.Code(status), ""
	if status != 0 {
		if c, m := callStatus(); c == code || c != filter.Unknown {
			msg = m
		}
	}
	root.OnGrpcClose(token, code, msg)
}

// OnHTTPCallResponse ignores HTTP callouts (the filter makes none).
//
//go:wasmexport proxy_on_http_call_response
func OnHTTPCallResponse(rootID, token, headers, bodySize, trailers uint32) {}

// OnTick is unused: the filter sets no tick period.
//
//go:wasmexport proxy_on_tick
func OnTick(rootID uint32) {}

// OnQueueReady is unused: the filter registers no queue.
//
//go:wasmexport proxy_on_queue_ready
func OnQueueReady(rootID, queueID uint32) {}

// OnDone lets the host finish a context.
//
//go:wasmexport proxy_on_done
func OnDone(id uint32) uint32 {
	if s := stream(id); s != nil {
		s.OnDone()
	}
	return 1
}

// OnLog is unused (no access logging).
//
//go:wasmexport proxy_on_log
func OnLog(id uint32) {}

// OnDelete forgets a context.
//
//go:wasmexport proxy_on_delete
func OnDelete(id uint32) {
	c := state()
	if sc, ok := c.streams[id]; ok {
		// Only the stream's root knows it.
		root, hasRoot := c.roots[sc.root]
		if hasRoot {
			root.DeleteStream(id)
		}
		delete(c.streams, id)
		if c.last.id == id {
			c.last = streamCtx{}
		}
		if pause, ok := collectGarbage(); ok && hasRoot {
			root.GCPause(pause)
		}
		return
	}
	delete(c.roots, id)
}
