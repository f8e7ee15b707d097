package wasmhost

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"time"
)

// Client-side bounds, Envoy's cluster defaults where it has one.
const (
	dialTimeout  = 5 * time.Second // Envoy's connect_timeout default
	tcpKeepAlive = 30 * time.Second
	// upstreamIdleTimeout closes an upstream connection without streams
	// (Envoy's common_http_protocol_options.idle_timeout default: 1 h).
	upstreamIdleTimeout = time.Hour
	// maxResponseHeaderBytes bounds an upstream response's headers (Envoy's
	// max_response_headers_kb default: 60 KiB).
	maxResponseHeaderBytes = 60 << 10
)

// h2cTransport sends requests over HTTP/2 with prior knowledge on
// cleartext (h2c) with net/http's own HTTP/2 client: the host's upstream
// (the business logic) and its callout clusters. It opens another
// connection when a server's SETTINGS_MAX_CONCURRENT_STREAMS is reached,
// as Envoy's HTTP/2 connection pool does.
type h2cTransport struct{ t *http.Transport }

func newH2CTransport() *h2cTransport { return newClusterTransport(nil) }

// newClusterTransport is newH2CTransport, over TLS when tlsCfg is set: each
// connection is a TLS client connection (ALPN h2) on which the same
// prior-knowledge HTTP/2 client runs, so requests keep their http:// URLs.
func newClusterTransport(tlsCfg *tls.Config) *h2cTransport {
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	d := &net.Dialer{Timeout: dialTimeout, KeepAlive: tcpKeepAlive}
	dial := d.DialContext
	if tlsCfg != nil {
		cfg := tlsCfg.Clone()
		cfg.NextProtos = []string{"h2"}
		dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			tc := tls.Client(c, cfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				c.Close()
				return nil, err
			}
			return tc, nil
		}
	}
	return &h2cTransport{t: &http.Transport{
		Protocols:              &protocols,
		DialContext:            dial,
		IdleConnTimeout:        upstreamIdleTimeout,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
		// The proxy forwards bodies as they are: no Accept-Encoding added,
		// no transparent gunzip (Envoy changes neither).
		DisableCompression: true,
		HTTP2: &http.HTTP2Config{
			// A silent upstream connection is probed and, without an
			// answer, closed (its streams fail) instead of hanging.
			SendPingTimeout: time.Minute,
			PingTimeout:     15 * time.Second,
		},
	}}
}

// RoundTrip sends req. A request without a User-Agent goes without one
// (net/http would add its own; Envoy forwards what the plugin left).
func (c *h2cTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if _, ok := req.Header["User-Agent"]; !ok {
		req.Header["User-Agent"] = nil
	}
	return c.t.RoundTrip(req)
}

// CloseIdleConnections closes the connections without streams.
func (c *h2cTransport) CloseIdleConnections() { c.t.CloseIdleConnections() }

// endedInHeaders reports whether the response is its headers alone, as a
// gRPC trailers-only response is: the plugin must then see end_of_stream
// in proxy_on_response_headers, as Envoy reports it, and no body callback.
// net/http's HTTP/2 client gives a response whose HEADERS frame ended the
// stream a zero ContentLength (a gRPC response with a body has none).
func endedInHeaders(resp *http.Response) bool {
	return resp.ContentLength == 0
}
