package wasmhost_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/angzarr-mesh/angzarr/wasmhost"
	"github.com/angzarr-mesh/angzarr/wasmhost/wasmhosttest"
)

// startSlowUpstream serves h2c with a handler that takes 300 ms (or
// until its stream is reset).
func startSlowUpstream(t *testing.T) string {
	t.Helper()
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: &protocols, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(300 * time.Millisecond):
		case <-r.Context().Done():
		}
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Grpc-Status", "0")
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// rawH2 is an attacker's HTTP/2 connection: frames written by hand.
type rawH2 struct {
	conn net.Conn
	fr   *http2.Framer
	enc  *hpack.Encoder
	hbuf bytes.Buffer
	// settings receives the server's first SETTINGS frame's
	// MAX_CONCURRENT_STREAMS; closed receives why the connection ended.
	settings chan uint32
	closed   chan string
}

func dialRawH2(t *testing.T, addr string) *rawH2 { return dialRawH2With(t, addr, nil) }

// dialRawH2With dials like dialRawH2; onFrame, when set, sees every frame
// the reader gets.
func dialRawH2With(t *testing.T, addr string, onFrame func(http2.Frame)) *rawH2 {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawH2{conn: conn, settings: make(chan uint32, 1), closed: make(chan string, 1)}
	c.enc = hpack.NewEncoder(&c.hbuf)
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	c.fr = http2.NewFramer(conn, conn)
	if err := c.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	rfr := http2.NewFramer(io.Discard, conn)
	rfr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	go func() {
		sentSettings := false
		for {
			f, err := rfr.ReadFrame()
			if err != nil {
				c.closed <- "read: " + err.Error()
				return
			}
			if onFrame != nil {
				onFrame(f)
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() && !sentSettings {
					sentSettings = true
					v, ok := f.Value(http2.SettingMaxConcurrentStreams)
					if !ok {
						v = 1<<32 - 1
					}
					c.settings <- v
				}
			case *http2.GoAwayFrame:
				c.closed <- "GOAWAY " + f.ErrCode.String()
				return
			}
		}
	}()
	return c
}

// headers writes a gRPC request's HEADERS (no END_STREAM) on stream id.
func (c *rawH2) headers(id uint32, authority string) error {
	c.hbuf.Reset()
	for _, kv := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":authority", authority},
		{":path", "/grpc.testing.TestService/UnaryCall"},
		{"content-type", "application/grpc"}, {"te", "trailers"},
	} {
		_ = c.enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
	}
	return c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.hbuf.Bytes(), EndHeaders: true})
}

// TestRapidReset is CVE-2023-44487 against the proxy: 5,000 pairs of
// HEADERS then RST_STREAM on one connection, against a handler that takes
// 300 ms. At most the advertised number of streams run at once (counted
// by the plugin: stream contexts alive), and the proxy closes the
// connection (Envoy's premature-reset defence; net/http alone would keep
// it, the handlers ending as soon as their stream is reset).
func TestRapidReset(t *testing.T) {
	upstream := startSlowUpstream(t)
	p := wasmhosttest.Start(t, wasmhost.Config{
		Plugin:   wasmhost.Plugin{Module: pluginWasm(t), Configuration: []byte("mode=noop;peak_streams=1")},
		Upstream: upstream,
		VMs:      1,
	})
	c := dialRawH2(t, p.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var advertised uint32
	select {
	case advertised = <-c.settings:
	case <-ctx.Done():
		t.Fatal("no SETTINGS from the proxy")
	}
	var werr error
	for i := uint32(0); i < 5000 && werr == nil; i++ {
		id := 2*i + 1
		if werr = c.headers(id, p.Addr); werr == nil {
			werr = c.fr.WriteRSTStream(id, http2.ErrCodeCancel)
		}
	}
	select {
	case why := <-c.closed:
		t.Logf("connection ended: %s (attacker's writes: %v)", why, werr)
	case <-ctx.Done():
		t.Fatalf("the proxy kept the connection open after 5,000 reset streams (attacker's writes: %v)", werr)
	}
	if werr == nil {
		// The attacker got all its frames out: the connection must be
		// closed anyway (checked above).
		t.Log("all 5,000 pairs written before the connection closed")
	} else if !errors.Is(werr, net.ErrClosed) {
		t.Logf("write error: %v", werr)
	}

	peak := waitGauge(ctx, t, p.AdminAddr, "peak_streams")
	t.Logf("advertised SETTINGS_MAX_CONCURRENT_STREAMS %d; plugin saw at most %d streams at once", advertised, peak)
	if peak == 0 {
		t.Fatal("the plugin saw no stream: the attack did not reach it")
	}
	if peak > uint64(advertised) {
		t.Fatalf("%d streams ran at once, more than the %d advertised", peak, advertised)
	}
}

// waitGauge reads a plugin gauge from /stats/prometheus once present.
func waitGauge(ctx context.Context, t *testing.T, admin, name string) uint64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + name + `(?:\{\})? (\d+)`)
	for {
		if m := re.FindStringSubmatch(scrape(t, admin)); m != nil {
			v, _ := strconv.ParseUint(m[1], 10, 64)
			return v
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no gauge %s in /stats/prometheus", name)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// A ping flood from a client that never reads the acknowledgements ends
// with the connection closed (net/http's bound on queued control frames),
// before the attacker has sent its PINGs (far more acknowledgements than
// the loopback's socket buffers hold).
func TestPingFlood(t *testing.T) {
	const pings = 5_000_000
	p := wasmhosttest.Start(t, wasmhost.Config{
		Plugin:   wasmhost.Plugin{Module: pluginWasm(t), Configuration: []byte("mode=noop")},
		Upstream: startSlowUpstream(t),
		VMs:      1,
	})
	conn, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second)) // a bound, not an assertion
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(conn, 64<<10)
	fr := http2.NewFramer(w, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var data [8]byte
	for i := 0; i < pings; i++ {
		err := fr.WritePing(false, data)
		if err == nil && i%1000 == 999 {
			err = w.Flush()
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("after %d PINGs the proxy stopped reading but kept the connection", i)
			}
			t.Logf("connection closed after %d PINGs: %v", i, err)
			return
		}
	}
	t.Fatalf("the proxy took %d unacknowledged PINGs", pings)
}

// A request whose header list exceeds the advertised
// SETTINGS_MAX_HEADER_LIST_SIZE (60 KiB, Envoy's max_request_headers_kb) is
// refused before any handler runs: 431, and the plugin never sees it.
func TestRequestHeaderListTooLarge(t *testing.T) {
	p := wasmhosttest.Start(t, wasmhost.Config{
		Plugin:   wasmhost.Plugin{Module: pluginWasm(t), Configuration: []byte("mode=noop;peak_streams=1")},
		Upstream: startSlowUpstream(t),
		VMs:      1,
	})
	status := make(chan string, 1)
	c := dialRawH2With(t, p.Addr, func(f http2.Frame) {
		if mh, ok := f.(*http2.MetaHeadersFrame); ok && mh.StreamID == 1 {
			status <- mh.PseudoValue("status")
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	select {
	case <-c.settings:
	case <-ctx.Done():
		t.Fatal("no SETTINGS from the proxy")
	}
	c.hbuf.Reset()
	for _, kv := range [][2]string{
		{":method", "GET"}, {":scheme", "http"}, {":authority", p.Addr}, {":path", "/"},
	} {
		_ = c.enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
	}
	// 70 KiB in fields of 4 KiB (one field longer than the limit is a
	// COMPRESSION_ERROR that closes the connection).
	for i := 0; i < 70/4+1; i++ {
		_ = c.enc.WriteField(hpack.HeaderField{Name: "x-big-" + strconv.Itoa(i), Value: strings.Repeat("a", 4<<10), Sensitive: true})
	}
	block := c.hbuf.Bytes()
	const frag = 16 << 10 // the default SETTINGS_MAX_FRAME_SIZE
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:frag], EndStream: true}); err != nil {
		t.Fatal(err)
	}
	for rest := block[frag:]; len(rest) > 0; {
		n := min(frag, len(rest))
		if err := c.fr.WriteContinuation(1, n == len(rest), rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	select {
	case st := <-status:
		if st != "431" {
			t.Fatalf("oversized header list: status %s, want 431", st)
		}
	case why := <-c.closed:
		t.Fatalf("connection ended before the 431: %s", why)
	case <-ctx.Done():
		t.Fatal("no answer to an oversized header list")
	}
	if m := regexp.MustCompile(`(?m)^peak_streams(?:\{\})? [1-9]`).FindString(scrape(t, p.AdminAddr)); m != "" {
		t.Fatalf("the plugin saw the oversized request (%s)", m)
	}
}
