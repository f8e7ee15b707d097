package wasmhost_test

import (
	"context"
	"net"
	"net/http"
	"testing"

	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"

	"github.com/angzarr-mesh/angzarr/wasmhost"
)

// TestCalloutTokensPerRootContext: Envoy numbers callouts per root
// context, not per VM. proxy-wasm-cpp-host's exports (grpc_call,
// grpc_stream, grpc_cancel, grpc_close, grpc_send, http_call) all act on
// contextOrEffectiveContext()->root_context(), and Envoy's Context keeps
// next_grpc_token_ / next_http_call_token_ and the maps of calls and
// streams in flight per Context (Context::nextGrpcCallToken,
// nextHttpCallToken, grpcCancel). So two plugins sharing a VM each see
// their first gRPC call as token 1 and their first HTTP call as token 1,
// and one plugin cannot cancel the other's call: the token is not found
// among its own.
func TestCalloutTokensPerRootContext(t *testing.T) {
	e := newEnv(t, func(c *wasmhost.Config) {
		c.VMs = 1
		c.Plugin.Siblings = []wasmhost.Plugin{{Name: "second", RootID: "second", Configuration: []byte("mode=test")}}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = e.proxy.Host.ServePlugin(ctx, ln, "second") }()
	t.Cleanup(func() { cancel(); <-done })
	main, second := grpcClient(t, e.proxy.Addr), grpcClient(t, ln.Addr().String())

	call := func(c testgrpc.TestServiceClient, kase string, md ...string) error {
		ctx := metadata.AppendToOutgoingContext(testCtx(t), append([]string{"x-case", kase}, md...)...)
		_, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{})
		return err
	}
	if err := call(main, "grpc-call"); err != nil {
		t.Fatal(err)
	}
	if err := call(second, "grpc-call"); err != nil {
		t.Fatal(err)
	}
	wantFacts(t, e, "grpc_token=1 plugin=conformance", "grpc_token=1 plugin=second")

	// HTTP call tokens are counted per root too (and apart from gRPC's).
	for _, addr := range []string{e.proxy.Addr, ln.Addr().String()} {
		req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/echo", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("x-case", "headers-pause")
		resp, err := e.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		readEcho(t, resp)
		resp.Body.Close()
	}
	wantFacts(t, e, "http_token=1 plugin=conformance", "http_token=1 plugin=second")

	// The main plugin's second call (token 3) stays in flight for a
	// second; the second plugin has no token 3, so its cancel is
	// NOT_FOUND and the main plugin's call runs on to its timeout.
	waited := make(chan error, 1)
	go func() { waited <- call(main, "grpc-call-wait") }()
	e.logs.waitFact(t, "grpc_token=3 plugin=conformance")
	if err := call(second, "grpc-cancel", "x-token", "3"); err != nil {
		t.Fatal(err)
	}
	wantFacts(t, e, "grpc_cancel=1")
	<-waited
	e.logs.waitFact(t, "grpc_close status=14 get_status=14 message=upstream request timeout")
}
