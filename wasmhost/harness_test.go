package wasmhost_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
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

// logRecorder is a slog.Handler keeping every record, so tests can read
// the plugin's "T <fact>" lines.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
	attrs []slog.Attr
	root  *logRecorder
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	root := r.rootOf()
	line := rec.Message
	var extra []string
	for _, a := range r.attrs {
		extra = append(extra, a.Key+"="+a.Value.String())
	}
	rec.Attrs(func(a slog.Attr) bool {
		extra = append(extra, a.Key+"="+a.Value.String())
		return true
	})
	if len(extra) > 0 {
		line += " |" + strings.Join(extra, " ")
	}
	root.mu.Lock()
	root.lines = append(root.lines, line)
	root.mu.Unlock()
	return nil
}

func (r *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &logRecorder{attrs: append(append([]slog.Attr(nil), r.attrs...), as...), root: r.rootOf()}
}

func (r *logRecorder) WithGroup(string) slog.Handler { return r }

func (r *logRecorder) rootOf() *logRecorder {
	if r.root != nil {
		return r.root
	}
	return r
}

// facts returns the plugin's "T " lines (without prefix and attributes).
func (r *logRecorder) facts() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, l := range r.lines {
		if strings.HasPrefix(l, "T ") {
			msg, _, _ := strings.Cut(l[2:], " |")
			out = append(out, msg)
		}
	}
	return out
}

func (r *logRecorder) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines...)
}

// waitFact polls until a fact equal to want (or, with a trailing "*",
// starting with it) was logged, and returns it.
func (r *logRecorder) waitFact(t *testing.T, want string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, f := range r.facts() {
			if f == want || (strings.HasSuffix(want, "*") && strings.HasPrefix(f, strings.TrimSuffix(want, "*"))) {
				return f
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("fact %q not logged; facts:\n%s", want, strings.Join(r.facts(), "\n"))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// hasFact reports whether want was logged (no waiting).
func (r *logRecorder) hasFact(want string) bool {
	for _, f := range r.facts() {
		if f == want {
			return true
		}
	}
	return false
}

// pluginWasm builds testdata/plugin (optionally with tags) once per run.
func pluginWasm(t testing.TB, tags ...string) []byte {
	t.Helper()
	return wasmhosttest.BuildOnce(t, "testdata/plugin", "plugin.wasm", tags...)
}

// testService is the gRPC upstream: grpc.testing.TestService.
type testService struct {
	testgrpc.UnimplementedTestServiceServer
}

func (testService) EmptyCall(context.Context, *testgrpc.Empty) (*testgrpc.Empty, error) {
	return &testgrpc.Empty{}, nil
}

func (testService) UnaryCall(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("x-echo-trailer"); len(v) > 0 {
			_ = grpc.SetTrailer(ctx, metadata.Pairs("x-echo-trailer", v[0]))
		}
		if v := md.Get("x-grpc-call"); len(v) > 0 {
			_ = grpc.SetHeader(ctx, metadata.Pairs("x-saw-grpc-call", v[0]))
		}
	}
	if st := req.GetResponseStatus(); st != nil && st.GetCode() != 0 {
		return nil, status.Error(codes.Code(st.GetCode()), st.GetMessage())
	}
	resp := &testgrpc.SimpleResponse{Payload: req.GetPayload()}
	if req.GetResponseSize() > 0 {
		resp.Payload = &testgrpc.Payload{Body: make([]byte, req.GetResponseSize())}
	}
	return resp, nil
}

func (testService) StreamingOutputCall(req *testgrpc.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testgrpc.StreamingOutputCallResponse]) error {
	for _, p := range req.GetResponseParameters() {
		if err := stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: make([]byte, p.GetSize())}}); err != nil {
			return err
		}
	}
	if st := req.GetResponseStatus(); st != nil && st.GetCode() != 0 {
		return status.Error(codes.Code(st.GetCode()), st.GetMessage())
	}
	return nil
}

func (testService) FullDuplexCall(stream grpc.BidiStreamingServer[testgrpc.StreamingOutputCallRequest, testgrpc.StreamingOutputCallResponse]) error {
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		for _, p := range req.GetResponseParameters() {
			if err := stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: make([]byte, p.GetSize())}}); err != nil {
				return err
			}
		}
	}
}

// echoReply is what the echo upstream answers to non-gRPC requests.
type echoReply struct {
	Method  string              `json:"method"`
	Path    string              `json:"path"`
	Host    string              `json:"host"`
	Headers map[string][]string `json:"headers"`
	Body    string              `json:"body"`
}

// startUpstream starts the test upstream on 127.0.0.1:0 (h2c and HTTP/1):
// gRPC requests go to TestService, /trailers-only ends the stream with its
// headers (grpc-status 5), /slow.Service/Wait waits for the caller to give
// up, /delay?ms=N sleeps and answers
// "delayed", anything else is echoed as JSON (with trailer X-Echo-Trailer
// when the request has x-want-trailer).
func startUpstream(t testing.TB) string {
	t.Helper()
	gs := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(gs, testService{})
	mux := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow.Service/Wait" {
			// A gRPC method that answers only when the caller gives up.
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
			return
		}
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			gs.ServeHTTP(w, r)
			return
		}
		if r.URL.Path == "/trailers-only" {
			// Headers that end the stream, as a gRPC error without a message.
			w.Header().Set("Grpc-Status", "5")
			w.Header().Set("Grpc-Message", "not here")
			return
		}
		if r.URL.Path == "/delay" {
			ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
			select {
			case <-time.After(time.Duration(ms) * time.Millisecond):
			case <-r.Context().Done():
				return
			}
			_, _ = io.WriteString(w, "delayed")
			return
		}
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("X-Want-Trailer") != "" {
			w.Header().Set("Trailer", "X-Echo-Trailer")
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(echoReply{Method: r.Method, Path: r.URL.RequestURI(), Host: r.Host, Headers: r.Header, Body: string(body)})
		if r.Header.Get("X-Want-Trailer") != "" {
			w.Header().Set("X-Echo-Trailer", "1")
		}
	})
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: mux, Protocols: &protocols}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
		gs.Stop()
	})
	return ln.Addr().String()
}

// startNativeGRPC starts TestService on a plain grpc-go server.
func startNativeGRPC(t testing.TB) string {
	t.Helper()
	gs := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(gs, testService{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = gs.Serve(ln) }()
	t.Cleanup(func() { gs.Stop(); <-done })
	return ln.Addr().String()
}

// env is a proxy with the test plugin in front of the test upstream.
type env struct {
	logs     *logRecorder
	proxy    *wasmhosttest.Proxy
	upstream string
	http     *http.Client
}

type envOption func(*wasmhost.Config)

func withConfig(c string) envOption {
	return func(cfg *wasmhost.Config) { cfg.Plugin.Configuration = []byte(c) }
}

// newEnv starts upstream + proxy with the test plugin in mode "test".
func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	up := startUpstream(t)
	logs := &logRecorder{}
	cfg := wasmhost.Config{
		Plugin: wasmhost.Plugin{
			Module:          pluginWasm(t),
			Name:            "conformance",
			RootID:          "root-1",
			VMID:            "vm-" + t.Name(),
			Configuration:   []byte("mode=test"),
			VMConfiguration: []byte("vmcfg"),
		},
		Upstream: up,
		Clusters: map[string]string{"echo": up, "nowhere": "127.0.0.1:1", "outbound|9||echo.default.svc.cluster.local": up,
			"inbound|50051||": wasmhost.OriginalDst},
		VMs:          2,
		Logger:       slog.New(logs),
		LogLevel:     slog.LevelDebug,
		NodeID:       "node-7",
		NodeMetadata: map[string]any{"team": "angzarr"},
	}
	for _, o := range opts {
		o(&cfg)
	}
	p := wasmhosttest.Start(t, cfg)
	e := &env{logs: logs, proxy: p, upstream: up, http: h2cClient(t)}
	return e
}

// h2cClient speaks HTTP/2 with prior knowledge.
func h2cClient(t testing.TB) *http.Client {
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &protocols}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

// do sends a request with x-case through the proxy.
func (e *env) do(t *testing.T, kase, method, path string, body string, hdr map[string]string) *http.Response {
	t.Helper()
	var rb io.Reader
	if body != "" {
		rb = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+e.proxy.Addr+path, rb)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("x-case", kase)
	for k, v := range hdr {
		req.Header.Add(k, v)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", kase, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func readEcho(t *testing.T, resp *http.Response) echoReply {
	t.Helper()
	var er echoReply
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &er); err != nil {
		t.Fatalf("decode echo %q: %v", b, err)
	}
	return er
}

// grpcClient dials addr with h2c.
func grpcClient(t testing.TB, addr string) testgrpc.TestServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return testgrpc.NewTestServiceClient(conn)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}
