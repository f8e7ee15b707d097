package wasmhost

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// startH2 serves handler with serveH2 on a loopback port.
func startH2(t *testing.T, handler http.Handler) (addr string, stop func() error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- serveH2(ctx, ln, handler, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	}()
	var once sync.Once
	var serr error
	stop = func() error {
		once.Do(func() { cancel(); serr = <-done })
		return serr
	}
	t.Cleanup(func() { _ = stop() })
	return ln.Addr().String(), stop
}

// h2cClient is net/http's HTTP/2 client with prior knowledge, a second,
// independent implementation to test the server against.
func h2cClient() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p}}
}

func TestH2ServerEchoLargeBodiesBothWays(t *testing.T) {
	// Bodies larger than every flow-control window, both ways.
	addr, _ := startH2(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		w.Header().Set("Content-Type", "application/octet-stream")
		n, err := io.Copy(w, r.Body)
		if err != nil {
			t.Errorf("server read: %v", err)
		}
		w.Header().Set("X-Sum", fmt.Sprint(n))
	}))
	body := make([]byte, 9<<20)
	if _, err := rand.Read(body); err != nil {
		t.Fatal(err)
	}
	resp, err := h2cClient().Post("http://"+addr+"/echo", "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ProtoMajor != 2 || !bytes.Equal(got, body) {
		t.Fatalf("proto %d, echoed %d bytes equal=%v", resp.ProtoMajor, len(got), bytes.Equal(got, body))
	}
	if resp.Trailer.Get("X-Sum") != fmt.Sprint(len(body)) {
		t.Fatalf("trailer X-Sum = %q", resp.Trailer.Get("X-Sum"))
	}
}

func TestH2ServerManyConcurrentStreams(t *testing.T) {
	// More requests at once than SETTINGS_MAX_CONCURRENT_STREAMS: each
	// gets its own body back, and no connection runs more streams at once
	// than advertised. (net/http's client opens another connection beyond
	// the limit; its strict mode deadlocks when more requests wait than the
	// limit, a client bug, so it is not used.)
	var mu sync.Mutex
	inFlight, peak := map[string]int{}, map[string]int{}
	addr, _ := startH2(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inFlight[r.RemoteAddr]++
		peak[r.RemoteAddr] = max(peak[r.RemoteAddr], inFlight[r.RemoteAddr])
		mu.Unlock()
		time.Sleep(50 * time.Millisecond) // let streams overlap
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		inFlight[r.RemoteAddr]--
		mu.Unlock()
		_, _ = w.Write(b)
	}))
	c := h2cClient()
	const n = h2MaxConcurrentStreams + 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			want := fmt.Sprintf("req-%d", i)
			resp, err := c.Post("http://"+addr+"/", "text/plain", strings.NewReader(want))
			if err != nil {
				errs <- err
				return
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || string(got) != want {
				errs <- fmt.Errorf("request %d: %q, %v", i, got, err)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for conn, p := range peak {
		if p > h2MaxConcurrentStreams {
			t.Fatalf("connection %s ran %d streams at once, above the advertised %d", conn, p, h2MaxConcurrentStreams)
		}
	}
	t.Logf("peak concurrent streams per connection: %v", peak)
}

func TestH2ServerHeadersOnlyResponseAndRequestTrailers(t *testing.T) {
	addr, _ := startH2(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/trailers" {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("X-Got", r.Trailer.Get("X-Req-Trailer"))
			w.WriteHeader(http.StatusAccepted)
			return
		}
		// A gRPC trailers-only answer: status in the headers, nothing else.
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Grpc-Status", "7")
		w.WriteHeader(http.StatusOK)
	}))
	c := h2cClient()
	resp, err := c.Post("http://"+addr+"/only", "application/grpc", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Header.Get("Grpc-Status") != "7" || len(b) != 0 || len(resp.Trailer) != 0 {
		t.Fatalf("headers-only response: header %v body %q trailer %v", resp.Header, b, resp.Trailer)
	}

	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/trailers", pr)
	req.Trailer = http.Header{"X-Req-Trailer": nil}
	go func() {
		_, _ = pw.Write([]byte("body"))
		req.Trailer.Set("X-Req-Trailer", "tv")
		pw.Close()
	}()
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get("X-Got") != "tv" {
		t.Fatalf("status %d, X-Got %q", resp.StatusCode, resp.Header.Get("X-Got"))
	}
}

func TestH2ServerClientCancelReachesHandler(t *testing.T) {
	cancelled := make(chan error, 1)
	addr, _ := startH2(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		cancelled <- r.Context().Err()
	}))
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/wait", nil)
	resp, err := h2cClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
	select {
	case err := <-cancelled:
		if err == nil {
			t.Fatal("handler context not cancelled")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler never saw the client's reset")
	}
}

func TestH2ServerAbortedHandlerResetsTheStream(t *testing.T) {
	addr, _ := startH2(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("partial"))
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}))
	resp, err := h2cClient().Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Fatal("an aborted handler's response read to a clean end")
	}
}

func TestH2ServerServesHTTP1(t *testing.T) {
	addr, _ := startH2(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", r.Proto, r.URL.Path)
	}))
	resp, err := http.Get("http://" + addr + "/one")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "HTTP/1.1 /one" {
		t.Fatalf("got %q", b)
	}
}

func TestH2ServerShutdownFinishesRunningStreams(t *testing.T) {
	started := make(chan struct{})
	addr, stop := startH2(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(200 * time.Millisecond)
		_, _ = w.Write([]byte("done"))
	}))
	c := h2cClient()
	type res struct {
		body string
		err  error
	}
	out := make(chan res, 1)
	go func() {
		resp, err := c.Get("http://" + addr + "/slow")
		if err != nil {
			out <- res{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		out <- res{string(b), err}
	}()
	<-started
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	r := <-out
	if r.err != nil || r.body != "done" {
		t.Fatalf("in-flight request during shutdown: %q, %v", r.body, r.err)
	}
	select {
	case err := <-stopped:
		if err != nil && !errors.Is(err, net.ErrClosed) {
			t.Fatalf("serve returned %v", err)
		}
	case <-time.After(h2ShutdownGrace + time.Second):
		t.Fatal("serve did not return after its streams ended")
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Fatal("still accepting after shutdown")
	}
}

func TestH2ServerReusesHandlerGoroutines(t *testing.T) {
	// Sequential requests run on the goroutine the first one started.
	ids := map[string]int{}
	var mu sync.Mutex
	addr, _ := startH2(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 64)
		buf = buf[:runtime.Stack(buf, false)]
		id := strings.Fields(string(buf))[1] // "goroutine N [running]:"
		mu.Lock()
		ids[id]++
		mu.Unlock()
	}))
	c := h2cClient()
	for i := 0; i < 20; i++ {
		resp, err := c.Get("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	// The handler returns before the client sees the end of the response,
	// so the next request may occasionally find the goroutine not yet idle.
	if len(ids) > 3 {
		t.Fatalf("20 sequential requests ran on %d goroutines: %v", len(ids), ids)
	}
}
