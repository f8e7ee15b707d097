package wasmhost_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// One conformance test per ABI call and semantic rule, run through the
// proxy with the test plugin (testdata/plugin) in mode "test": the request
// header x-case picks the scenario, the plugin reports what the host
// answered as "T <fact>" log lines.

func wantFacts(t *testing.T, e *env, facts ...string) {
	t.Helper()
	for _, f := range facts {
		e.logs.waitFact(t, f)
	}
}

func TestABI(t *testing.T) {
	e := newEnv(t)
	wantFacts(t, e, "init", "vm_start vm_config=vmcfg", "configure status=0 config=mode=test", "register_queue=0")

	t.Run("header maps", func(t *testing.T) {
		resp := e.do(t, "headers", http.MethodGet, "/echo/orig", "", map[string]string{
			"x-replace": "old", "x-remove": "1", "x-multi": "a",
		})
		er := readEcho(t, resp)
		wantFacts(t, e,
			"path=/echo/orig status=0",
			"method=GET authority="+e.proxy.Addr,
			"get_missing=1", "multi_first=a",
			"add=0", "replace=0", "remove=0", "replace_path=0",
			"pairs_status=0 first=:authority", "size=0", "size_ok=true",
			// Response maps do not exist while the request is processed.
			"resp_map_in_request=2", "add_resp_in_request=2", "resp_pairs status=0 n=0",
			"bad_map=2", "add_call_headers=2",
			// Request headers are gone once the request continued (Envoy).
			"resp_add=0", "req_map_in_response=2", "request_path_in_response=1",
			"on_log headers", "on_delete headers",
		)
		if er.Path != "/echo/rewritten" {
			t.Errorf(":path rewrite not applied upstream: %q", er.Path)
		}
		if got := er.Headers["X-Added"]; len(got) != 1 || got[0] != "added" {
			t.Errorf("X-Added upstream = %v", got)
		}
		if got := er.Headers["X-Replace"]; len(got) != 1 || got[0] != "new" {
			t.Errorf("X-Replace upstream = %v", got)
		}
		if _, ok := er.Headers["X-Remove"]; ok {
			t.Errorf("X-Remove still upstream")
		}
		if resp.Header.Get("X-Resp-Added") != "yes" {
			t.Errorf("response header not added: %v", resp.Header)
		}
		facts := strings.Join(e.logs.facts(), "\n")
		if strings.Index(facts, "on_log headers") > strings.Index(facts, "on_delete headers") {
			t.Errorf("proxy_on_log must come before proxy_on_delete")
		}
	})

	t.Run("set_header_map_pairs", func(t *testing.T) {
		er := readEcho(t, e.do(t, "setpairs", http.MethodGet, "/echo", "", map[string]string{"x-drop": "1"}))
		wantFacts(t, e, "set_pairs=0")
		if er.Headers["X-Only"] == nil || er.Headers["X-Drop"] != nil || er.Headers["X-Case"] != nil {
			t.Errorf("upstream headers = %v", er.Headers)
		}
	})

	t.Run("body buffering and set_buffer_bytes", func(t *testing.T) {
		pr, pw := io.Pipe()
		req, _ := http.NewRequest(http.MethodPost, "http://"+e.proxy.Addr+"/echo", pr)
		req.Header.Set("x-case", "body-buffer")
		done := make(chan *http.Response, 1)
		errc := make(chan error, 1)
		go func() {
			resp, err := e.http.Do(req)
			if err != nil {
				errc <- err
				return
			}
			done <- resp
		}()
		_, _ = pw.Write([]byte("ab"))
		// PAUSE buffers: the next callback sees the total buffered size.
		e.logs.waitFact(t, "req_body size=2 eos=0")
		_, _ = pw.Write([]byte("c"))
		e.logs.waitFact(t, "req_body size=3 eos=0")
		pw.Close()
		var resp *http.Response
		select {
		case resp = <-done:
		case err := <-errc:
			t.Fatal(err)
		case <-time.After(10 * time.Second):
			t.Fatal("no response")
		}
		defer resp.Body.Close()
		er := readEcho(t, resp)
		wantFacts(t, e, "req_body size=3 eos=1", "set_replace=0", "set_prepend=0", "set_append=0",
			"set_middle=2", "partial=ABC", "beyond status=0 len=0")
		if er.Body != "<ABC>" {
			t.Errorf("upstream body = %q, want <ABC>", er.Body)
		}
	})

	t.Run("headers PAUSE stops body until continue after http_call", func(t *testing.T) {
		er := readEcho(t, e.do(t, "headers-pause", http.MethodPost, "/echo", "payload", nil))
		wantFacts(t, e, "http_call=0", "http_call_response root_ok=true status=200 body=delayed headers=*",
			"set_effective_context=0", "add_after_callout=0", "continue=0", "req_body_after_continue=true")
		if got := er.Headers["X-Callout-Status"]; len(got) != 1 || got[0] != "200" {
			t.Errorf("header added after callout = %v", got)
		}
		if er.Body != "payload" {
			t.Errorf("body = %q", er.Body)
		}
	})

	t.Run("send_local_response gRPC trailers-only", func(t *testing.T) {
		resp := e.do(t, "local-reply", http.MethodPost, "/grpc.testing.TestService/UnaryCall", "\x00\x00\x00\x00\x00",
			map[string]string{"content-type": "application/grpc", "te": "trailers"})
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || resp.Header.Get("Grpc-Status") != "7" || resp.Header.Get("Grpc-Message") != "denied by plugin" ||
			resp.Header.Get("X-Local-Reply") != "yes" || len(body) != 0 || len(resp.Trailer) != 0 {
			t.Errorf("local reply = %d %v body %q trailer %v", resp.StatusCode, resp.Header, body, resp.Trailer)
		}
		// The local reply goes through the plugin's response callbacks.
		wantFacts(t, e, "send_local_response=0", "local_reply_response_headers status=200 grpc-status=7 eos=1")
	})

	t.Run("send_local_response HTTP", func(t *testing.T) {
		resp := e.do(t, "local-reply-http", http.MethodGet, "/x", "", nil)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 418 || string(body) != "short and stout" || resp.Header.Get("Content-Type") != "text/plain" {
			t.Errorf("local reply = %d %v %q", resp.StatusCode, resp.Header, body)
		}
		wantFacts(t, e, "local_reply_response_headers status=418 grpc-status= eos=0")
	})

	t.Run("properties", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+e.proxy.Addr+"/p?q=1", nil)
		req.Header.Set("x-case", "properties")
		req.Header.Add("x-prop", "v1")
		req.Header.Add("x-prop", "v2")
		resp, err := e.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		wantFacts(t, e,
			"prop plugin_name=conformance status=0",
			"prop plugin_root_id=root-1 status=0",
			"prop plugin_vm_id=vm-TestABI status=0",
			"prop node.id=node-7 status=0",
			"prop node.metadata.team=angzarr status=0",
			"prop request.path=/p?q=1 status=0",
			"prop request.method=GET status=0",
			"prop request.url_path=/p status=0",
			"prop request.headers.x-prop=v1,v2 status=0",
			"prop request.host="+e.proxy.Addr+" status=0",
			"prop source.address=127.0.0.1:*",
			"prop destination.address="+e.proxy.Addr+" status=0",
			"prop destination.port len=8 status=0",
			"prop_unknown=1", "set_property=0", "prop my_prop=my_value status=0",
		)
	})

	t.Run("metrics", func(t *testing.T) {
		e.do(t, "metrics", http.MethodGet, "/echo", "", nil)
		wantFacts(t, e, "define_test_requests_total=0", "define_test.inflight=0", "define_test_latency=0",
			"define_bad_type=2", "inc_counter=0", "inc_counter_again=0", "inc_counter_zero=2",
			"inc_gauge=0", "dec_gauge=0", "record_hist=0", "record_hist2=0", "inc_hist=2",
			"get_counter=0", "counter_value=3", "gauge_value=3", "get_hist=2", "get_unknown=1", "inc_unknown=1")
		resp, err := http.Get("http://" + e.proxy.AdminAddr + "/stats/prometheus")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{
			"# TYPE test_requests_total counter\ntest_requests_total{} 3\n",
			"# TYPE test_inflight gauge\ntest_inflight{} 3\n",
			"# TYPE test_latency histogram\n",
			`test_latency_bucket{le="10"} 1`,
			`test_latency_bucket{le="1000"} 2`,
			"test_latency_count{} 2",
			"test_latency_sum{} 707",
			"wasmhost_streams_total{}",
		} {
			if !strings.Contains(string(b), want) {
				t.Errorf("/stats/prometheus lacks %q:\n%s", want, b)
			}
		}
	})

	t.Run("shared data CAS", func(t *testing.T) {
		e.do(t, "shared", http.MethodGet, "/echo", "", nil)
		wantFacts(t, e, "get_missing=1", "set=0", "get status=0 value=v1 cas_nonzero=true",
			"set_bad_cas=8", "set_good_cas=0", "set_stale_cas=8", "final=v2")
	})

	t.Run("shared queue", func(t *testing.T) {
		e.do(t, "queue", http.MethodGet, "/echo", "", nil)
		wantFacts(t, e, "resolve=0", "resolved_same=true", "resolve_unknown=1", "enqueue=0", "enqueue_unknown=1",
			"queue_ready root=1 status=0 item=hello", "dequeue_again=7")
	})

	t.Run("misc status codes", func(t *testing.T) {
		e.do(t, "misc", http.MethodGet, "/echo", "", nil)
		wantFacts(t, e, "continue_upstream=12", "continue_bad=2", "foreign=1", "buffer_bad_type=2",
			"plugin_config_outside_configure=1", "vm_config status=0 value=vmcfg", "req_body_in_headers=1",
			"set_vm_config=2", "get_log_level=0", "log_level=1", "get_time=0", "time_nonzero=true",
			"log_bad_level=2", "log_bad_memory=6", "done_not_pending=1", "set_effective_unknown=2",
			"set_effective_root=0", "root_effective_req_headers=2")
	})

	t.Run("fd_write goes to the log", func(t *testing.T) {
		e.do(t, "stdout", http.MethodGet, "/echo", "", nil)
		wantFacts(t, e, "via-stderr")
	})

	t.Run("close_stream resets", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+e.proxy.Addr+"/echo", nil)
		req.Header.Set("x-case", "close-stream")
		resp, err := e.http.Do(req)
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if err == nil {
			t.Fatalf("want a stream reset, got %d", resp.StatusCode)
		}
		wantFacts(t, e, "close_stream=0")
	})

	t.Run("set_effective_context on a finished stream", func(t *testing.T) {
		resp := e.do(t, "effective-gone", http.MethodGet, "/echo", "", nil)
		readEcho(t, resp)
		wantFacts(t, e, "http_call_response root_ok=true status=200 body=delayed*", "set_effective_context_gone=2")
	})

	t.Run("response trailers PAUSE, body replaced after callout", func(t *testing.T) {
		resp := e.do(t, "resp-trailers-pause", http.MethodGet, "/echo", "", map[string]string{"x-want-trailer": "1"})
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if string(body) != "replaced" || resp.Trailer.Get("X-Echo-Trailer") != "changed" {
			t.Errorf("body %q trailer %v", body, resp.Trailer)
		}
		wantFacts(t, e, "buffered_resp_body status=0 len=*", "replace_body=0", "replace_trailer=0", "continue_resp=0")
	})

	t.Run("upstream headers ending the stream arrive with end_of_stream", func(t *testing.T) {
		// A gRPC trailers-only answer (a business rejection) must reach
		// proxy_on_response_headers with end_of_stream=1, as in Envoy, even
		// when the plugin would buffer a body.
		resp := e.do(t, "resp-eos", http.MethodGet, "/trailers-only", "", nil)
		body, err := io.ReadAll(resp.Body)
		if err != nil || len(body) != 0 || resp.Header.Get("Grpc-Status") != "5" || resp.Header.Get("Grpc-Message") != "not here" {
			t.Errorf("trailers-only = %v %v body %q err %v", resp.StatusCode, resp.Header, body, err)
		}
		wantFacts(t, e, "resp_headers eos=1")
		resp = e.do(t, "resp-eos", http.MethodGet, "/echo", "", nil)
		readEcho(t, resp)
		wantFacts(t, e, "resp_headers eos=0")
	})

	t.Run("trailers created in the last body callback", func(t *testing.T) {
		resp := e.do(t, "trailer-create", http.MethodGet, "/echo", "", nil)
		_, _ = io.ReadAll(resp.Body)
		if resp.Trailer.Get("X-Created") != "by-plugin" {
			t.Errorf("trailer = %v", resp.Trailer)
		}
		wantFacts(t, e, "create_trailer=0")
	})

	t.Run("grpc_call pauses and resumes", func(t *testing.T) {
		c := grpcClient(t, e.proxy.Addr)
		ctx := metadata.AppendToOutgoingContext(testCtx(t), "x-case", "grpc-call")
		var hdr metadata.MD
		resp, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte("hi")}}, grpc.Header(&hdr))
		if err != nil {
			t.Fatal(err)
		}
		if string(resp.GetPayload().GetBody()) != "hi" || len(hdr.Get("x-saw-grpc-call")) == 0 || hdr.Get("x-saw-grpc-call")[0] != "ok" {
			t.Errorf("resp %v header %v", resp, hdr)
		}
		wantFacts(t, e, "grpc_call=0", "grpc_token_odd=true", "grpc_receive root_ok=true size=5 len=5")
	})

	t.Run("grpc_call failure delivers close only", func(t *testing.T) {
		c := grpcClient(t, e.proxy.Addr)
		ctx := metadata.AppendToOutgoingContext(testCtx(t), "x-case", "grpc-call-unimplemented")
		_, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{})
		if status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), "callout failed") {
			t.Fatalf("err = %v", err)
		}
		wantFacts(t, e, "grpc_close status=12 get_status=12 message=*")
	})

	// Envoy's async gRPC client sends the cluster name as :authority
	// unless envoy_grpc.authority is set; a peer refuses a `|` in it.
	t.Run("grpc_call to an Istio cluster name without authority", func(t *testing.T) {
		c := grpcClient(t, e.proxy.Addr)
		ctx := metadata.AppendToOutgoingContext(testCtx(t), "x-case", "grpc-call-istio-name")
		_, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{})
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("err = %v, want UNAVAILABLE", err)
		}
		wantFacts(t, e, "grpc_close status=14 get_status=14 message=upstream connect error or disconnect/reset before headers. reset reason: remote reset")
	})

	t.Run("grpc_call to an Istio cluster name with authority", func(t *testing.T) {
		c := grpcClient(t, e.proxy.Addr)
		ctx := metadata.AppendToOutgoingContext(testCtx(t), "x-case", "grpc-call-istio-authority")
		if _, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte("hi")}}); err != nil {
			t.Fatal(err)
		}
		wantFacts(t, e, "grpc_receive root_ok=true size=5 len=5")
	})

	// A callout has no downstream connection: an ORIGINAL_DST cluster
	// finds no host for it.
	t.Run("grpc_call to an ORIGINAL_DST cluster", func(t *testing.T) {
		c := grpcClient(t, e.proxy.Addr)
		ctx := metadata.AppendToOutgoingContext(testCtx(t), "x-case", "grpc-call-original-dst")
		_, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{})
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("err = %v, want UNAVAILABLE", err)
		}
		wantFacts(t, e, "grpc_close status=14 get_status=14 message=no healthy upstream")
	})

	t.Run("grpc_call to an unreachable cluster", func(t *testing.T) {
		c := grpcClient(t, e.proxy.Addr)
		ctx := metadata.AppendToOutgoingContext(testCtx(t), "x-case", "grpc-call-unreachable")
		_, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{})
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("err = %v", err)
		}
		wantFacts(t, e, "grpc_close status=14 get_status=14 message=upstream connect error*")
	})

	t.Run("grpc_call timeout", func(t *testing.T) {
		c := grpcClient(t, e.proxy.Addr)
		ctx := metadata.AppendToOutgoingContext(testCtx(t), "x-case", "grpc-call-timeout")
		start := time.Now()
		_, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{})
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("err = %v", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("a 50 ms callout timeout took %s", d)
		}
		// Envoy's 504 local reply: UNAVAILABLE, not DEADLINE_EXCEEDED.
		wantFacts(t, e, "grpc_close status=14 get_status=14 message=upstream request timeout")
	})

	t.Run("http_call timeout is a 504 reply", func(t *testing.T) {
		e.do(t, "http-call-timeout", http.MethodGet, "/echo", "", nil)
		wantFacts(t, e, "http_call=0", "http_call_response root_ok=true status=504 body=upstream request timeout headers=*")
	})

	t.Run("grpc_call to an unknown cluster", func(t *testing.T) {
		e.do(t, "grpc-call-bad-cluster", http.MethodGet, "/echo", "", nil)
		wantFacts(t, e, "grpc_call_bad_cluster=4")
	})

	// Envoy fails the call itself (INTERNAL_FAILURE, no token) and delivers
	// the async client's close UNAVAILABLE for a token the plugin never got.
	t.Run("grpc_call to a GrpcService of an unknown cluster", func(t *testing.T) {
		e.do(t, "grpc-call-unknown-service", http.MethodGet, "/echo", "", nil)
		wantFacts(t, e, "grpc_call_unknown_service=10", "grpc_call_unknown_service_token=0",
			"grpc_close status=14 get_status=14 message=Cluster not available")
	})

	t.Run("grpc_stream", func(t *testing.T) {
		c := grpcClient(t, e.proxy.Addr)
		ctx := metadata.AppendToOutgoingContext(testCtx(t), "x-case", "grpc-stream")
		if _, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{}); err != nil {
			t.Fatal(err)
		}
		wantFacts(t, e, "grpc_stream=0", "stream_token_even=true", "grpc_send=0", "grpc_close=0",
			"grpc_send_call_token=2", "grpc_initial_metadata n_ok=true", "grpc_receive root_ok=true size=7 len=7",
			"grpc_trailing_metadata", "grpc_close status=0 get_status=0 message=")
	})
}

func TestTick(t *testing.T) {
	e := newEnv(t, withConfig("mode=test;tick=5"))
	wantFacts(t, e, "set_tick=0", "tick 1 root=1", "tick 2 root=1", "tick 3 root=1")
}

func TestConfigureFailureRefusesToServe(t *testing.T) {
	up := startUpstream(t)
	_, err := newHost(t, up, "mode=test;fail_configure=1")
	if !errors.Is(err, errConfigureFailed) {
		t.Fatalf("err = %v, want ErrConfigureFailed", err)
	}
}
