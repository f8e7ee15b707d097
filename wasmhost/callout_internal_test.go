package wasmhost

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// TestGRPCRequestHeaders: a gRPC callout request carries the metadata, the
// gRPC content type, te and its timeout in grpc-timeout, for each timeout:
// "0m" for none, as Envoy sends it (Grpc::Common::prepareHeaders).
func TestGRPCRequestHeaders(t *testing.T) {
	for _, d := range []time.Duration{5 * time.Second, 250 * time.Millisecond, 5 * time.Second, 0} {
		md := &headerMap{}
		md.add("x-from-plugin", "1")
		md.add("content-type", "text/plain") // the callout's own wins
		r := grpcRequest{addr: "127.0.0.1:1", path: "/pkg.Svc/Method", metadata: md, timeout: d, unary: true}
		req, err := r.httpRequest(context.Background(), http.NoBody)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"X-From-Plugin": "1", "Content-Type": "application/grpc", "Te": "trailers",
			"Grpc-Timeout": map[time.Duration]string{5 * time.Second: "5000m", 250 * time.Millisecond: "250m", 0: "0m"}[d]}
		for k, v := range want {
			if got := req.Header.Values(k); len(got) != 1 || got[0] != v {
				t.Errorf("timeout %s: %s = %q, want %q", d, k, got, v)
			}
		}
		if len(req.Header) != len(want) {
			t.Errorf("timeout %s: headers %v", d, req.Header)
		}
		if req.URL.String() != "http://127.0.0.1:1/pkg.Svc/Method" || req.Method != http.MethodPost {
			t.Errorf("request %s %s", req.Method, req.URL)
		}
	}
}
