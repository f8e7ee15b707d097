package wasmhost_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/angzarr-mesh/angzarr/wasmhost"
)

// countingUpstream serves h2c, counts the requests it received (at their
// headers) and echoes each request's headers and whole body.
func countingUpstream(t *testing.T) (addr string, requests *atomic.Int64) {
	t.Helper()
	requests = new(atomic.Int64)
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: &protocols, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		_ = json.NewEncoder(w).Encode(echoReply{Method: r.Method, Path: r.URL.RequestURI(), Headers: r.Header, Body: string(body)})
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String(), requests
}

// stalledRequest sends a request through the proxy whose body stops after
// first; the body ends when the test closes the writer. The response
// arrives on the channel.
func stalledRequest(t *testing.T, e *env, kase, path, contentType, first string) (<-chan *http.Response, *io.PipeWriter) {
	t.Helper()
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	req, err := http.NewRequestWithContext(testCtx(t), http.MethodPost, "http://"+e.proxy.Addr+path, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("x-case", kase)
	req.Header.Set("Content-Type", contentType)
	go func() { _, _ = io.WriteString(pw, first) }()
	out := make(chan *http.Response, 1)
	go func() {
		resp, err := e.http.Do(req)
		if err != nil {
			t.Error(err)
			close(out)
			return
		}
		out <- resp
	}()
	return out, pw
}

func receive(t *testing.T, c <-chan *http.Response) *http.Response {
	t.Helper()
	resp, ok := <-c
	if !ok {
		t.FailNow()
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// A body that stops arriving over HTTP/2 is ended by the stream idle
// timeout: a local reply 408 "stream timeout" (Envoy's), here as gRPC. The
// timeout comes from Config or, live, from SetStreamTimeouts (xDS).
func TestStreamIdleTimeoutEndsAStalledBody(t *testing.T) {
	for _, live := range []bool{false, true} {
		t.Run(map[bool]string{false: "config", true: "SetStreamTimeouts"}[live], func(t *testing.T) {
			e := newEnv(t, func(c *wasmhost.Config) {
				if !live {
					c.StreamIdleTimeout = 100 * time.Millisecond
					c.RequestTimeout = -1
				}
			})
			if live {
				e.proxy.Host.SetStreamTimeouts(100*time.Millisecond, -1)
			}
			// The upstream method answers only when the caller gives up.
			c, _ := stalledRequest(t, e, "none", "/slow.Service/Wait", "application/grpc", "\x00\x00\x00\x00\x10abc")
			resp := receive(t, c)
			_, _ = io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Grpc-Status") != "2" || resp.Header.Get("Grpc-Message") != "stream timeout" {
				t.Fatalf("stalled gRPC request: %d grpc-status %q grpc-message %q, want 200, 2 (UNKNOWN, Envoy's mapping of 408), \"stream timeout\"",
					resp.StatusCode, resp.Header.Get("Grpc-Status"), resp.Header.Get("Grpc-Message"))
			}
		})
	}
}

// HTTP/1.1 headers with a partial body are ended by the request timeout:
// 408 "request timeout".
func TestRequestTimeoutEndsAPartialHTTP1Body(t *testing.T) {
	e := newEnv(t, func(c *wasmhost.Config) { c.RequestTimeout = 100 * time.Millisecond })
	conn, err := net.Dial("tcp", e.proxy.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A bound for a broken proxy, not a timed assertion.
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(conn, "POST /echo HTTP/1.1\r\nHost: x\r\nx-case: none\r\nContent-Length: 100\r\n\r\nonly ten b")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no response to a partial HTTP/1.1 body: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || string(body) != "request timeout" {
		t.Fatalf("partial HTTP/1.1 body: %d %q, want 408 \"request timeout\"", resp.StatusCode, body)
	}
}

// With allow_on_headers_stop_iteration a plugin that stops the request
// headers gets the body, may still change the headers, and no upstream
// stream exists until it lets them go: by answering Continue to the last
// body callback, or by proxy_continue_stream.
func TestHeldRequestHeaders(t *testing.T) {
	for _, kase := range []string{"headers-hold", "headers-hold-continue"} {
		t.Run(kase, func(t *testing.T) {
			up, requests := countingUpstream(t)
			e := newEnv(t, func(c *wasmhost.Config) {
				c.Upstream = up
				c.Plugin.AllowOnHeadersStopIteration = true
			})
			c, pw := stalledRequest(t, e, kase, "/echo", "text/plain", "abc")
			e.logs.waitFact(t, "held_body size=3 eos=0")
			if n := requests.Load(); n != 0 {
				t.Fatalf("the upstream got %d requests while the plugin held the headers", n)
			}
			_, _ = io.WriteString(pw, "def")
			pw.Close()
			er := readEcho(t, receive(t, c))
			if er.Body != "abcdef" || strings.Join(er.Headers["X-Held"], ",") != "1" {
				t.Fatalf("upstream got body %q, x-held %q; want abcdef, 1", er.Body, er.Headers["X-Held"])
			}
			if n := requests.Load(); n != 1 {
				t.Fatalf("the upstream got %d requests, want 1", n)
			}
		})
	}
}

// A VM that fails while it holds a stream's request headers, with
// FailOpen, lets the stream through unfiltered (headers and body).
func TestHeldRequestHeadersFailOpen(t *testing.T) {
	up, requests := countingUpstream(t)
	e := newEnv(t, func(c *wasmhost.Config) {
		c.Upstream = up
		c.VMs = 1
		c.FailOpen = true
		c.Plugin.AllowOnHeadersStopIteration = true
	})
	req, err := http.NewRequestWithContext(testCtx(t), http.MethodPost, "http://"+e.proxy.Addr+"/echo", strings.NewReader("abc"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("x-case", "headers-hold-stuck")
	c := make(chan *http.Response, 1)
	go func() {
		resp, err := e.http.Do(req)
		if err != nil {
			t.Error(err)
			close(c)
			return
		}
		c <- resp
	}()
	e.logs.waitFact(t, "stuck_body size=3 eos=1")
	if n := requests.Load(); n != 0 {
		t.Fatalf("the upstream got %d requests while the plugin held the headers", n)
	}
	// Another stream traps the VM.
	resp := e.do(t, "panic", http.MethodGet, "/echo", "", nil)
	_, _ = io.Copy(io.Discard, resp.Body)
	er := readEcho(t, receive(t, c))
	if er.Body != "abc" {
		t.Fatalf("upstream got body %q, want abc", er.Body)
	}
}

// HTTP/1.1 headers that never end are cut by the request headers timeout.
func TestRequestHeadersTimeoutHTTP1(t *testing.T) {
	e := newEnv(t, func(c *wasmhost.Config) { c.RequestHeadersTimeout = 100 * time.Millisecond })
	conn, err := net.Dial("tcp", e.proxy.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second)) // a bound, not an assertion
	fmt.Fprintf(conn, "POST /echo HTTP/1.1\r\nHost: x\r\nx-case: no")
	if _, err := io.ReadAll(conn); err != nil {
		t.Fatalf("the proxy kept a connection whose headers never end: %v", err)
	}
}
