package wasmhost_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
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

func dialRawH2(t *testing.T, addr string) *rawH2 {
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
	go func() {
		sentSettings := false
		for {
			f, err := rfr.ReadFrame()
			if err != nil {
				c.closed <- "read: " + err.Error()
				return
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
