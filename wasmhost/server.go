package wasmhost

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Downstream bounds. The HTTP/2 server is net/http's own (h2c with prior
// knowledge, and HTTP/1.1 on the same port); its protections stay on:
// handlers per connection are limited to the advertised stream limit (more
// streams wait, and a connection that queues too many is closed), ping,
// SETTINGS and RST_STREAM floods that fill the control-frame queue close the
// connection, header blocks are bounded by SETTINGS_MAX_HEADER_LIST_SIZE.
const (
	// maxConcurrentStreams is the advertised SETTINGS_MAX_CONCURRENT_STREAMS
	// and the number of handlers a connection may run at once.
	maxConcurrentStreams = 1000
	// maxRequestHeaderBytes bounds a request's header block, HTTP/1.1 and
	// HTTP/2 alike (Envoy's max_request_headers_kb default: 60 KiB).
	maxRequestHeaderBytes = 60 << 10
	// downstreamIdleTimeout closes a connection without streams (Envoy's
	// common_http_protocol_options.idle_timeout default: 1 h).
	downstreamIdleTimeout = time.Hour
	// Envoy's premature-reset defence (ConnectionManagerImpl::
	// maybeDrainDueToPrematureResets, runtime keys
	// overload.premature_reset_total_stream_count and
	// overload.premature_reset_min_stream_lifetime_seconds): a stream the
	// client resets within prematureResetLifetime is premature; once half
	// of prematureResetStreams streams of a connection, or half of all its
	// closed streams past that many, were premature, the connection is
	// closed.
	prematureResetStreams  = 500
	prematureResetLifetime = time.Second
)

// newServer returns the proxy's server for handler: h2c and HTTP/1.1,
// with the limits above and the request headers timeout of cfg.
func newServer(handler http.Handler, cfg *Config, log *slog.Logger, connContext func(context.Context, net.Conn) context.Context) *http.Server {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	return &http.Server{
		Handler:   handler,
		Protocols: &protocols,
		// HTTP/1.1 only: the time to read a request's headers.
		ReadHeaderTimeout: cfg.RequestHeadersTimeout,
		IdleTimeout:       downstreamIdleTimeout,
		MaxHeaderBytes:    maxRequestHeaderBytes,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: maxConcurrentStreams,
		},
		ErrorLog:    slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		ConnContext: connContext,
	}
}

// serve runs srv on ln until ctx is done, then shuts it down gracefully
// (5 s, then closes what is left) and returns nil.
func serve(ctx context.Context, ln net.Listener, srv *http.Server) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// downstreamConn is what the host knows of one accepted connection: its
// VM slot and its premature-reset count.
type downstreamConn struct {
	conn   net.Conn
	worker int

	mu        sync.Mutex
	closed    uint64 // streams ended
	premature uint64 // of which reset by the client early
	dropped   bool
}

type downstreamConnKey struct{}

// streamEnded counts a stream of the connection; reset says the client
// reset it (or went away) before its response was complete. It closes the
// connection when too many streams were reset early, and reports whether
// it did.
func (c *downstreamConn) streamEnded(reset bool, lifetime time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed++
	if reset && lifetime < prematureResetLifetime {
		c.premature++
	}
	if c.dropped {
		return false
	}
	if c.closed < prematureResetStreams {
		if c.premature*2 < prematureResetStreams {
			return false
		}
	} else if c.premature*2 < c.closed {
		return false
	}
	c.dropped = true
	_ = c.conn.Close()
	return true
}
