package wasmhost

import (
	"net/http"

	"github.com/angzarr-mesh/angzarr/internal/proxywasm"
	"strconv"
	"strings"
)

// localReply is a response the proxy generates itself: from
// proxy_send_local_response, after a plugin failure (fail closed), or when
// the upstream cannot be reached — Envoy's sendLocalReply.
type localReply struct {
	code       int
	body       string
	headers    [][2]string // additional headers from the plugin
	grpcStatus int         // -1 when none given
	details    string
}

// response renders the reply as Envoy does: for a gRPC request a
// trailers-only response (HTTP 200, content-type application/grpc,
// grpc-status given or mapped from the HTTP code, grpc-message =
// percent-encoded body, no body); otherwise the HTTP code with the body as
// text/plain.
func (lr *localReply) response(isGRPC bool) (int, http.Header, []byte) {
	h := http.Header{}
	for _, p := range lr.headers {
		h.Add(p[0], p[1])
	}
	if isGRPC {
		h.Set("Content-Type", "application/grpc")
		if h.Get("Grpc-Status") == "" {
			st := lr.grpcStatus
			if st < 0 || st > 16 {
				st = httpToGRPCStatus(lr.code)
			}
			h.Set("Grpc-Status", strconv.Itoa(st))
		}
		if msg := strings.TrimSuffix(lr.body, "\n"); msg != "" {
			h.Set("Grpc-Message", percentEncode(msg))
		}
		h.Del("Content-Length")
		return http.StatusOK, h, nil
	}
	if lr.body != "" && h.Get("Content-Type") == "" {
		h.Set("Content-Type", "text/plain")
	}
	code := lr.code
	if code < 100 || code > 999 {
		code = http.StatusInternalServerError
	}
	return code, h, []byte(lr.body)
}

// httpToGRPCStatus is Envoy's Grpc::Utility::httpToGrpcStatus.
func httpToGRPCStatus(code int) int {
	switch code {
	case 400:
		return 13 // INTERNAL
	case 401:
		return 16 // UNAUTHENTICATED
	case 403:
		return 7 // PERMISSION_DENIED
	case 404:
		return 12 // UNIMPLEMENTED
	case 429, 502, 503, 504:
		return 14 // UNAVAILABLE
	}
	return 2 // UNKNOWN
}

// percentEncode encodes a grpc-message value per the gRPC HTTP/2 spec.
func percentEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c <= 0x7e && c != '%' {
			b.WriteByte(c)
			continue
		}
		b.WriteString("%")
		b.WriteString(strings.ToUpper(strconv.FormatInt(int64(c)>>4, 16)))
		b.WriteString(strings.ToUpper(strconv.FormatInt(int64(c)&0xf, 16)))
	}
	return b.String()
}

// bufferOverflowReply is the filter manager's answer when a stopped body
// outgrows the buffer limit (source/common/http/filter_manager.cc,
// ActiveStreamDecoderFilter/EncoderFilter buffer overflow): 413 for a
// request; 500 for a response whose headers are still held (once they
// went downstream the stream is reset instead, as for any local reply).
func bufferOverflowReply(dir proxywasm.StreamType) *localReply {
	if dir == proxywasm.StreamRequest {
		return &localReply{code: http.StatusRequestEntityTooLarge, body: "Payload Too Large", grpcStatus: -1, details: "request_payload_too_large"}
	}
	return &localReply{code: http.StatusInternalServerError, body: "Internal Server Error", grpcStatus: -1, details: "response_payload_too_large"}
}

// failReply is Envoy's failStream: 503 / UNAVAILABLE with no message.
func failReply() *localReply {
	return &localReply{code: http.StatusServiceUnavailable, grpcStatus: 14, details: "wasm_fail_stream"}
}

// upstreamFailReply is the router's reply when the upstream cannot be
// reached or resets before headers.
func upstreamFailReply(reason string) *localReply {
	return &localReply{
		code:       http.StatusServiceUnavailable,
		body:       "upstream connect error or disconnect/reset before headers. reset reason: " + reason,
		grpcStatus: -1,
		details:    "upstream_reset_before_response_started{" + reason + "}",
	}
}
