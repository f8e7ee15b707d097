package wasmhost

import (
	"strings"
	"time"

	"github.com/angzarr-mesh/angzarr/internal/proxywasm"
	"google.golang.org/protobuf/encoding/protowire"
)

// Callout host functions. Callouts belong to the root context (the
// calling stream's root): their results are delivered as
// proxy_on_http_call_response / proxy_on_grpc_* on that root context id,
// on the VM that made them, even after the stream that triggered them
// finished. Tokens are numbered per root context and looked up among the
// calling root's callouts only (calloutID). Clusters are Config.Clusters.

// proxy_http_call(upstream_ptr, upstream_size, headers_ptr, headers_size,
// body_ptr, body_size, trailers_ptr, trailers_size, timeout_ms, return_token_ptr)
func abiHTTPCall(v *vm, s []uint64) proxywasm.Status {
	cluster, ok1 := v.readString(uint32(s[0]), uint32(s[1]))
	hdrs, ok2 := v.read(uint32(s[2]), uint32(s[3]))
	body, ok3 := v.readBytes(uint32(s[4]), uint32(s[5]))
	trl, ok4 := v.read(uint32(s[6]), uint32(s[7]))
	if !ok1 || !ok2 || !ok3 || !ok4 || !v.writeU32(uint32(s[9]), 0) {
		return proxywasm.StatusInvalidMemoryAccess
	}
	timeout := int32(uint32(s[8]))
	if timeout < 0 {
		return proxywasm.StatusBadArgument
	}
	addr, ok := v.gen.h.cluster(cluster)
	if !ok {
		return proxywasm.StatusBadArgument
	}
	headers := &headerMap{}
	headers.setPairs(decodePairs(hdrs))
	for _, k := range []string{":path", ":method", ":authority"} {
		if _, ok := headers.get(k); !ok {
			return proxywasm.StatusBadArgument
		}
	}
	trailers := &headerMap{}
	trailers.setPairs(decodePairs(trl))
	root := v.currentRoot()
	token := v.newHTTPToken(root)
	c := v.startCallout(root, token, calloutHTTP, time.Duration(timeout)*time.Millisecond)
	if v.gen.h.tracing != nil {
		path, _ := headers.get(":path")
		method, _ := headers.get(":method")
		ct, _ := headers.get("content-type")
		v.traceCallout(c, headers, path, method, strings.HasPrefix(ct, "application/grpc"))
	}
	v.writeU32(uint32(s[9]), token)
	req := httpCallRequest{addr: addr, headers: headers, body: body, trailers: trailers}
	v.gen.h.goBackground(func() { v.runHTTPCall(c, req) })
	return proxywasm.StatusOK
}

// proxy_grpc_call(service_ptr, service_size, service_name_ptr,
// service_name_size, method_ptr, method_size, initial_metadata_ptr,
// initial_metadata_size, message_ptr, message_size, timeout_ms,
// return_token_ptr). "service" is a cluster name or a serialised
// envoy.config.core.v3.GrpcService naming one (envoy_grpc.cluster_name).
// Success delivers proxy_on_grpc_receive only; failure proxy_on_grpc_close
// only, with the message readable through proxy_get_status (Envoy's
// GrpcCallClientHandler).
func abiGRPCCall(v *vm, s []uint64) proxywasm.Status {
	service, ok1 := v.read(uint32(s[0]), uint32(s[1]))
	svcName, ok2 := v.read(uint32(s[2]), uint32(s[3]))
	method, ok3 := v.read(uint32(s[4]), uint32(s[5]))
	md, ok4 := v.read(uint32(s[6]), uint32(s[7]))
	msg, ok5 := v.read(uint32(s[8]), uint32(s[9]))
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 {
		return proxywasm.StatusInvalidMemoryAccess
	}
	frame := grpcFrame(msg) // the one copy out of guest memory
	path := grpcMethodPath(svcName, method)
	addr, authority, st := v.resolveGRPCService(service)
	if st == errUnknownCluster {
		return v.unknownCluster(true)
	}
	if st != proxywasm.StatusOK {
		return st
	}
	metadata := &headerMap{}
	metadata.setPairs(decodePairs(md))
	root := v.currentRoot()
	token := v.newGRPCToken(root, true)
	if !v.writeU32(uint32(s[11]), token) {
		return proxywasm.StatusInvalidMemoryAccess
	}
	c := v.startCallout(root, token, calloutGRPCCall, time.Duration(uint32(s[10]))*time.Millisecond)
	if v.gen.h.tracing != nil {
		v.traceCallout(c, metadata, path, "POST", true)
	}
	req := grpcRequest{addr: addr, authority: authority, path: path, metadata: metadata, timeout: time.Duration(uint32(s[10])) * time.Millisecond, unary: true}
	v.gen.h.goBackground(func() { v.runGRPCCall(c, req, frame) })
	return proxywasm.StatusOK
}

// proxy_grpc_stream(service_ptr, service_size, service_name_ptr,
// service_name_size, method_ptr, method_size, initial_metadata_ptr,
// initial_metadata_size, return_token_ptr)
func abiGRPCStream(v *vm, s []uint64) proxywasm.Status {
	service, ok1 := v.read(uint32(s[0]), uint32(s[1]))
	svcName, ok2 := v.read(uint32(s[2]), uint32(s[3]))
	method, ok3 := v.read(uint32(s[4]), uint32(s[5]))
	md, ok4 := v.read(uint32(s[6]), uint32(s[7]))
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return proxywasm.StatusInvalidMemoryAccess
	}
	path := grpcMethodPath(svcName, method)
	addr, authority, st := v.resolveGRPCService(service)
	if st == errUnknownCluster {
		return v.unknownCluster(false)
	}
	if st != proxywasm.StatusOK {
		return st
	}
	metadata := &headerMap{}
	metadata.setPairs(decodePairs(md))
	root := v.currentRoot()
	token := v.newGRPCToken(root, false)
	if !v.writeU32(uint32(s[8]), token) {
		return proxywasm.StatusInvalidMemoryAccess
	}
	c := v.startCallout(root, token, calloutGRPCStream, 0)
	c.stream = newGRPCStreamState()
	req := grpcRequest{addr: addr, authority: authority, path: path, metadata: metadata}
	v.gen.h.goBackground(func() { v.runGRPCStream(c, req) })
	return proxywasm.StatusOK
}

// proxy_grpc_send(token, message_ptr, message_size, end_stream)
func abiGRPCSend(v *vm, s []uint64) proxywasm.Status {
	token := uint32(s[0])
	msg, ok := v.read(uint32(s[1]), uint32(s[2])) // send copies it into a frame
	if !ok {
		return proxywasm.StatusInvalidMemoryAccess
	}
	if token%2 == 1 {
		return proxywasm.StatusBadArgument
	}
	c, found := v.callouts[calloutID{root: v.currentRoot(), token: token}]
	if !found || c.kind != calloutGRPCStream {
		return proxywasm.StatusNotFound
	}
	c.stream.send(msg, uint32(s[3]) != 0)
	if uint32(s[3]) != 0 {
		c.localClosed = true
	}
	return proxywasm.StatusOK
}

// proxy_grpc_cancel(token): abort; no further callbacks for it.
func abiGRPCCancel(v *vm, s []uint64) proxywasm.Status {
	c, found := v.callouts[calloutID{root: v.currentRoot(), token: uint32(s[0])}]
	if !found {
		return proxywasm.StatusNotFound
	}
	c.cancel()
	delete(v.callouts, c.id())
	return proxywasm.StatusOK
}

// proxy_grpc_close(token): a call is cancelled; a stream is half-closed
// (no more messages) and keeps delivering until the server closes it.
func abiGRPCClose(v *vm, s []uint64) proxywasm.Status {
	c, found := v.callouts[calloutID{root: v.currentRoot(), token: uint32(s[0])}]
	if !found {
		return proxywasm.StatusNotFound
	}
	if c.kind == calloutGRPCCall {
		c.cancel()
		delete(v.callouts, c.id())
	} else {
		c.stream.send(nil, true)
		c.localClosed = true
		if c.remoteClosed {
			delete(v.callouts, c.id())
		}
	}
	return proxywasm.StatusOK
}

// resolveGRPCService maps proxy_grpc_call's service argument to a cluster
// address and the call's :authority: a cluster name (authority = that
// name), else a GrpcService proto naming one (authority = its
// envoy_grpc.authority, or the cluster name when unset: Envoy's
// AsyncClientImpl). PARSE_FAILURE when neither resolves, as in Envoy.
// (Looked up from the bytes, without copying them.)
func (v *vm) resolveGRPCService(service []byte) (addr, authority string, st proxywasm.Status) {
	clusters := *v.gen.h.clusters.Load()
	if addr, ok := clusters[string(service)]; ok {
		return addr, string(service), proxywasm.StatusOK
	}
	if name, auth, ok := envoyGRPC(service); ok {
		if addr, ok := clusters[string(name)]; ok {
			return addr, calloutAuthority(string(name), string(auth)), proxywasm.StatusOK
		}
		return "", "", errUnknownCluster
	}
	return "", "", proxywasm.StatusParseFailure
}

// errUnknownCluster is resolveGRPCService's answer for a GrpcService that
// names a cluster the host does not have.
const errUnknownCluster = proxywasm.Status(0xffff)

// unknownCluster fails a gRPC call or stream whose GrpcService names an
// unknown cluster as Envoy does: the async client's stream finds no
// cluster and closes itself UNAVAILABLE "Cluster not available" while it
// is being created (Grpc::AsyncStreamImpl::initialize), which the Wasm
// handler delivers as proxy_on_grpc_close for a token the plugin never
// received; then proxy_grpc_call (or _stream) fails with INTERNAL_FAILURE
// (Context::grpcCall: sendRaw returned null). Envoy runs that close inside
// the host call; here it follows right after the current callback.
func (v *vm) unknownCluster(call bool) proxywasm.Status {
	root := v.currentRoot()
	token := v.newGRPCToken(root, call)
	v.gen.h.goBackground(func() {
		v.mu.Lock()
		defer v.mu.Unlock()
		if v.closed || v.failed {
			return
		}
		v.statusCode, v.statusMsg = grpcUnavailable, "Cluster not available"
		v.callExport("proxy_on_grpc_close", root, uint64(root), uint64(token), grpcUnavailable)
		v.statusCode, v.statusMsg = 0, ""
	})
	return proxywasm.StatusInternalFailure
}

// envoyGRPC extracts GrpcService.envoy_grpc's cluster_name (field 1.1) and
// authority (field 1.2) from a serialised GrpcService; both alias b. ok is
// false when b is no GrpcService with an envoy_grpc.
func envoyGRPC(b []byte) (cluster, authority []byte, ok bool) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, nil, false
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			inner, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, nil, false
			}
			found := false
			for len(inner) > 0 {
				num2, typ2, m := protowire.ConsumeTag(inner)
				if m < 0 {
					return nil, nil, false
				}
				inner = inner[m:]
				if (num2 == 1 || num2 == 2) && typ2 == protowire.BytesType {
					v, m := protowire.ConsumeBytes(inner)
					if m < 0 {
						return nil, nil, false
					}
					if num2 == 1 {
						cluster, found = v, true
					} else {
						authority = v
					}
					inner = inner[m:]
					continue
				}
				m = protowire.ConsumeFieldValue(num2, typ2, inner)
				if m < 0 {
					return nil, nil, false
				}
				inner = inner[m:]
			}
			return cluster, authority, found
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return nil, nil, false
		}
		b = b[n:]
	}
	return nil, nil, false
}
