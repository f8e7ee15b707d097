package wasmhost_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/angzarr-mesh/angzarr/wasmhost"
	"github.com/angzarr-mesh/angzarr/wasmhost/wasmhosttest"
)

// gRPC through the proxy with a real upstream (grpc.testing.TestService).

func TestProxyGRPC(t *testing.T) {
	e := newEnv(t)
	c := grpcClient(t, e.proxy.Addr)

	t.Run("unary with trailers", func(t *testing.T) {
		ctx := metadata.AppendToOutgoingContext(testCtx(t), "x-echo-trailer", "t1")
		var trailer metadata.MD
		resp, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte("ping")}}, grpc.Trailer(&trailer))
		if err != nil {
			t.Fatal(err)
		}
		if string(resp.GetPayload().GetBody()) != "ping" {
			t.Errorf("payload = %q", resp.GetPayload().GetBody())
		}
		if got := trailer.Get("x-echo-trailer"); len(got) != 1 || got[0] != "t1" {
			t.Errorf("trailer = %v", trailer)
		}
	})

	// Envoy's connection manager refuses an invalid :authority with a 400
	// before any filter runs (HeaderValidation::requestHeadersValid).
	t.Run("invalid authority", func(t *testing.T) {
		conn, err := grpc.NewClient(e.proxy.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithAuthority("outbound|1313||angzarr-eventsvc.angzarr.svc.cluster.local"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, err = testgrpc.NewTestServiceClient(conn).UnaryCall(testCtx(t), &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte("ping")}})
		if status.Code(err) != codes.Internal {
			t.Fatalf("err = %v, want INTERNAL (HTTP 400)", err)
		}
	})

	t.Run("error status", func(t *testing.T) {
		_, err := c.UnaryCall(testCtx(t), &testgrpc.SimpleRequest{ResponseStatus: &testgrpc.EchoStatus{Code: int32(codes.NotFound), Message: "no such thing: é"}})
		if status.Code(err) != codes.NotFound || status.Convert(err).Message() != "no such thing: é" {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("server streaming", func(t *testing.T) {
		params := []*testgrpc.ResponseParameters{{Size: 1}, {Size: 10}, {Size: 100}, {Size: 1000}, {Size: 100000}}
		stream, err := c.StreamingOutputCall(testCtx(t), &testgrpc.StreamingOutputCallRequest{ResponseParameters: params})
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range params {
			m, err := stream.Recv()
			if err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			if len(m.GetPayload().GetBody()) != int(p.Size) {
				t.Errorf("message %d size %d", i, len(m.GetPayload().GetBody()))
			}
		}
		if _, err := stream.Recv(); err != io.EOF {
			t.Fatalf("end: %v", err)
		}
	})

	t.Run("server streaming ending in an error", func(t *testing.T) {
		stream, err := c.StreamingOutputCall(testCtx(t), &testgrpc.StreamingOutputCallRequest{
			ResponseParameters: []*testgrpc.ResponseParameters{{Size: 3}},
			ResponseStatus:     &testgrpc.EchoStatus{Code: int32(codes.Aborted), Message: "conflict"},
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); status.Code(err) != codes.Aborted || status.Convert(err).Message() != "conflict" {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("bidi streaming", func(t *testing.T) {
		stream, err := c.FullDuplexCall(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 5; i++ {
			if err := stream.Send(&testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{Size: int32(i)}}}); err != nil {
				t.Fatal(err)
			}
			m, err := stream.Recv()
			if err != nil || len(m.GetPayload().GetBody()) != i {
				t.Fatalf("round %d: %v %v", i, m, err)
			}
		}
		_ = stream.CloseSend()
		if _, err := stream.Recv(); err != io.EOF {
			t.Fatalf("end: %v", err)
		}
	})

	t.Run("64 concurrent streams", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 128)
		for i := 0; i < 64; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				ctx := testCtx(t)
				body := []byte(fmt.Sprintf("req-%d", i))
				resp, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: body}})
				if err != nil {
					errs <- err
					return
				}
				if string(resp.GetPayload().GetBody()) != string(body) {
					errs <- fmt.Errorf("stream %d got %q", i, resp.GetPayload().GetBody())
					return
				}
				stream, err := c.FullDuplexCall(ctx)
				if err != nil {
					errs <- err
					return
				}
				for j := 1; j <= 3; j++ {
					if err := stream.Send(&testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{Size: int32(j)}}}); err != nil {
						errs <- err
						return
					}
					if m, err := stream.Recv(); err != nil || len(m.GetPayload().GetBody()) != j {
						errs <- fmt.Errorf("stream %d round %d: %v", i, j, err)
						return
					}
				}
				_ = stream.CloseSend()
				if _, err := stream.Recv(); err != io.EOF {
					errs <- fmt.Errorf("stream %d end: %v", i, err)
				}
			}(i)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

// Under FAIL_CLOSED (Envoy's default) a trap leaves the worker's plugin
// failed: every later stream of that worker gets UNAVAILABLE, other
// workers serve, and the next configuration push (UpdatePlugin) heals it.
func TestTrapFailClosedUntilUpdate(t *testing.T) {
	e := newEnv(t)
	c := grpcClient(t, e.proxy.Addr)
	ctx := metadata.AppendToOutgoingContext(testCtx(t), "x-case", "trap-alloc")
	if _, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("trapping stream: %v, want UNAVAILABLE", err)
	}
	for i := 0; i < 3; i++ { // the same connection: the same worker
		if _, err := c.UnaryCall(testCtx(t), &testgrpc.SimpleRequest{}); status.Code(err) != codes.Unavailable {
			t.Fatalf("stream %d on the failed worker: %v, want UNAVAILABLE", i, err)
		}
	}
	// The next connection goes to the other worker (round-robin).
	if _, err := grpcClient(t, e.proxy.Addr).UnaryCall(testCtx(t), &testgrpc.SimpleRequest{}); err != nil {
		t.Fatalf("other worker: %v", err)
	}
	p := e.proxy.Host.Plugin()
	if err := e.proxy.Host.UpdatePlugin(testCtx(t), p); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UnaryCall(testCtx(t), &testgrpc.SimpleRequest{}); err != nil {
		t.Fatalf("after the configuration push: %v", err)
	}
	if strings.Contains(strings.Join(e.logs.all(), "\n"), "wasm VM replaced") {
		t.Errorf("a FAIL_CLOSED VM was replaced")
	}
}

// Under FAIL_RELOAD a trap answers UNAVAILABLE for that stream and the VM
// is replaced after the back-off; later streams work.
func TestTrapFailReloadReplacesVM(t *testing.T) {
	e := newEnv(t, func(c *wasmhost.Config) {
		c.Plugin.FailurePolicy, c.Plugin.ReloadBackoff = wasmhost.FailReload, 10*time.Millisecond
	})
	c := grpcClient(t, e.proxy.Addr)
	ctx := metadata.AppendToOutgoingContext(testCtx(t), "x-case", "trap-alloc")
	_, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("trapping stream: %v, want UNAVAILABLE", err)
	}
	waitLogLine(t, e.logs, "wasm VM failed")
	waitLogLine(t, e.logs, "wasm VM replaced")
	for i := 0; i < 4; i++ { // every VM of the pool serves again
		if _, err := c.UnaryCall(testCtx(t), &testgrpc.SimpleRequest{}); err != nil {
			t.Fatalf("after replacement: %v", err)
		}
	}
	if !strings.Contains(scrape(t, e.proxy.AdminAddr), "wasmhost_vm_failures_total{} 1\n") {
		t.Errorf("vm failure not counted")
	}
}

// With FailOpen a trapping plugin lets the stream through.
func TestTrapFailOpen(t *testing.T) {
	e := newEnv(t, func(c *wasmhost.Config) { c.FailOpen = true })
	c := grpcClient(t, e.proxy.Addr)
	ctx := metadata.AppendToOutgoingContext(testCtx(t), "x-case", "trap-alloc")
	resp, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte("through")}})
	if err != nil || string(resp.GetPayload().GetBody()) != "through" {
		t.Fatalf("fail open: %v %v", resp, err)
	}
}

// A Go panic inside the plugin ends in a trap too.
func TestGoPanicTraps(t *testing.T) {
	e := newEnv(t)
	resp := e.do(t, "panic", http.MethodGet, "/echo", "", nil)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status = %d, want 503", resp.StatusCode)
	}
	waitLogLine(t, e.logs, "wasm VM failed")
}

// malloc is preferred over proxy_on_memory_allocate.
func TestAllocatorChoice(t *testing.T) {
	for _, tc := range []struct {
		tags       []string
		wantMalloc bool
	}{{nil, false}, {[]string{"withmalloc"}, true}} {
		up := startUpstream(t)
		logs := &logRecorder{}
		p := wasmhosttest.Start(t, wasmhost.Config{
			Plugin:   wasmhost.Plugin{Module: pluginWasm(t, tc.tags...), Configuration: []byte("mode=test")},
			Upstream: up, VMs: 1, Logger: slog.New(logs),
		})
		e := &env{logs: logs, proxy: p, upstream: up, http: h2cClient(t)}
		e.do(t, "alloc-stats", http.MethodGet, "/echo", "", nil)
		f := logs.waitFact(t, "alloc_calls=*")
		var allocs, mallocs int
		if _, err := fmt.Sscanf(f, "alloc_calls=%d malloc_calls=%d", &allocs, &mallocs); err != nil {
			t.Fatal(err)
		}
		if tc.wantMalloc != (mallocs > 0 && allocs == 0) || (!tc.wantMalloc && (allocs == 0 || mallocs != 0)) {
			t.Errorf("%v: %s", tc.tags, f)
		}
	}
}

// UpdatePlugin swaps the configuration for new streams.
func TestUpdatePlugin(t *testing.T) {
	e := newEnv(t)
	c := grpcClient(t, e.proxy.Addr)
	if _, err := c.UnaryCall(testCtx(t), &testgrpc.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	err := e.proxy.Host.UpdatePlugin(testCtx(t), wasmhost.Plugin{Module: pluginWasm(t), Name: "conformance", Configuration: []byte("mode=test;fail_configure=1")})
	if !errors.Is(err, wasmhost.ErrConfigureFailed) {
		t.Fatalf("bad update: %v", err)
	}
	if err := e.proxy.Host.UpdatePlugin(testCtx(t), wasmhost.Plugin{Module: pluginWasm(t), Name: "conformance", Configuration: []byte("mode=test;gen=2")}); err != nil {
		t.Fatal(err)
	}
	e.logs.waitFact(t, "configure status=0 config=mode=test;gen=2")
	if _, err := c.UnaryCall(testCtx(t), &testgrpc.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	e.logs.waitFact(t, "root done") // the old generation was shut down
}

// An unreachable upstream is Envoy's 503 / UNAVAILABLE local reply.
func TestUpstreamUnreachable(t *testing.T) {
	e := newEnv(t, func(c *wasmhost.Config) { c.Upstream = "127.0.0.1:1" })
	c := grpcClient(t, e.proxy.Addr)
	_, err := c.UnaryCall(testCtx(t), &testgrpc.SimpleRequest{})
	if status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), "upstream connect error") {
		t.Fatalf("err = %v", err)
	}
}

func waitLogLine(t *testing.T, r *logRecorder, substr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, l := range r.all() {
			if strings.Contains(l, substr) {
				return
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("log %q not seen:\n%s", substr, strings.Join(r.all(), "\n"))
}

func scrape(t *testing.T, admin string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/stats/prometheus", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// SetUpstream moves new streams to another upstream without a restart.
func TestSetUpstream(t *testing.T) {
	e := newEnv(t)
	c := grpcClient(t, e.proxy.Addr)
	if _, err := c.UnaryCall(testCtx(t), &testgrpc.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	if err := e.proxy.Host.SetUpstream("no-port"); err == nil {
		t.Fatal("SetUpstream accepted an address without a port")
	}
	if err := e.proxy.Host.SetUpstream("127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UnaryCall(testCtx(t), &testgrpc.SimpleRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("after moving to a closed port: %v, want UNAVAILABLE", err)
	}
	if err := e.proxy.Host.SetUpstream(startUpstream(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UnaryCall(testCtx(t), &testgrpc.SimpleRequest{}); err != nil {
		t.Fatalf("after moving to a new upstream: %v", err)
	}
}

// A stopped request body past the listener's buffer limit gets Envoy's 413
// local reply (TestABI buffers bodies under the limit).
func TestBufferLimit(t *testing.T) {
	e := newEnv(t, func(c *wasmhost.Config) { c.BufferLimitBytes = 64 << 10 })
	resp := e.do(t, "body-buffer", http.MethodPost, "/echo", strings.Repeat("a", 128<<10), nil)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || string(body) != "Payload Too Large" {
		t.Fatalf("128 KiB body over a 64 KiB limit: %d %q, want 413", resp.StatusCode, body)
	}
}
