package wasmhost

import (
	"net/http"

	"github.com/angzarr-mesh/angzarr/internal/proxywasm"
)

// validAuthority is Envoy's :authority check (proxywasm.ValidAuthority).
func validAuthority(s string) bool { return proxywasm.ValidAuthority(s) }

// invalidAuthorityReply is the connection manager's answer to a request
// whose :authority is not valid: 400 (gRPC INTERNAL) with details
// http.invalid_authority, sent before any filter sees the stream.
func invalidAuthorityReply() *localReply {
	return &localReply{code: http.StatusBadRequest, grpcStatus: -1, details: "http.invalid_authority"}
}

// calloutAuthority is the :authority of a gRPC callout to cluster, as
// Envoy's async gRPC client sets it (source/common/grpc/
// async_client_impl.cc, AsyncClientImpl's host_name_): the GrpcService's
// envoy_grpc.authority when set, else the cluster name.
func calloutAuthority(cluster, authority string) string {
	if authority != "" {
		return authority
	}
	return cluster
}

// peerRefusedAuthority is what a gRPC callout gets when its :authority is
// not valid. Envoy sends it, and the peer's codec refuses the header and
// resets the stream (istio/istio#27918: "Invalid HTTP header field was
// received ... [:authority]"); the calling router answers the reset
// before headers with a 503, which the async client reports as
// UNAVAILABLE. (net/http refuses to send such a Host at all: the result
// is the same for the plugin.)
const peerRefusedAuthority = "upstream connect error or disconnect/reset before headers. reset reason: remote reset"

// writeLocalReply writes lr downstream as the stream's whole response.
func writeLocalReply(w http.ResponseWriter, lr *localReply, isGRPC bool) {
	code, h, body := lr.response(isGRPC)
	dst := w.Header()
	for k, vs := range h {
		dst[k] = vs
	}
	setDate(dst)
	w.WriteHeader(code)
	if len(body) > 0 {
		_, _ = w.Write(body)
	}
}
