package wasmhost

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The proxy listener's HTTP/2 server (cleartext, prior knowledge).
//
// Go's net/http HTTP/2 server runs every frame write through its serve
// loop and flushes each one with a syscall made on a fresh goroutine: a
// gRPC response costs three write syscalls (headers, data, trailers), two
// goroutines and the channel handoffs between them. Envoy, whose place
// wasmhost takes, encodes a stream's frames into the connection's buffer
// and writes once per event-loop turn. h2Server does the same: handlers
// encode their frames into the connection's buffer under a lock and ask a
// per-connection writer goroutine to flush it, so the frames of a response,
// and of other streams that finish meanwhile, leave in one write.
//
// Connections that do not start with the HTTP/2 preface are served by
// net/http (HTTP/1.1), as before.

// h2 server settings.
const (
	h2MaxConcurrentStreams = 1000
	// h2StreamWindow and h2ConnWindow are the receive windows advertised
	// for each request body and for the connection.
	h2StreamWindow = 1 << 20
	h2ConnWindow   = 4 << 20
	// h2MaxHeaderList bounds a request's decoded header list.
	h2MaxHeaderList = 1 << 20
	// h2PrefaceTimeout bounds the wait for a new connection's first bytes
	// (net/http's ReadHeaderTimeout before).
	h2PrefaceTimeout = 30 * time.Second
	// h2ShutdownGrace is how long Serve waits for running streams after
	// its context ends.
	h2ShutdownGrace = 5 * time.Second
	// h2WriteBuffer is each connection's write buffer.
	h2WriteBuffer = 32 << 10
)

// h2Server serves handler on a listener.
type h2Server struct {
	handler     http.Handler
	log         *slog.Logger
	connContext func(context.Context, net.Conn) context.Context

	mu     sync.Mutex
	conns  map[*h2ServerConn]struct{}
	closed bool
	wg     sync.WaitGroup // connections

	// idle hands a stream to a handler goroutine waiting for work: streams
	// reuse goroutines, whose stacks have already grown to what a call
	// into the VM needs, instead of starting (and growing) one each.
	idle chan *h2ServerStream
	// done ends the idle handler goroutines.
	done chan struct{}
}

// h2HandlerIdle is how long a handler goroutine waits for another stream.
const h2HandlerIdle = 10 * time.Second

// startHandler runs st's handler on an idle handler goroutine, or a new one.
func (s *h2Server) startHandler(st *h2ServerStream) {
	select {
	case s.idle <- st:
	default:
		go s.handlerLoop(st)
	}
}

func (s *h2Server) handlerLoop(st *h2ServerStream) {
	t := time.NewTimer(h2HandlerIdle)
	defer t.Stop()
	for {
		st.c.runHandler(st)
		st = nil
		t.Reset(h2HandlerIdle)
		select {
		case st = <-s.idle:
		case <-t.C:
			return
		case <-s.done:
			return
		}
	}
}

// serveH2 serves handler on ln until ctx is done: HTTP/2 with prior
// knowledge by h2Server, anything else by net/http.
func serveH2(ctx context.Context, ln net.Listener, handler http.Handler, log *slog.Logger, connContext func(context.Context, net.Conn) context.Context) error {
	s := &h2Server{handler: handler, log: log, connContext: connContext, conns: map[*h2ServerConn]struct{}{},
		idle: make(chan *h2ServerStream), done: make(chan struct{})}
	defer close(s.done)
	h1 := newChanListener(ln.Addr())
	h1done := make(chan error, 1)
	go func() { h1done <- serveHTTP(ctx, h1, handler, log, connContext) }()

	acceptErr := make(chan error, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				acceptErr <- err
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serveConn(ctx, c, h1)
			}()
		}
	}()
	var err error
	select {
	case err = <-acceptErr:
	case <-ctx.Done():
		_ = ln.Close()
		<-acceptErr
	}
	s.shutdown()
	h1.Close()
	h1err := <-h1done
	if ctx.Err() != nil {
		return h1err
	}
	return err
}

// shutdown sends GOAWAY on every connection, waits up to h2ShutdownGrace
// for their streams, then closes them.
func (s *h2Server) shutdown() {
	s.mu.Lock()
	s.closed = true
	conns := make([]*h2ServerConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.goAway(http2.ErrCodeNo)
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(h2ShutdownGrace):
		for _, c := range conns {
			c.close(errors.New("server shut down"))
		}
		<-done
	}
}

func (s *h2Server) serveConn(ctx context.Context, nc net.Conn, h1 *chanListener) {
	br := bufio.NewReaderSize(nc, 16<<10)
	_ = nc.SetReadDeadline(time.Now().Add(h2PrefaceTimeout))
	pre, err := br.Peek(len(http2.ClientPreface))
	if err != nil || string(pre) != http2.ClientPreface {
		// Not HTTP/2 with prior knowledge: net/http serves it.
		_ = nc.SetReadDeadline(time.Time{})
		if err != nil && len(pre) == 0 {
			_ = nc.Close()
			return
		}
		if !h1.deliver(&peekedConn{Conn: nc, r: br}) {
			_ = nc.Close()
		}
		return
	}
	_, _ = br.Discard(len(pre))
	_ = nc.SetReadDeadline(time.Time{})

	cctx := context.WithValue(ctx, http.LocalAddrContextKey, nc.LocalAddr())
	if s.connContext != nil {
		cctx = s.connContext(cctx, nc)
	}
	cctx, cancel := context.WithCancel(context.WithoutCancel(cctx))
	c := &h2ServerConn{
		srv:              s,
		nc:               nc,
		ctx:              cctx,
		cancel:           cancel,
		streams:          map[uint32]*h2ServerStream{},
		peerWindow:       65535,
		peerMaxFrame:     16384,
		connSendWindow:   65535,
		flushReq:         make(chan struct{}, 1),
		writerDone:       make(chan struct{}),
		connRecvWindow:   h2ConnWindow,
		remoteAddr:       nc.RemoteAddr().String(),
		lastProcessedSID: 0,
	}
	c.cond = sync.NewCond(&c.mu)
	c.bw = bufio.NewWriterSize(nc, h2WriteBuffer)
	c.fr = http2.NewFramer(c.bw, br)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.fr.SetReuseFrames()
	c.fr.MaxHeaderListSize = h2MaxHeaderList
	c.henc = hpack.NewEncoder(&c.hbuf)
	c.henc.SetMaxDynamicTableSizeLimit(0)

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = nc.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	c.serve()
}

// h2ServerConn is one downstream HTTP/2 connection.
type h2ServerConn struct {
	srv        *h2Server
	nc         net.Conn
	ctx        context.Context
	cancel     context.CancelFunc
	remoteAddr string

	// wmu guards the framer's writes, bw, the HPACK encoder and hbuf.
	wmu  sync.Mutex
	fr   *http2.Framer
	bw   *bufio.Writer
	henc *hpack.Encoder
	hbuf bytes.Buffer
	// werr is the first write error (the connection is then dead).
	werr error
	// flushReq wakes the writer goroutine, which flushes bw.
	flushReq   chan struct{}
	writerDone chan struct{}

	// mu guards what follows; cond signals send-window changes and stream
	// ends to handlers waiting to send.
	mu               sync.Mutex
	cond             *sync.Cond
	streams          map[uint32]*h2ServerStream
	maxClientSID     uint32
	lastProcessedSID uint32
	peerWindow       int32  // the peer's SETTINGS_INITIAL_WINDOW_SIZE
	peerMaxFrame     uint32 // the peer's SETTINGS_MAX_FRAME_SIZE
	connSendWindow   int64
	connRecvWindow   int64 // bytes the peer may still send on the connection
	connRecvUnacked  int64 // bytes consumed, not yet returned by WINDOW_UPDATE
	goingAway        bool
	closedErr        error
	handlers         sync.WaitGroup
}

// h2ServerStream is one request/response exchange.
type h2ServerStream struct {
	c      *h2ServerConn
	id     uint32
	ctx    context.Context
	cancel context.CancelCauseFunc
	body   *h2RequestBody
	req    *http.Request

	// Guarded by c.mu.
	sendWindow  int64
	recvWindow  int64 // bytes the peer may still send on the stream
	recvUnacked int64
	reset       bool // RST_STREAM sent or received
	remoteDone  bool // END_STREAM received
}

func (c *h2ServerConn) serve() {
	go c.writer()
	defer func() {
		c.close(io.EOF)
		c.handlers.Wait()
		<-c.writerDone
		c.cancel()
	}()
	// Our settings, and the larger connection window.
	c.wmu.Lock()
	_ = c.fr.WriteSettings(
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: h2MaxConcurrentStreams},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: h2StreamWindow},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: h2MaxHeaderList},
		http2.Setting{ID: http2.SettingHeaderTableSize, Val: 4096},
	)
	_ = c.fr.WriteWindowUpdate(0, h2ConnWindow-65535)
	c.wmu.Unlock()
	c.flush()

	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				c.resetStream(se.StreamID, se.Code)
				continue
			}
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				c.goAwayAndClose(http2.ErrCode(ce), err)
				return
			}
			c.close(err)
			return
		}
		if err := c.processFrame(f); err != nil {
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				c.goAwayAndClose(http2.ErrCode(ce), err)
			} else {
				c.close(err)
			}
			return
		}
		if c.isDrained() {
			return
		}
	}
}

// isDrained reports a connection that sent GOAWAY and has no stream left.
func (c *h2ServerConn) isDrained() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.goingAway && len(c.streams) == 0
}

func (c *h2ServerConn) processFrame(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.MetaHeadersFrame:
		return c.processHeaders(f)
	case *http2.DataFrame:
		return c.processData(f)
	case *http2.SettingsFrame:
		return c.processSettings(f)
	case *http2.WindowUpdateFrame:
		return c.processWindowUpdate(f)
	case *http2.PingFrame:
		if f.IsAck() {
			return nil
		}
		if f.StreamID != 0 {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		c.write(func() error { return c.fr.WritePing(true, f.Data) })
		return nil
	case *http2.RSTStreamFrame:
		if f.StreamID == 0 {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		c.mu.Lock()
		st := c.streams[f.StreamID]
		if st == nil && (f.StreamID > c.maxClientSID || f.StreamID%2 == 0) {
			c.mu.Unlock()
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		if st != nil {
			st.reset = true
			c.removeLocked(st)
		}
		c.cond.Broadcast()
		c.mu.Unlock()
		if st != nil {
			err := fmt.Errorf("stream reset by the client: %v", f.ErrCode)
			st.body.fail(err)
			st.cancel(err)
		}
		return nil
	case *http2.GoAwayFrame:
		// The client opens no more streams; the running ones finish.
		return nil
	case *http2.PriorityFrame:
		return nil
	case *http2.PushPromiseFrame:
		return http2.ConnectionError(http2.ErrCodeProtocol)
	default:
		// Unknown frame types are ignored (RFC 9113 §4.1).
		return nil
	}
}

func (c *h2ServerConn) processSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			return err
		}
		switch s.ID {
		case http2.SettingInitialWindowSize:
			c.mu.Lock()
			delta := int64(s.Val) - int64(c.peerWindow)
			c.peerWindow = int32(s.Val)
			for _, st := range c.streams {
				st.sendWindow += delta
				if st.sendWindow > 1<<31-1 {
					c.mu.Unlock()
					return http2.ConnectionError(http2.ErrCodeFlowControl)
				}
			}
			c.cond.Broadcast()
			c.mu.Unlock()
		case http2.SettingMaxFrameSize:
			c.mu.Lock()
			c.peerMaxFrame = s.Val
			c.mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.write(func() error { return c.fr.WriteSettingsAck() })
	return nil
}

func (c *h2ServerConn) processWindowUpdate(f *http2.WindowUpdateFrame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.StreamID == 0 {
		c.connSendWindow += int64(f.Increment)
		if c.connSendWindow > 1<<31-1 {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
	} else if st := c.streams[f.StreamID]; st != nil {
		st.sendWindow += int64(f.Increment)
		if st.sendWindow > 1<<31-1 {
			st.reset = true
			c.removeLocked(st)
			go c.resetStream(st.id, http2.ErrCodeFlowControl)
		}
	}
	c.cond.Broadcast()
	return nil
}

func (c *h2ServerConn) processHeaders(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	if id%2 == 0 {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	c.mu.Lock()
	if st := c.streams[id]; st != nil {
		c.mu.Unlock()
		// Trailers end the request body.
		if !f.StreamEnded() {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		return c.processTrailers(st, f)
	}
	if id <= c.maxClientSID {
		c.mu.Unlock()
		// A stream already closed (answered or reset).
		c.resetStream(id, http2.ErrCodeStreamClosed)
		return nil
	}
	c.maxClientSID = id
	if c.goingAway {
		c.mu.Unlock()
		return nil // above the GOAWAY's last stream id: ignored
	}
	if len(c.streams) >= h2MaxConcurrentStreams {
		c.mu.Unlock()
		c.resetStream(id, http2.ErrCodeRefusedStream)
		return nil
	}
	c.lastProcessedSID = id
	c.mu.Unlock()

	req, body, err := c.newRequest(f)
	if err != nil {
		c.resetStream(id, http2.ErrCodeProtocol)
		return nil
	}
	sctx, cancel := context.WithCancelCause(c.ctx)
	st := &h2ServerStream{c: c, id: id, ctx: sctx, cancel: cancel, body: body, recvWindow: h2StreamWindow}
	body.st = st
	req = req.WithContext(sctx)
	st.req = req
	c.mu.Lock()
	st.sendWindow = int64(c.peerWindow)
	c.streams[id] = st
	if f.StreamEnded() {
		st.remoteDone = true
	}
	c.handlers.Add(1)
	c.mu.Unlock()
	if f.StreamEnded() {
		body.finish()
	}
	c.srv.startHandler(st)
	return nil
}

// newRequest builds the http.Request of a HEADERS frame.
func (c *h2ServerConn) newRequest(f *http2.MetaHeadersFrame) (*http.Request, *h2RequestBody, error) {
	method := f.PseudoValue("method")
	path := f.PseudoValue("path")
	authority := f.PseudoValue("authority")
	if method == "" || path == "" || method == http.MethodConnect {
		return nil, nil, errors.New("missing or unsupported pseudo-header")
	}
	header := headerFrom(f.RegularFields())
	if authority == "" {
		authority = header.Get("Host")
	}
	u, err := url.ParseRequestURI(path)
	if err != nil {
		return nil, nil, err
	}
	var trailer http.Header
	for _, v := range header["Trailer"] {
		for _, key := range strings.Split(v, ",") {
			key = http.CanonicalHeaderKey(textproto.TrimString(key))
			switch key {
			case "", "Transfer-Encoding", "Trailer", "Content-Length":
			default:
				if trailer == nil {
					trailer = http.Header{}
				}
				trailer[key] = nil
			}
		}
	}
	delete(header, "Trailer")
	cl := int64(-1)
	if f.StreamEnded() {
		cl = 0
	} else if v := header.Get("Content-Length"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			cl = n
		}
	}
	body := &h2RequestBody{}
	body.cond = sync.NewCond(&body.mu)
	req := &http.Request{
		Method:        method,
		URL:           u,
		Proto:         "HTTP/2.0",
		ProtoMajor:    2,
		Header:        header,
		Body:          body,
		ContentLength: cl,
		Host:          authority,
		RemoteAddr:    c.remoteAddr,
		RequestURI:    path,
		Trailer:       trailer,
	}
	if f.StreamEnded() {
		req.Body = http.NoBody
	}
	return req, body, nil
}

func (c *h2ServerConn) processTrailers(st *h2ServerStream, f *http2.MetaHeadersFrame) error {
	if len(f.PseudoFields()) > 0 {
		c.resetStream(st.id, http2.ErrCodeProtocol)
		return nil
	}
	c.mu.Lock()
	st.remoteDone = true
	c.mu.Unlock()
	if tr := st.req.Trailer; tr != nil {
		for _, hf := range f.RegularFields() {
			k := canonicalKey(hf.Name)
			tr[k] = append(tr[k], hf.Value)
		}
	}
	st.body.finish()
	return nil
}

func (c *h2ServerConn) processData(f *http2.DataFrame) error {
	n := int64(f.Length)
	c.mu.Lock()
	if n > c.connRecvWindow {
		c.mu.Unlock()
		return http2.ConnectionError(http2.ErrCodeFlowControl)
	}
	c.connRecvWindow -= n
	st := c.streams[f.StreamID]
	if st == nil || st.remoteDone {
		if f.StreamID > c.maxClientSID || f.StreamID == 0 {
			c.mu.Unlock()
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		c.mu.Unlock()
		// A stream already ended or reset: the bytes only return credit.
		c.returnConnCredit(n)
		if st != nil {
			// DATA after END_STREAM.
			c.resetStream(f.StreamID, http2.ErrCodeStreamClosed)
		}
		return nil
	}
	if n > st.recvWindow {
		c.mu.Unlock()
		c.returnConnCredit(n)
		c.resetStream(st.id, http2.ErrCodeFlowControl)
		return nil
	}
	st.recvWindow -= n
	if f.StreamEnded() {
		st.remoteDone = true
	}
	c.mu.Unlock()
	data := f.Data()
	// Padding is consumed at once.
	if pad := n - int64(len(data)); pad > 0 {
		c.returnCredit(st, pad)
	}
	if len(data) > 0 && !st.body.add(data) {
		// The handler closed the body: the bytes are dropped.
		c.returnConnCredit(int64(len(data)))
	}
	if f.StreamEnded() {
		st.body.finish()
	}
	return nil
}

// returnCredit returns n consumed bytes of st to the peer, in batches.
func (c *h2ServerConn) returnCredit(st *h2ServerStream, n int64) {
	c.mu.Lock()
	var streamInc int64
	if !st.remoteDone && !st.reset {
		st.recvUnacked += n
		if st.recvUnacked >= h2StreamWindow/4 {
			streamInc, st.recvUnacked = st.recvUnacked, 0
			st.recvWindow += streamInc
		}
	}
	connInc := c.connCreditLocked(n)
	c.mu.Unlock()
	c.sendWindowUpdates(st.id, streamInc, connInc)
}

func (c *h2ServerConn) returnConnCredit(n int64) {
	c.mu.Lock()
	inc := c.connCreditLocked(n)
	c.mu.Unlock()
	c.sendWindowUpdates(0, 0, inc)
}

func (c *h2ServerConn) connCreditLocked(n int64) int64 {
	c.connRecvUnacked += n
	if c.connRecvUnacked < h2ConnWindow/4 {
		return 0
	}
	inc := c.connRecvUnacked
	c.connRecvUnacked = 0
	c.connRecvWindow += inc
	return inc
}

func (c *h2ServerConn) sendWindowUpdates(id uint32, streamInc, connInc int64) {
	if streamInc == 0 && connInc == 0 {
		return
	}
	c.write(func() error {
		if connInc > 0 {
			if err := c.fr.WriteWindowUpdate(0, uint32(connInc)); err != nil {
				return err
			}
		}
		if streamInc > 0 {
			return c.fr.WriteWindowUpdate(id, uint32(streamInc))
		}
		return nil
	})
}

// write runs f (frame writes) under the write lock and asks the writer
// goroutine to flush.
func (c *h2ServerConn) write(f func() error) error {
	c.wmu.Lock()
	err := c.werr
	if err == nil {
		if err = f(); err != nil {
			c.werr = err
		}
	}
	c.wmu.Unlock()
	if err != nil {
		return err
	}
	c.flush()
	return nil
}

// flushNow writes what is buffered from the calling goroutine; an error
// closes the connection.
func (c *h2ServerConn) flushNow() error {
	c.wmu.Lock()
	if c.werr == nil && c.bw.Buffered() > 0 {
		if err := c.bw.Flush(); err != nil {
			c.werr = err
		}
	}
	err := c.werr
	c.wmu.Unlock()
	if err != nil {
		c.close(err)
	}
	return err
}

// flush wakes the writer goroutine.
func (c *h2ServerConn) flush() {
	select {
	case c.flushReq <- struct{}{}:
	default:
	}
}

// writer flushes the buffered frames whenever asked, so the frames encoded
// meanwhile by any stream leave together.
func (c *h2ServerConn) writer() {
	defer close(c.writerDone)
	for {
		select {
		case <-c.flushReq:
		case <-c.ctx.Done():
			return
		}
		if c.flushNow() != nil {
			return
		}
	}
}

// resetStream sends RST_STREAM and ends the stream.
func (c *h2ServerConn) resetStream(id uint32, code http2.ErrCode) {
	c.mu.Lock()
	st := c.streams[id]
	if st != nil {
		st.reset = true
		c.removeLocked(st)
	}
	c.cond.Broadcast()
	c.mu.Unlock()
	if st != nil {
		err := fmt.Errorf("stream reset: %v", code)
		st.body.fail(err)
		st.cancel(err)
	}
	_ = c.write(func() error { return c.fr.WriteRSTStream(id, code) })
}

// removeLocked forgets a stream (c.mu held).
func (c *h2ServerConn) removeLocked(st *h2ServerStream) {
	if c.streams[st.id] == st {
		delete(c.streams, st.id)
	}
}

// goAway announces that no new stream will be accepted.
func (c *h2ServerConn) goAway(code http2.ErrCode) {
	c.mu.Lock()
	if c.goingAway {
		c.mu.Unlock()
		return
	}
	c.goingAway = true
	last := c.lastProcessedSID
	idle := len(c.streams) == 0
	c.mu.Unlock()
	_ = c.write(func() error { return c.fr.WriteGoAway(last, code, nil) })
	if idle {
		// Nothing to finish: wake the reader by closing.
		c.closeAfterFlush(errors.New("server shut down"))
	}
}

func (c *h2ServerConn) goAwayAndClose(code http2.ErrCode, err error) {
	c.goAway(code)
	c.closeAfterFlush(err)
}

// closeAfterFlush flushes what is buffered, then closes.
func (c *h2ServerConn) closeAfterFlush(err error) {
	c.wmu.Lock()
	if c.werr == nil {
		_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
		_ = c.bw.Flush()
	}
	c.wmu.Unlock()
	c.close(err)
}

// close tears the connection down: streams fail, handlers see their
// contexts cancelled.
func (c *h2ServerConn) close(err error) {
	c.mu.Lock()
	if c.closedErr != nil {
		c.mu.Unlock()
		return
	}
	c.closedErr = err
	streams := make([]*h2ServerStream, 0, len(c.streams))
	for _, st := range c.streams {
		st.reset = true
		streams = append(streams, st)
	}
	clear(c.streams)
	c.cond.Broadcast()
	c.mu.Unlock()
	_ = c.nc.Close()
	for _, st := range streams {
		st.body.fail(errors.New("connection closed"))
		st.cancel(fmt.Errorf("connection closed: %w", err))
	}
	c.cancel()
}

func (c *h2ServerConn) runHandler(st *h2ServerStream) {
	defer c.handlers.Done()
	rw := &h2ResponseWriter{st: st, header: http.Header{}}
	aborted := false
	func() {
		defer func() {
			if r := recover(); r != nil {
				aborted = true
				if r != http.ErrAbortHandler {
					c.srv.log.Error("wasmhost: handler panic", "panic", r)
				}
			}
		}()
		c.srv.handler.ServeHTTP(rw, st.req)
	}()
	if aborted {
		c.resetStream(st.id, http2.ErrCodeInternal)
	} else {
		rw.finish()
		c.mu.Lock()
		unread := !st.remoteDone && !st.reset
		c.mu.Unlock()
		if unread {
			// Answered before the request ended: the client need not
			// send the rest.
			c.resetStream(st.id, http2.ErrCodeNo)
		}
	}
	st.body.Close()
	st.cancel(context.Canceled)
	c.mu.Lock()
	c.removeLocked(st)
	drained := c.goingAway && len(c.streams) == 0
	c.mu.Unlock()
	if drained {
		c.closeAfterFlush(errors.New("server shut down"))
	}
}

// h2RequestBody is a request body: DATA frames queued by the reader goroutine.
type h2RequestBody struct {
	st     *h2ServerStream
	mu     sync.Mutex
	cond   *sync.Cond
	chunks [][]byte
	off    int // read offset in chunks[0]
	eof    bool
	err    error
	closed bool
}

// add queues data (copied); false when the handler closed the body.
func (b *h2RequestBody) add(data []byte) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.err != nil {
		return false
	}
	b.chunks = append(b.chunks, append([]byte(nil), data...))
	b.cond.Signal()
	return true
}

func (b *h2RequestBody) finish() {
	b.mu.Lock()
	b.eof = true
	b.cond.Broadcast()
	b.mu.Unlock()
}

func (b *h2RequestBody) fail(err error) {
	b.mu.Lock()
	if !b.eof && b.err == nil {
		b.err = err
	}
	b.cond.Broadcast()
	b.mu.Unlock()
}

// Read implements io.Reader; the bytes read return flow-control credit.
func (b *h2RequestBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	for len(b.chunks) == 0 && !b.eof && b.err == nil && !b.closed {
		b.cond.Wait()
	}
	if len(b.chunks) == 0 {
		err := b.err
		if b.closed {
			err = errors.New("http2: request body closed")
		} else if err == nil {
			err = io.EOF
		}
		b.mu.Unlock()
		return 0, err
	}
	n := 0
	for n < len(p) && len(b.chunks) > 0 {
		k := copy(p[n:], b.chunks[0][b.off:])
		n += k
		b.off += k
		if b.off == len(b.chunks[0]) {
			b.chunks[0] = nil
			b.chunks = b.chunks[1:]
			b.off = 0
		}
	}
	b.mu.Unlock()
	if b.st != nil {
		b.st.c.returnCredit(b.st, int64(n))
	}
	return n, nil
}

// Close drops what is queued (returning its credit) and any later data.
func (b *h2RequestBody) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	var n int64
	for i, ch := range b.chunks {
		if i == 0 {
			n += int64(len(ch) - b.off)
		} else {
			n += int64(len(ch))
		}
	}
	b.chunks, b.off = nil, 0
	b.cond.Broadcast()
	b.mu.Unlock()
	if n > 0 && b.st != nil {
		b.st.c.returnConnCredit(n)
	}
	return nil
}

// h2ResponseWriter implements http.ResponseWriter and http.Flusher with
// net/http's trailer conventions (a "Trailer" header declared before
// WriteHeader, or http.TrailerPrefix keys set later).
type h2ResponseWriter struct {
	st          *h2ServerStream
	header      http.Header
	status      int
	wroteHeader bool // WriteHeader called
	sentHeader  bool // HEADERS frame written
	declared    []string
	buf         []byte // body bytes not yet framed
	failed      bool
}

func (w *h2ResponseWriter) Header() http.Header { return w.header }

func (w *h2ResponseWriter) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code >= 100 && code <= 199 {
		return // informational responses are not forwarded
	}
	w.wroteHeader, w.status = true, code
	for _, v := range w.header["Trailer"] {
		for _, k := range strings.Split(v, ",") {
			if k = http.CanonicalHeaderKey(textproto.TrimString(k)); k != "" {
				w.declared = append(w.declared, k)
			}
		}
	}
}

func (w *h2ResponseWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.failed {
		return 0, errors.New("http2: stream closed")
	}
	w.buf = append(w.buf, p...)
	if len(w.buf) >= h2WriteBuffer {
		if err := w.send(false); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Flush sends the headers and the body written so far.
func (w *h2ResponseWriter) Flush() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	_ = w.send(false)
}

// trailers returns the trailers set by the handler.
func (w *h2ResponseWriter) trailers() [][2]string {
	var out [][2]string
	for _, k := range w.declared {
		for _, v := range w.header[k] {
			out = append(out, [2]string{lowerKey(k), v})
		}
	}
	for k, vs := range w.header {
		if !strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		name := lowerKey(strings.TrimPrefix(k, http.TrailerPrefix))
		for _, v := range vs {
			out = append(out, [2]string{name, v})
		}
	}
	return out
}

// finish ends the response after the handler returned, and flushes: the
// response's last frames leave now rather than when the writer goroutine
// next runs (with other frames still buffered, they share the write).
func (w *h2ResponseWriter) finish() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.send(true) == nil {
		_ = w.st.c.flushNow()
	}
}

// send writes the headers (once), the buffered body and, when end is set,
// the trailers and END_STREAM; frames go into the connection buffer and the
// writer goroutine flushes them.
func (w *h2ResponseWriter) send(end bool) error {
	if w.failed {
		return errors.New("http2: stream closed")
	}
	st, c := w.st, w.st.c
	var tr [][2]string
	if end {
		tr = w.trailers()
	}
	if !w.sentHeader {
		headersEnd := end && len(w.buf) == 0 && len(tr) == 0
		if err := c.writeFields(st, w.responseFields(), headersEnd); err != nil {
			w.failed = true
			return err
		}
		w.sentHeader = true
		if headersEnd {
			return nil
		}
	}
	for len(w.buf) > 0 || (end && len(tr) == 0) {
		n, err := c.awaitSendWindow(st, len(w.buf))
		if err != nil {
			w.failed = true
			return err
		}
		last := end && len(tr) == 0 && n == len(w.buf)
		chunk := w.buf[:n]
		if err := c.write(func() error { return c.fr.WriteData(st.id, last, chunk) }); err != nil {
			w.failed = true
			return err
		}
		w.buf = w.buf[n:]
		if last {
			w.buf = nil
			return nil
		}
	}
	w.buf = w.buf[:0]
	if end {
		if err := c.writeFields(st, tr, true); err != nil {
			w.failed = true
			return err
		}
	}
	return nil
}

// responseFields are the response's HEADERS fields.
func (w *h2ResponseWriter) responseFields() [][2]string {
	fields := make([][2]string, 0, len(w.header)+1)
	fields = append(fields, [2]string{":status", strconv.Itoa(w.status)})
	for k, vs := range w.header {
		if strings.HasPrefix(k, http.TrailerPrefix) || k == "Trailer" || isConnectionHeader(k) {
			continue
		}
		lk := lowerKey(k)
		for _, v := range vs {
			fields = append(fields, [2]string{lk, v})
		}
	}
	return fields
}

// isConnectionHeader reports HTTP/1 connection-specific headers, which
// HTTP/2 forbids.
func isConnectionHeader(k string) bool {
	switch k {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// awaitSendWindow waits until up to want bytes may be sent on st and
// reserves them (at least one byte, at most a frame); want 0 returns 0.
func (c *h2ServerConn) awaitSendWindow(st *h2ServerStream, want int) (int, error) {
	if want == 0 {
		return 0, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if st.reset || c.closedErr != nil {
			return 0, errors.New("http2: stream closed")
		}
		n := int64(want)
		if m := int64(c.peerMaxFrame); n > m {
			n = m
		}
		if n > st.sendWindow {
			n = st.sendWindow
		}
		if n > c.connSendWindow {
			n = c.connSendWindow
		}
		if n > 0 {
			st.sendWindow -= n
			c.connSendWindow -= n
			return int(n), nil
		}
		c.cond.Wait()
	}
}

// writeFields encodes fields (no dynamic table: literals) into HEADERS and
// CONTINUATION frames.
func (c *h2ServerConn) writeFields(st *h2ServerStream, fields [][2]string, end bool) error {
	c.mu.Lock()
	if st.reset || c.closedErr != nil {
		c.mu.Unlock()
		return errors.New("http2: stream closed")
	}
	maxFrame := int(c.peerMaxFrame)
	c.mu.Unlock()
	return c.write(func() error {
		c.hbuf.Reset()
		for _, f := range fields {
			if err := c.henc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
				return err
			}
		}
		return writeHeaderBlock(c.fr, st.id, c.hbuf.Bytes(), end, maxFrame)
	})
}

// chanListener is a net.Listener fed with connections by serveH2 (those
// net/http serves).
type chanListener struct {
	addr   net.Addr
	ch     chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) deliver(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.closed.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// peekedConn reads first what serveH2 peeked.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
