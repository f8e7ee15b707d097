package wasmhost

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	grpcstatus "google.golang.org/grpc/status"
)

// rawCodec lets the test server handle any method on raw bytes.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "raw" }

// h2TestServer is a grpc-go server with a few raw methods:
//
//	/t/Echo   replies with the request message
//	/t/Count  "N SIZE": replies with N messages of SIZE bytes
//	/t/Fail   NOT_FOUND without any message (a trailers-only response)
//	/t/Sum    reads messages until the end, replies with their total size
//	/t/Hold   replies with one message, then waits for release or cancellation
//	/t/Sleep  waits the request's number of milliseconds, then echoes it
//	/t/Bidi   sends its headers at once, then echoes each message
type h2TestServer struct {
	addr      string
	srv       *grpc.Server
	release   chan struct{}
	cancelled chan struct{}
	inflight  atomic.Int32
	maxIn     atomic.Int32
}

func startH2TestServer(t *testing.T, addr string, opts ...grpc.ServerOption) *h2TestServer {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var lis net.Listener
	var err error
	for i := 0; i < 50; i++ { // the previous server's port may linger briefly
		if lis, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	s := &h2TestServer{addr: lis.Addr().String(), release: make(chan struct{}), cancelled: make(chan struct{}, 16)}
	opts = append(opts, grpc.ForceServerCodec(rawCodec{}), grpc.UnknownServiceHandler(s.handle),
		grpc.MaxRecvMsgSize(64<<20), grpc.MaxSendMsgSize(64<<20))
	s.srv = grpc.NewServer(opts...)
	go func() { _ = s.srv.Serve(lis) }()
	t.Cleanup(s.srv.Stop)
	return s
}

func (s *h2TestServer) handle(_ any, st grpc.ServerStream) error {
	n := s.inflight.Add(1)
	defer s.inflight.Add(-1)
	for {
		m := s.maxIn.Load()
		if n <= m || s.maxIn.CompareAndSwap(m, n) {
			break
		}
	}
	method, _ := grpc.MethodFromServerStream(st)
	var msg []byte
	switch method {
	case "/t/Fail":
		return grpcstatus.Error(codes.NotFound, "no such thing")
	case "/t/Bidi":
		if err := st.SendHeader(metadata.Pairs("x-ready", "yes")); err != nil {
			return err
		}
		for {
			if err := st.RecvMsg(&msg); err == io.EOF {
				return nil
			} else if err != nil {
				return err
			}
			if err := st.SendMsg(&msg); err != nil {
				return err
			}
		}
	case "/t/Sum":
		total := 0
		for {
			if err := st.RecvMsg(&msg); err == io.EOF {
				break
			} else if err != nil {
				return err
			}
			total += len(msg)
		}
		out := []byte(strconv.Itoa(total))
		return st.SendMsg(&out)
	}
	if err := st.RecvMsg(&msg); err != nil {
		return err
	}
	switch method {
	case "/t/Echo":
		return st.SendMsg(&msg)
	case "/t/Count":
		var n, size int
		if _, err := fmt.Sscan(string(msg), &n, &size); err != nil {
			return grpcstatus.Error(codes.InvalidArgument, err.Error())
		}
		for i := 0; i < n; i++ {
			out := bytes.Repeat([]byte{byte('a' + i%26)}, size)
			if err := st.SendMsg(&out); err != nil {
				return err
			}
		}
		return nil
	case "/t/Hold":
		if err := st.SendMsg(&msg); err != nil {
			return err
		}
		select {
		case <-s.release:
			return st.SendMsg(&msg)
		case <-st.Context().Done():
			s.cancelled <- struct{}{}
			return st.Context().Err()
		}
	case "/t/Sleep":
		ms, _ := strconv.Atoi(string(msg))
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
			return st.SendMsg(&msg)
		case <-st.Context().Done():
			return st.Context().Err()
		}
	}
	return grpcstatus.Error(codes.Unimplemented, method)
}

func grpcReq(ctx context.Context, addr, method string, body io.Reader) *http.Request {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+method, body)
	if err != nil {
		panic(err)
	}
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	return req
}

func unary(t *testing.T, c *h2Client, addr, method string, msg []byte) (*http.Response, [][]byte) {
	t.Helper()
	resp, err := c.RoundTrip(grpcReq(context.Background(), addr, method, bytes.NewReader(grpcFrame(msg))))
	if err != nil {
		t.Fatal(err)
	}
	return resp, readAllGRPC(t, resp)
}

func readAllGRPC(t *testing.T, resp *http.Response) [][]byte {
	t.Helper()
	defer resp.Body.Close()
	var msgs [][]byte
	for {
		m, err := readGRPCMessage(resp.Body)
		if err == io.EOF {
			return msgs
		}
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
}

func (c *h2Client) connCount(addr string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.pools[addr]; p != nil {
		return len(p.conns)
	}
	return 0
}

func TestH2ClientGRPCUnaryReusesConnection(t *testing.T) {
	s := startH2TestServer(t, "")
	c := newH2Client()
	defer c.CloseIdleConnections()
	for i := 0; i < 50; i++ {
		want := []byte("hello " + strconv.Itoa(i))
		resp, msgs := unary(t, c, s.addr, "/t/Echo", want)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/grpc" {
			t.Fatalf("status %d header %v", resp.StatusCode, resp.Header)
		}
		if len(msgs) != 1 || !bytes.Equal(msgs[0], want) {
			t.Fatalf("messages %q", msgs)
		}
		if got := resp.Trailer.Get("Grpc-Status"); got != "0" {
			t.Fatalf("grpc-status %q, trailer %v", got, resp.Trailer)
		}
	}
	if n := c.connCount(s.addr); n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
}

func TestH2ClientGRPCServerStreaming(t *testing.T) {
	s := startH2TestServer(t, "")
	c := newH2Client()
	defer c.CloseIdleConnections()
	resp, msgs := unary(t, c, s.addr, "/t/Count", []byte("200 3000"))
	if len(msgs) != 200 {
		t.Fatalf("%d messages", len(msgs))
	}
	for i, m := range msgs {
		if len(m) != 3000 || m[0] != byte('a'+i%26) {
			t.Fatalf("message %d: %d bytes %q", i, len(m), m[:1])
		}
	}
	if resp.Trailer.Get("Grpc-Status") != "0" {
		t.Fatalf("trailer %v", resp.Trailer)
	}
}

// A streaming request whose body has nothing yet: the HEADERS go out alone
// and the response starts before the client sends anything.
func TestH2ClientGRPCBidiHeadersFirst(t *testing.T) {
	s := startH2TestServer(t, "")
	c := newH2Client()
	defer c.CloseIdleConnections()
	pr, pw := io.Pipe()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.RoundTrip(grpcReq(ctx, s.addr, "/t/Bidi", pr))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("X-Ready") != "yes" {
		t.Fatalf("header %v", resp.Header)
	}
	for i := 0; i < 3; i++ {
		want := []byte("ping " + strconv.Itoa(i))
		if _, err := pw.Write(grpcFrame(want)); err != nil {
			t.Fatal(err)
		}
		m, err := readGRPCMessage(resp.Body)
		if err != nil || !bytes.Equal(m, want) {
			t.Fatalf("echo %q %v", m, err)
		}
	}
	pw.Close()
	if _, err := readGRPCMessage(resp.Body); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
	if resp.Trailer.Get("Grpc-Status") != "0" {
		t.Fatalf("trailer %v", resp.Trailer)
	}
}

func TestH2ClientGRPCTrailersOnly(t *testing.T) {
	s := startH2TestServer(t, "")
	c := newH2Client()
	defer c.CloseIdleConnections()
	resp, err := c.RoundTrip(grpcReq(context.Background(), s.addr, "/t/Fail", bytes.NewReader(grpcFrame([]byte("x")))))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Body != http.NoBody || resp.ContentLength != 0 || !endedInHeaders(resp) {
		t.Fatalf("body %T length %d: not a headers-only response", resp.Body, resp.ContentLength)
	}
	if resp.Header.Get("Grpc-Status") != "5" || resp.Header.Get("Grpc-Message") != "no such thing" {
		t.Fatalf("header %v", resp.Header)
	}
	if code, msg := grpcResult(resp); code != 5 || msg != "no such thing" {
		t.Fatalf("grpcResult %d %q", code, msg)
	}
	// The connection still serves.
	if _, msgs := unary(t, c, s.addr, "/t/Echo", []byte("ok")); len(msgs) != 1 {
		t.Fatal("no echo after the trailers-only response")
	}
}

func TestH2ClientGRPCLargeMessagesBothWays(t *testing.T) {
	// Small, fixed windows on the server: the request needs many
	// WINDOW_UPDATEs; the 8 MiB response spans several of ours.
	s := startH2TestServer(t, "", grpc.InitialWindowSize(65535), grpc.InitialConnWindowSize(65535))
	c := newH2Client()
	defer c.CloseIdleConnections()
	big := make([]byte, 8<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	// In memory: the first window goes with the headers, the rest waits.
	_, msgs := unary(t, c, s.addr, "/t/Echo", big)
	if len(msgs) != 1 || !bytes.Equal(msgs[0], big) {
		t.Fatal("8 MiB echo differs")
	}
	// Streaming through a pipe, several messages.
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < 4; i++ {
			if _, err := pw.Write(grpcFrame(big[:3<<20])); err != nil {
				return
			}
		}
		pw.Close()
	}()
	resp, err := c.RoundTrip(grpcReq(context.Background(), s.addr, "/t/Sum", pr))
	if err != nil {
		t.Fatal(err)
	}
	msgs = readAllGRPC(t, resp)
	if len(msgs) != 1 || string(msgs[0]) != strconv.Itoa(4*3<<20) {
		t.Fatalf("sum %q", msgs)
	}
	// Many concurrent large responses on one connection share its window.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.RoundTrip(grpcReq(context.Background(), s.addr, "/t/Count", bytes.NewReader(grpcFrame([]byte("40 65536")))))
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			n, err := io.Copy(io.Discard, resp.Body)
			if err != nil || n != 40*(65536+5) {
				errs <- fmt.Errorf("read %d: %v", n, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// Streams nobody reads fill their own windows, not the connection's: the
// others on the connection go on.
func TestH2ClientStalledStreamsDoNotBlockOthers(t *testing.T) {
	s := startH2TestServer(t, "")
	c := newH2Client()
	defer c.CloseIdleConnections()
	for i := 0; i < 8; i++ {
		resp, err := c.RoundTrip(grpcReq(context.Background(), s.addr, "/t/Count", bytes.NewReader(grpcFrame([]byte("64 65536")))))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close() // unread: 4 MiB each, over its window
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := c.RoundTrip(grpcReq(context.Background(), s.addr, "/t/Count", bytes.NewReader(grpcFrame([]byte("64 65536")))))
		if err != nil {
			t.Error(err)
			return
		}
		defer resp.Body.Close()
		if n, err := io.Copy(io.Discard, resp.Body); err != nil || n != 64*(65536+5) {
			t.Errorf("read %d: %v", n, err)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a stream stalled behind unread ones")
	}
	if n := c.connCount(s.addr); n != 1 {
		t.Fatalf("%d connections", n)
	}
}

func TestH2ClientRespectsMaxConcurrentStreams(t *testing.T) {
	s := startH2TestServer(t, "", grpc.MaxConcurrentStreams(2))
	c := newH2Client()
	defer c.CloseIdleConnections()
	const n = 60
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.RoundTrip(grpcReq(context.Background(), s.addr, "/t/Sleep", bytes.NewReader(grpcFrame([]byte("30")))))
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			if _, err := io.Copy(io.Discard, resp.Body); err != nil {
				errs <- err
				return
			}
			if st := resp.Trailer.Get("Grpc-Status"); st != "0" {
				errs <- fmt.Errorf("grpc-status %q", st)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := c.connCount(s.addr); got > h2MaxConnsPerAddr || got < 2 {
		t.Fatalf("%d connections", got)
	}
	if m := s.maxIn.Load(); m > 2*h2MaxConnsPerAddr {
		t.Fatalf("%d streams at once on the server, limit %d", m, 2*h2MaxConnsPerAddr)
	}
}

func TestH2ClientContextCancel(t *testing.T) {
	s := startH2TestServer(t, "")
	c := newH2Client()
	defer c.CloseIdleConnections()

	// Mid-response: the reader unblocks with the context's error and the
	// server sees the stream cancelled.
	ctx, cancel := context.WithCancel(context.Background())
	resp, err := c.RoundTrip(grpcReq(ctx, s.addr, "/t/Hold", bytes.NewReader(grpcFrame([]byte("first")))))
	if err != nil {
		t.Fatal(err)
	}
	if m, err := readGRPCMessage(resp.Body); err != nil || string(m) != "first" {
		t.Fatalf("%q %v", m, err)
	}
	time.AfterFunc(20*time.Millisecond, cancel)
	if _, err := readGRPCMessage(resp.Body); !errors.Is(err, context.Canceled) {
		t.Fatalf("read after cancel: %v", err)
	}
	resp.Body.Close()
	select {
	case <-s.cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the server did not see the stream reset")
	}

	// Before the response headers: RoundTrip returns the deadline error.
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = c.RoundTrip(grpcReq(ctx, s.addr, "/t/Sleep", bytes.NewReader(grpcFrame([]byte("2000")))))
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Fatalf("RoundTrip: %v after %v", err, time.Since(start))
	}

	// Body.Close before the end resets the stream; the connection goes on.
	resp, err = c.RoundTrip(grpcReq(context.Background(), s.addr, "/t/Hold", bytes.NewReader(grpcFrame([]byte("x")))))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	select {
	case <-s.cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("Body.Close did not reset the stream")
	}
	if _, msgs := unary(t, c, s.addr, "/t/Echo", []byte("still")); len(msgs) != 1 {
		t.Fatal("connection unusable after resets")
	}
	if n := c.connCount(s.addr); n != 1 {
		t.Fatalf("%d connections", n)
	}
}

func TestH2ClientServerKilledMidStream(t *testing.T) {
	s := startH2TestServer(t, "")
	c := newH2Client()
	defer c.CloseIdleConnections()
	resp, err := c.RoundTrip(grpcReq(context.Background(), s.addr, "/t/Hold", bytes.NewReader(grpcFrame([]byte("x")))))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readGRPCMessage(resp.Body); err != nil {
		t.Fatal(err)
	}
	go s.srv.Stop()
	if _, err := readGRPCMessage(resp.Body); err == nil || err == io.EOF {
		t.Fatalf("read after the server died: %v", err)
	}
	resp.Body.Close()
	// Nobody listens any more: a dial error, as the proxy classifies it.
	_, err = c.RoundTrip(grpcReq(context.Background(), s.addr, "/t/Echo", bytes.NewReader(grpcFrame([]byte("x")))))
	if !isDialError(err) {
		t.Fatalf("after the server died: %v (%T), want a dial error", err, err)
	}
}

func TestH2ClientGoAwayRedials(t *testing.T) {
	a := startH2TestServer(t, "")
	c := newH2Client()
	defer c.CloseIdleConnections()
	resp, err := c.RoundTrip(grpcReq(context.Background(), a.addr, "/t/Hold", bytes.NewReader(grpcFrame([]byte("held")))))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readGRPCMessage(resp.Body); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	go func() { a.srv.GracefulStop(); close(stopped) }()
	deadline := time.Now().Add(5 * time.Second)
	for c.connCount(a.addr) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("GOAWAY not seen")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A new server on the same address takes the new requests.
	b := startH2TestServer(t, a.addr)
	for i := 0; i < 3; i++ {
		if _, msgs := unary(t, c, b.addr, "/t/Echo", []byte("new")); len(msgs) != 1 {
			t.Fatal("no echo from the new server")
		}
	}
	// The stream in flight on the old connection completes.
	close(a.release)
	m, err := readGRPCMessage(resp.Body)
	if err != nil || string(m) != "held" {
		t.Fatalf("held stream: %q %v", m, err)
	}
	if _, err := readGRPCMessage(resp.Body); err != io.EOF {
		t.Fatalf("held stream end: %v", err)
	}
	if resp.Trailer.Get("Grpc-Status") != "0" {
		t.Fatalf("held stream trailer %v", resp.Trailer)
	}
	resp.Body.Close()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("GracefulStop did not return")
	}
	if b.maxIn.Load() == 0 {
		t.Fatal("the new server served nothing")
	}
}

func TestH2ClientClosesIdleConnections(t *testing.T) {
	s := startH2TestServer(t, "")
	c := newH2Client()
	c.idleTimeout = 100 * time.Millisecond
	defer c.CloseIdleConnections()
	unary(t, c, s.addr, "/t/Echo", []byte("x"))
	// A long stream keeps its connection past the timeout.
	resp, err := c.RoundTrip(grpcReq(context.Background(), s.addr, "/t/Sleep", bytes.NewReader(grpcFrame([]byte("300")))))
	if err != nil {
		t.Fatal(err)
	}
	readAllGRPC(t, resp)
	if n := c.connCount(s.addr); n != 1 {
		t.Fatalf("%d connections after a stream outlasting the idle timeout", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.connCount(s.addr) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("idle connection not closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, msgs := unary(t, c, s.addr, "/t/Echo", []byte("again")); len(msgs) != 1 {
		t.Fatal("no echo after the idle close")
	}
}

func TestH2ClientDialError(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	c := newH2Client()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	if _, err := c.RoundTrip(req); !isDialError(err) {
		t.Fatalf("%v (%T), want a dial error", err, err)
	}
}

// startH2CServer runs a net/http server speaking h2c with prior knowledge.
func startH2CServer(t *testing.T, h http.Handler) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: h, Protocols: &protocols}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Close() })
	return lis.Addr().String()
}

func TestH2ClientNetHTTPServer(t *testing.T) {
	addr := startH2CServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			http.Error(w, "not HTTP/2", 500)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("Trailer", "X-Sum")
		w.Header()["X-Multi"] = []string{"one", "two"}
		w.Header().Set("X-Host", r.Host)
		w.Header().Set("X-Got", strings.Join(r.Header.Values("X-Custom"), ","))
		w.Header().Set("X-Length", strconv.FormatInt(r.ContentLength, 10))
		w.Header().Set("X-Req-Trailer", r.Trailer.Get("X-Checksum"))
		w.Header().Set("X-UA", r.Header.Get("User-Agent"))
		code, _ := strconv.Atoi(r.URL.Query().Get("code"))
		if code == 0 {
			code = 200
		}
		w.WriteHeader(code)
		if r.URL.Query().Get("stream") != "" {
			for i := 0; i < 3; i++ {
				fmt.Fprintf(w, "chunk%d;", i)
				w.(http.Flusher).Flush()
				time.Sleep(10 * time.Millisecond)
			}
		}
		w.Write(body)
		w.Header().Set("X-Sum", strconv.Itoa(len(body)))
		w.Header().Set(http.TrailerPrefix+"X-Late", "late")
	}))
	c := newH2Client()
	defer c.CloseIdleConnections()

	for _, code := range []int{200, 201, 404, 503} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/p?code="+strconv.Itoa(code), strings.NewReader("payload"))
		req.Host = "logic.example"
		req.Header.Add("X-Custom", "a")
		req.Header.Add("X-Custom", "b")
		resp, err := c.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		h := resp.Header
		if resp.StatusCode != code || string(body) != "payload" {
			t.Fatalf("code %d body %q", resp.StatusCode, body)
		}
		if got := h.Values("X-Multi"); len(got) != 2 || got[0] != "one" || got[1] != "two" {
			t.Fatalf("X-Multi %q", got)
		}
		if h.Get("X-Host") != "logic.example" || h.Get("X-Got") != "a,b" || h.Get("X-Length") != "7" {
			t.Fatalf("request seen as %v", h)
		}
		if resp.Trailer.Get("X-Sum") != "7" || resp.Trailer.Get("X-Late") != "late" {
			t.Fatalf("trailer %v", resp.Trailer)
		}
	}

	// A streaming request body with trailers; a streamed response.
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/s?stream=1", pr)
	// ContentLength stays 0: unknown with a body, as with net/http.
	req.Trailer = http.Header{"X-Checksum": nil}
	resp := make(chan *http.Response, 1)
	errc := make(chan error, 1)
	go func() {
		r, err := c.RoundTrip(req)
		if err != nil {
			errc <- err
			return
		}
		resp <- r
	}()
	for i := 0; i < 5; i++ {
		fmt.Fprintf(pw, "part%d;", i)
		time.Sleep(5 * time.Millisecond)
	}
	req.Trailer.Set("X-Checksum", "abc")
	pw.Close()
	var r *http.Response
	select {
	case r = <-resp:
	case err := <-errc:
		t.Fatal(err)
	case <-time.After(5 * time.Second):
		t.Fatal("no response")
	}
	defer r.Body.Close()
	if r.ContentLength != -1 {
		t.Fatalf("ContentLength %d", r.ContentLength)
	}
	var got []byte
	buf := make([]byte, 4)
	for {
		n, err := r.Body.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if want := "chunk0;chunk1;chunk2;part0;part1;part2;part3;part4;"; string(got) != want {
		t.Fatalf("body %q", got)
	}
	if r.Header.Get("X-Req-Trailer") != "abc" || r.Header.Get("X-Length") != "-1" {
		t.Fatalf("request trailer/length seen as %v", r.Header)
	}
	if r.Trailer.Get("X-Sum") != "30" {
		t.Fatalf("trailer %v", r.Trailer)
	}

	// Trailers after an in-memory body (an http_call with trailers).
	req, _ = http.NewRequest(http.MethodPost, "http://"+addr+"/t", bytes.NewReader([]byte("abc")))
	req.Trailer = http.Header{"X-Checksum": {"xyz"}}
	rt, err := c.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, rt.Body)
	rt.Body.Close()
	if rt.Header.Get("X-Req-Trailer") != "xyz" || rt.Header.Get("X-Length") != "3" {
		t.Fatalf("request with trailers seen as %v", rt.Header)
	}

	// A GET without a body: HEADERS alone with END_STREAM.
	req, _ = http.NewRequest(http.MethodGet, "http://"+addr+"/g?code=204", nil)
	rr, err := c.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	rr.Body.Close()
	if rr.StatusCode != 204 || rr.Header.Get("X-Length") != "0" {
		t.Fatalf("GET: %d %v", rr.StatusCode, rr.Header)
	}
	// An invalid header value is refused before anything is sent.
	req, _ = http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	req.Header.Set("X-Bad", "a\nb")
	if _, err := c.RoundTrip(req); err == nil {
		t.Fatal("invalid header value accepted")
	}
	if n := c.connCount(addr); n != 1 {
		t.Fatalf("%d connections", n)
	}
}
