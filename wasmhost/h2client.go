package wasmhost

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Client is a lean HTTP/2 client over cleartext TCP with prior knowledge
// (h2c), for the upstream and the callouts. net/http's HTTP/2 client costs
// a goroutine, separate HEADERS and DATA write syscalls and several channel
// handoffs per request; here the caller's goroutine encodes and writes, and
// a request whose body is already in memory goes out in one flush. One
// reader goroutine per connection demultiplexes the responses.
//
// Connections are kept per upstream address and carry many concurrent
// streams, up to the server's SETTINGS_MAX_CONCURRENT_STREAMS; past that
// another connection is opened (up to h2MaxConnsPerAddr), then requests
// wait for a stream to end. A connection that dies or receives GOAWAY takes
// no new streams; the next request dials again.
type h2Client struct {
	dialer      net.Dialer
	idleTimeout time.Duration // a connection without streams this long is closed

	mu    sync.Mutex
	pools map[string]*h2Pool
}

const (
	h2MaxConnsPerAddr = 8
	// h2DefaultMaxStreams bounds the streams of a connection whose server
	// does not announce a limit.
	h2DefaultMaxStreams = 1000
	// What the client advertises for the responses: a generous stream
	// window, so a fast upstream is rarely held back, credited back in
	// batches (a quarter of it) as the body is read. The connection's
	// window is far larger (as net/http's 1 GiB), so streams whose readers
	// stall (a slow downstream client) cannot hold back the others
	// sharing the connection: memory stays bounded by the stream windows.
	h2ConnRecvWindow   = 1 << 30
	h2StreamRecvWindow = 1 << 20
	h2ConnCreditBatch  = 4 << 20
	h2HandshakeTimeout = 5 * time.Second
	h2DefaultWindow    = 65535 // RFC 9113 initial window
	h2DefaultFrameSize = 16384
	h2MaxRetries       = 4
)

func newH2Client() *h2Client {
	return &h2Client{
		dialer:      net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second},
		idleTimeout: 90 * time.Second,
		pools:       map[string]*h2Pool{},
	}
}

// h2Pool is one address's connections. Its fields are guarded by
// h2Client.mu.
type h2Pool struct {
	addr    string
	conns   []*h2Conn
	dialing *h2Dial
	// waiters counts the requests waiting for a stream slot; slotFreed is
	// closed (and replaced) when one may have become available.
	waiters   atomic.Int32
	slotFreed chan struct{}
}

type h2Dial struct {
	done chan struct{}
	err  error
}

// errH2Retry marks a stream the server did not process (refused, or above
// a GOAWAY's last stream id): the request can be sent again.
type errH2Retry struct{ err error }

func (e errH2Retry) Error() string { return e.err.Error() }
func (e errH2Retry) Unwrap() error { return e.err }

var (
	errH2GoAway      = errors.New("h2c: the server sent GOAWAY before processing the stream")
	errH2ConnClosed  = errors.New("h2c: connection closed")
	errH2BodyClosed  = errors.New("h2c: response body closed")
	errH2ShortBody   = errors.New("h2c: request body shorter than its ContentLength")
	errH2BadResponse = errors.New("h2c: malformed response")
)

// h2StreamError is a stream reset by the server.
type h2StreamError struct {
	id   uint32
	code http2.ErrCode
}

func (e h2StreamError) Error() string {
	return fmt.Sprintf("h2c: stream %d reset by the server: %v", e.id, e.code)
}

// RoundTrip sends req on a connection to req.URL.Host and returns the
// response once its headers arrive; the body is read as DATA arrives.
func (c *h2Client) RoundTrip(req *http.Request) (*http.Response, error) {
	addr := req.URL.Host
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, "80")
	}
	ctx := req.Context()
	// A body already in memory is read here, once: it goes out with the
	// headers in one write and can be sent again on a retry.
	var (
		oneShot   []byte
		bufp      *[]byte
		streaming io.ReadCloser
	)
	switch {
	case req.Body == nil || req.Body == http.NoBody:
	case req.GetBody != nil && req.ContentLength > 0:
		bufp = getH2Buf(int(req.ContentLength))
		oneShot = (*bufp)[:req.ContentLength]
		_, err := io.ReadFull(req.Body, oneShot)
		_ = req.Body.Close()
		if err != nil {
			putH2Buf(bufp)
			return nil, errH2ShortBody
		}
	case req.GetBody != nil && req.ContentLength == 0:
		_ = req.Body.Close()
	default:
		streaming = req.Body
	}
	if bufp != nil {
		defer putH2Buf(bufp)
	}
	for attempt := 0; ; attempt++ {
		cc, err := c.conn(ctx, addr)
		if err != nil {
			if streaming != nil {
				_ = streaming.Close()
			}
			return nil, err
		}
		resp, err := cc.roundTrip(req, oneShot, streaming)
		if err == nil {
			return resp, nil
		}
		var retry errH2Retry
		if errors.As(err, &retry) && streaming == nil && attempt < h2MaxRetries && ctx.Err() == nil {
			continue
		}
		if streaming != nil {
			_ = streaming.Close()
		}
		return nil, err
	}
}

// CloseIdleConnections closes the connections that carry no stream.
func (c *h2Client) CloseIdleConnections() {
	c.mu.Lock()
	var idle []*h2Conn
	for _, p := range c.pools {
		keep := p.conns[:0]
		for _, cc := range p.conns {
			cc.mu.Lock()
			if len(cc.streams) == 0 && cc.reserved == 0 {
				cc.goAway = true // no new streams
				idle = append(idle, cc)
			} else {
				keep = append(keep, cc)
			}
			cc.mu.Unlock()
		}
		clear(p.conns[len(keep):])
		p.conns = keep
	}
	c.mu.Unlock()
	for _, cc := range idle {
		_ = cc.nc.Close()
	}
}

// conn returns a connection to addr with a stream slot reserved on it.
func (c *h2Client) conn(ctx context.Context, addr string) (*h2Conn, error) {
	for {
		c.mu.Lock()
		p := c.pools[addr]
		if p == nil {
			p = &h2Pool{addr: addr, slotFreed: make(chan struct{})}
			c.pools[addr] = p
		}
		p.waiters.Add(1)
		for _, cc := range p.conns {
			if cc.reserve() {
				p.waiters.Add(-1)
				c.mu.Unlock()
				return cc, nil
			}
		}
		d := p.dialing
		if d == nil && len(p.conns) < h2MaxConnsPerAddr {
			d = &h2Dial{done: make(chan struct{})}
			p.dialing = d
			go c.dial(p, d)
		}
		wait := p.slotFreed
		if d != nil {
			wait = d.done
		}
		c.mu.Unlock()
		select {
		case <-wait:
			p.waiters.Add(-1)
			if d != nil && d.err != nil {
				return nil, d.err
			}
		case <-ctx.Done():
			p.waiters.Add(-1)
			return nil, ctx.Err()
		}
	}
}

// dial opens a connection for p, independently of the requests waiting for
// it (each waits on its own context).
func (c *h2Client) dial(p *h2Pool, d *h2Dial) {
	cc, err := c.newConn(p)
	c.mu.Lock()
	p.dialing = nil
	d.err = err
	if err == nil {
		p.conns = append(p.conns, cc)
	}
	c.mu.Unlock()
	close(d.done)
	if err == nil {
		go cc.readLoop()
	}
}

// notify wakes the requests waiting for a stream slot at p.
func (c *h2Client) notify(p *h2Pool) {
	if p.waiters.Load() == 0 {
		return
	}
	c.mu.Lock()
	close(p.slotFreed)
	p.slotFreed = make(chan struct{})
	c.mu.Unlock()
}

// forget removes cc from its pool: it takes no new streams.
func (c *h2Client) forget(cc *h2Conn) {
	c.mu.Lock()
	p := cc.pool
	for i, x := range p.conns {
		if x == cc {
			p.conns = append(p.conns[:i], p.conns[i+1:]...)
			break
		}
	}
	c.mu.Unlock()
	c.notify(p)
}

// h2Conn is one HTTP/2 connection.
type h2Conn struct {
	client *h2Client
	pool   *h2Pool
	nc     net.Conn

	// wmu serializes writing: the framer's writer, the header encoder,
	// and the order of new stream ids on the wire. Never taken with mu
	// held.
	wmu    sync.Mutex
	queued atomic.Int32 // writers waiting for wmu
	bw     *bufio.Writer
	fr     *http2.Framer // writes to bw; reads are the read loop's
	hbuf   []byte
	henc   *hpack.Encoder
	hw     *sliceWriter

	mu             sync.Mutex
	streams        map[uint32]*h2Stream
	nextID         uint32
	reserved       int // slots reserved by requests about to open a stream
	maxStreams     int
	goAway         bool // no new streams (GOAWAY received, or closing)
	goAwayID       uint32
	err            error // the connection is dead
	peerInitWindow int32
	peerFrameSize  int
	sendWindow     int64 // connection-level send window
	recvWindow     int64 // connection-level window granted to the server
	unackedConn    int64 // bytes consumed, not yet credited back
	slotFreed      bool  // a stream ended: wake the pool's waiters
	idleSince      time.Time
	idleTimer      *time.Timer
	ncClosed       bool
}

// sliceWriter lets the hpack encoder append to a reused slice.
type sliceWriter struct{ b *[]byte }

func (w *sliceWriter) Write(p []byte) (int, error) {
	*w.b = append(*w.b, p...)
	return len(p), nil
}

func (c *h2Client) newConn(p *h2Pool) (*h2Conn, error) {
	nc, err := c.dialer.DialContext(context.Background(), "tcp", p.addr)
	if err != nil {
		return nil, err // a *net.OpError with Op "dial"
	}
	cc := &h2Conn{
		client:         c,
		pool:           p,
		nc:             nc,
		bw:             bufio.NewWriterSize(nc, 32<<10),
		streams:        map[uint32]*h2Stream{},
		nextID:         1,
		maxStreams:     h2DefaultMaxStreams,
		peerInitWindow: h2DefaultWindow,
		peerFrameSize:  h2DefaultFrameSize,
		sendWindow:     h2DefaultWindow,
		recvWindow:     h2ConnRecvWindow,
	}
	cc.fr = http2.NewFramer(cc.bw, bufio.NewReaderSize(nc, 32<<10))
	cc.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	cc.fr.MaxHeaderListSize = 16 << 20
	cc.hw = &sliceWriter{b: &cc.hbuf}
	cc.henc = hpack.NewEncoder(cc.hw)
	// No HPACK dynamic table for what is sent: values that differ on
	// every request (traceparent, grpc-timeout) would each be inserted
	// and evict an older entry. The table size update to 0 goes out with
	// the first header block; everything is then a literal.
	cc.henc.SetMaxDynamicTableSize(0)

	fail := func(err error) (*h2Conn, error) {
		_ = nc.Close()
		return nil, fmt.Errorf("h2c handshake with %s: %w", p.addr, err)
	}
	_ = nc.SetDeadline(time.Now().Add(h2HandshakeTimeout))
	if _, err := cc.bw.WriteString(http2.ClientPreface); err != nil {
		return fail(err)
	}
	if err := cc.fr.WriteSettings(
		http2.Setting{ID: http2.SettingEnablePush, Val: 0},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: h2StreamRecvWindow},
	); err != nil {
		return fail(err)
	}
	if err := cc.fr.WriteWindowUpdate(0, h2ConnRecvWindow-h2DefaultWindow); err != nil {
		return fail(err)
	}
	if err := cc.bw.Flush(); err != nil {
		return fail(err)
	}
	// The server's SETTINGS come first: apply them before the connection
	// carries any stream, so its stream limit is known.
	f, err := cc.fr.ReadFrame()
	if err != nil {
		return fail(err)
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok || sf.IsAck() {
		return fail(errors.New("the server did not start with SETTINGS"))
	}
	if err := cc.applySettings(sf); err != nil {
		return fail(err)
	}
	if err := cc.fr.WriteSettingsAck(); err != nil {
		return fail(err)
	}
	if err := cc.bw.Flush(); err != nil {
		return fail(err)
	}
	_ = nc.SetDeadline(time.Time{})
	return cc, nil
}

// reserve takes a stream slot if the connection accepts new streams.
// Called with the client's mu held.
func (cc *h2Conn) reserve() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.err != nil || cc.goAway || len(cc.streams)+cc.reserved >= cc.maxStreams || cc.nextID > 1<<31-1-2*uint32(cc.reserved+1) {
		return false
	}
	cc.reserved++
	return true
}

// unlock releases mu and then does what must not run under it: waking the
// pool's waiters, closing a drained connection.
func (cc *h2Conn) unlock() {
	notify := cc.slotFreed
	cc.slotFreed = false
	idle := len(cc.streams) == 0 && cc.reserved == 0
	closeNow := cc.goAway && idle && !cc.ncClosed
	if closeNow {
		cc.ncClosed = true
	}
	if notify && idle && !cc.goAway {
		// The last stream ended: close the connection if it stays idle
		// (as net/http's IdleConnTimeout did).
		cc.idleSince = time.Now()
		if cc.idleTimer == nil {
			cc.idleTimer = time.AfterFunc(cc.client.idleTimeout, cc.closeIfIdle)
		} else {
			cc.idleTimer.Reset(cc.client.idleTimeout)
		}
	}
	cc.mu.Unlock()
	if notify {
		cc.client.notify(cc.pool)
	}
	if closeNow {
		_ = cc.nc.Close()
	}
}

// closeIfIdle closes the connection if no stream used it for the idle
// timeout (its timer's function).
func (cc *h2Conn) closeIfIdle() {
	c := cc.client
	c.mu.Lock()
	cc.mu.Lock()
	idle := len(cc.streams) == 0 && cc.reserved == 0 && !cc.ncClosed &&
		time.Since(cc.idleSince) >= c.idleTimeout
	if idle {
		cc.goAway = true
		cc.ncClosed = true
		p := cc.pool
		for i, x := range p.conns {
			if x == cc {
				p.conns = append(p.conns[:i], p.conns[i+1:]...)
				break
			}
		}
	}
	cc.mu.Unlock()
	c.mu.Unlock()
	if idle {
		_ = cc.nc.Close()
	}
}

// h2Stream is one request/response exchange. Its fields are guarded by
// its connection's mu.
type h2Stream struct {
	cc  *h2Conn
	id  uint32
	req *http.Request
	// hasTrailers: req.Trailer declares keys (their values come at the
	// body's end, when they are read).
	hasTrailers bool
	cond        sync.Cond // L is &cc.mu: headers, data, end, errors, send window

	resp        *http.Response
	body        *h2Body
	buf         []byte // received, unread
	off         int
	trailer     http.Header
	remoteEnded bool  // END_STREAM received
	localEnded  bool  // END_STREAM (or RST_STREAM) sent
	err         error // the stream failed: reads return it after the buffered data
	done        bool  // removed from the connection
	sendWindow  int64
	recvWindow  int64
	unacked     int64 // consumed, not yet credited back to the stream
	reqBody     io.Closer
	closeBody   sync.Once
	stop        func() bool // stops the context's AfterFunc
}

// roundTrip opens a stream (a slot is reserved) and writes the request:
// HEADERS, the in-memory body and trailers in one flush, or HEADERS and a
// goroutine copying a streaming body.
func (cc *h2Conn) roundTrip(req *http.Request, oneShot []byte, streaming io.ReadCloser) (*http.Response, error) {
	s := &h2Stream{cc: cc, req: req, recvWindow: h2StreamRecvWindow}
	s.cond.L = &cc.mu
	if streaming != nil {
		s.reqBody = streaming
	}
	hasTrailers := len(req.Trailer) > 0
	s.hasTrailers = hasTrailers
	endInHeaders := oneShot == nil && streaming == nil && !hasTrailers

	cc.lockWrite()
	cc.mu.Lock()
	cc.reserved--
	if cc.err != nil || cc.goAway {
		err := cc.err
		if err == nil {
			err = errH2GoAway
		}
		cc.unlock()
		_ = cc.unlockWrite()
		return nil, errH2Retry{err}
	}
	s.id = cc.nextID
	cc.nextID += 2
	s.sendWindow = int64(cc.peerInitWindow)
	cc.streams[s.id] = s
	frameSize := cc.peerFrameSize
	cc.mu.Unlock()

	if ctx := req.Context(); ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { s.abort(ctx.Err(), true) })
		// The callback may already run (a context done before the call):
		// remove reads s.stop under mu.
		cc.mu.Lock()
		s.stop = stop
		cc.mu.Unlock()
	}

	block, err := cc.encodeHeaders(req, oneShot, streaming)
	if err != nil {
		_ = cc.unlockWrite()
		s.abort(err, false) // never opened: its id is simply skipped
		return nil, err
	}
	if err := writeHeaderBlock(cc.fr, s.id, block, endInHeaders, frameSize); err != nil {
		cc.wmu.Unlock()
		cc.fail(err)
		return nil, err
	}
	rest := oneShot
	if oneShot != nil {
		// As much of the body as the windows allow goes with the headers.
		cc.mu.Lock()
		n := min(int64(len(rest)), cc.sendWindow, s.sendWindow)
		n = max(n, 0)
		cc.sendWindow -= n
		s.sendWindow -= n
		cc.mu.Unlock()
		last := int(n) == len(rest)
		if err := cc.writeData(s.id, rest[:n], last && !hasTrailers, frameSize); err != nil {
			cc.wmu.Unlock()
			cc.fail(err)
			return nil, err
		}
		if last && hasTrailers {
			if err := cc.writeTrailers(s.id, req.Trailer, frameSize); err != nil {
				cc.wmu.Unlock()
				cc.fail(err)
				return nil, err
			}
		}
		rest = rest[n:]
		if last {
			rest = nil
		}
	}
	if streaming != nil {
		// The HEADERS wait for the body's first DATA, to go out in the
		// same write: the copying goroutine usually finds data ready (the
		// proxy's pump is blocked writing it) and flushes both. Should
		// it block on the body instead, the flush below sends the
		// HEADERS alone.
		cc.wmu.Unlock()
		go s.copyBody(streaming)
		runtime.Gosched()
		cc.lockWrite()
		err = cc.unlockWrite()
	} else {
		err = cc.unlockWrite()
	}
	if err != nil {
		cc.fail(err)
		return nil, err
	}
	if endInHeaders || (oneShot != nil && rest == nil) {
		cc.mu.Lock()
		s.endLocal()
		cc.unlock()
	} else if streaming == nil {
		// The rest of an in-memory body waits for window.
		if err := s.writeBody(rest, true); err != nil {
			s.abort(err, true)
		}
	}

	cc.mu.Lock()
	for s.resp == nil && s.err == nil {
		s.cond.Wait()
	}
	resp, err := s.resp, s.err
	cc.mu.Unlock()
	if resp != nil {
		return resp, nil
	}
	return nil, err
}

// encodeHeaders encodes req's header block (wmu held).
func (cc *h2Conn) encodeHeaders(req *http.Request, oneShot []byte, streaming io.ReadCloser) ([]byte, error) {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if !httpguts.ValidHostHeader(host) {
		return nil, errors.New("h2c: invalid Host " + strconv.Quote(host))
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	path := req.URL.RequestURI()
	cc.hbuf = cc.hbuf[:0]
	put := func(k, v string) {
		_ = cc.henc.WriteField(hpack.HeaderField{Name: k, Value: v})
	}
	put(":authority", host)
	put(":method", method)
	put(":path", path)
	put(":scheme", "http")
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return nil, fmt.Errorf("h2c: invalid header field name %q", k)
		}
		lk := lowerKey(k)
		switch lk {
		case "host", "content-length", "connection", "proxy-connection", "transfer-encoding", "upgrade", "keep-alive":
			continue
		case "te":
			// Only "trailers" may travel in HTTP/2.
			for _, v := range vv {
				if strings.EqualFold(v, "trailers") {
					put("te", "trailers")
					break
				}
			}
			continue
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return nil, fmt.Errorf("h2c: invalid value for header %q", k)
			}
			put(lk, v)
		}
	}
	if len(req.Trailer) > 0 {
		// Declared, as net/http does: servers keep only declared trailers.
		keys := make([]string, 0, len(req.Trailer))
		for k := range req.Trailer {
			keys = append(keys, http.CanonicalHeaderKey(k))
		}
		sort.Strings(keys)
		put("trailer", strings.Join(keys, ","))
	}
	cl := int64(len(oneShot))
	if streaming != nil {
		// As in net/http, 0 with a body means unknown.
		cl = req.ContentLength
		if cl == 0 {
			cl = -1
		}
	}
	if cl > 0 || (cl == 0 && (method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch)) {
		put("content-length", strconv.FormatInt(cl, 10))
	}
	return cc.hbuf, nil
}

// writeHeaderBlock writes an encoded header block on stream id as a
// HEADERS frame and as many CONTINUATION frames as maxFrame requires (the
// caller holds the framer's write lock). The client and the server share it.
func writeHeaderBlock(fr *http2.Framer, id uint32, block []byte, end bool, maxFrame int) error {
	first := true
	for first || len(block) > 0 {
		chunk := block
		if len(chunk) > maxFrame {
			chunk = chunk[:maxFrame]
		}
		block = block[len(chunk):]
		var err error
		if first {
			err = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: chunk, EndStream: end, EndHeaders: len(block) == 0})
		} else {
			err = fr.WriteContinuation(id, len(block) == 0, chunk)
		}
		if err != nil {
			return err
		}
		first = false
	}
	return nil
}

// writeTrailers writes the request trailers with END_STREAM, or an empty
// DATA frame ending the stream when none has a value (wmu held).
func (cc *h2Conn) writeTrailers(id uint32, tr http.Header, frameSize int) error {
	cc.hbuf = cc.hbuf[:0]
	n := 0
	for k, vv := range tr {
		if !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		lk := lowerKey(k)
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				continue
			}
			_ = cc.henc.WriteField(hpack.HeaderField{Name: lk, Value: v})
			n++
		}
	}
	if n == 0 {
		return cc.fr.WriteData(id, true, nil)
	}
	return writeHeaderBlock(cc.fr, id, cc.hbuf, true, frameSize)
}

// writeData writes p as DATA frames of at most frameSize (wmu held).
func (cc *h2Conn) writeData(id uint32, p []byte, end bool, frameSize int) error {
	for {
		chunk := p
		if len(chunk) > frameSize {
			chunk = chunk[:frameSize]
		}
		p = p[len(chunk):]
		if len(chunk) > 0 || (end && len(p) == 0) {
			if err := cc.fr.WriteData(id, end && len(p) == 0, chunk); err != nil {
				return err
			}
		}
		if len(p) == 0 {
			return nil
		}
	}
}

// writeBody sends p as flow control allows, blocking for WINDOW_UPDATE;
// with end, the stream's request side then ends (trailers if declared).
func (s *h2Stream) writeBody(p []byte, end bool) error {
	cc := s.cc
	hasTrailers := s.hasTrailers
	for {
		cc.mu.Lock()
		for len(p) > 0 && s.err == nil && cc.err == nil && !s.localEnded && (cc.sendWindow <= 0 || s.sendWindow <= 0) {
			s.cond.Wait()
		}
		if err := s.sendErrLocked(); err != nil {
			cc.mu.Unlock()
			return err
		}
		n := min(int64(len(p)), cc.sendWindow, s.sendWindow)
		cc.sendWindow -= n
		s.sendWindow -= n
		frameSize := cc.peerFrameSize
		cc.mu.Unlock()
		last := end && int(n) == len(p)
		cc.lockWrite()
		err := cc.writeData(s.id, p[:n], last && !hasTrailers, frameSize)
		if err == nil && last && hasTrailers {
			err = cc.writeTrailers(s.id, s.req.Trailer, frameSize)
		}
		if ferr := cc.unlockWrite(); err == nil {
			err = ferr
		}
		if err != nil {
			cc.fail(err)
			return err
		}
		p = p[n:]
		if last {
			cc.mu.Lock()
			s.endLocal()
			cc.unlock()
			return nil
		}
		if len(p) == 0 {
			return nil
		}
	}
}

// sendErrLocked is why the stream can no longer send, if it cannot.
func (s *h2Stream) sendErrLocked() error {
	switch {
	case s.err != nil:
		return s.err
	case s.cc.err != nil:
		return s.cc.err
	case s.localEnded:
		return errH2BodyClosed
	}
	return nil
}

// copyBody streams a request body as it arrives (its own goroutine).
func (s *h2Stream) copyBody(body io.ReadCloser) {
	defer s.closeReqBody()
	bp := getH2Buf(h2DefaultFrameSize)
	defer putH2Buf(bp)
	buf := (*bp)[:h2DefaultFrameSize]
	for {
		n, err := body.Read(buf)
		eof := err == io.EOF
		if err != nil && !eof {
			s.abort(err, true)
			return
		}
		if n > 0 || eof {
			if werr := s.writeBody(buf[:n], eof); werr != nil {
				s.abort(werr, true)
				return
			}
		}
		if eof {
			return
		}
	}
}

// endLocal records that the request side ended (mu held).
func (s *h2Stream) endLocal() {
	s.localEnded = true
	if s.remoteEnded {
		s.remove()
	}
}

// remove takes the stream off its connection (mu held).
func (s *h2Stream) remove() {
	if s.done {
		return
	}
	s.done = true
	delete(s.cc.streams, s.id)
	s.cc.slotFreed = true
	if s.stop != nil {
		s.stop()
	}
}

func (s *h2Stream) closeReqBody() {
	if s.reqBody != nil {
		s.closeBody.Do(func() { _ = s.reqBody.Close() })
	}
}

// abort fails the stream with err: reads return it, writes stop, unread
// data is credited back; with rst the server is told (RST_STREAM CANCEL)
// unless the stream already ended both ways.
func (s *h2Stream) abort(err error, rst bool) {
	cc := s.cc
	cc.mu.Lock()
	if s.done {
		cc.mu.Unlock()
		return
	}
	rst = rst && cc.err == nil
	s.failLocked(err, true)
	cc.unlock()
	s.closeReqBody()
	if rst {
		werr := cc.write(func() error { return cc.fr.WriteRSTStream(s.id, http2.ErrCodeCancel) })
		if werr != nil {
			cc.fail(werr)
		}
	}
	cc.creditConn(0)
}

// failLocked records err for the stream, drops what is buffered (crediting
// it to the connection) when discard, wakes its waiters and removes it.
func (s *h2Stream) failLocked(err error, discard bool) {
	if s.err == nil {
		s.err = err
	}
	if discard {
		s.cc.unackedConn += int64(len(s.buf) - s.off)
		s.buf, s.off = nil, 0
	}
	s.remove()
	s.cond.Broadcast()
}

// fail closes the connection and fails its streams with err.
func (cc *h2Conn) fail(err error) {
	cc.mu.Lock()
	if cc.err != nil {
		cc.mu.Unlock()
		return
	}
	cc.err = fmt.Errorf("%w: %v", errH2ConnClosed, err)
	cc.goAway = true
	var bodies []*h2Stream
	for _, s := range cc.streams {
		if !s.remoteEnded || !s.localEnded {
			bodies = append(bodies, s)
		}
		if s.remoteEnded {
			// The response is complete: it stays readable.
			s.localEnded = true
			s.remove()
			s.cond.Broadcast()
			continue
		}
		s.failLocked(cc.err, false)
	}
	cc.ncClosed = true
	cc.mu.Unlock()
	_ = cc.nc.Close()
	for _, s := range bodies {
		s.closeReqBody()
	}
	cc.client.forget(cc)
}

// creditConn adds n consumed bytes to the connection's credit and sends a
// WINDOW_UPDATE when a quarter of the window is owed.
func (cc *h2Conn) creditConn(n int64) {
	cc.mu.Lock()
	cc.unackedConn += n
	var incr int64
	if cc.unackedConn >= h2ConnCreditBatch && cc.err == nil {
		incr = cc.unackedConn
		cc.unackedConn = 0
		cc.recvWindow += incr
	}
	cc.mu.Unlock()
	if incr > 0 {
		err := cc.write(func() error { return cc.fr.WriteWindowUpdate(0, uint32(incr)) })
		if err != nil {
			cc.fail(err)
		}
	}
}

// h2Body is a response body: the stream's DATA as it arrives.
type h2Body struct {
	s      *h2Stream
	closed bool
}

func (b *h2Body) Read(p []byte) (int, error) {
	s := b.s
	cc := s.cc
	cc.mu.Lock()
	if b.closed {
		cc.mu.Unlock()
		return 0, errH2BodyClosed
	}
	for s.off == len(s.buf) && !s.remoteEnded && s.err == nil {
		s.cond.Wait()
	}
	if s.off < len(s.buf) {
		n := copy(p, s.buf[s.off:])
		s.off += n
		if s.off == len(s.buf) {
			s.buf, s.off = s.buf[:0], 0
		}
		// Credit the bytes back, in batches: the stream's while the
		// server may still send on it, the connection's always.
		var sIncr, cIncr int64
		if !s.remoteEnded && s.err == nil {
			s.unacked += int64(n)
			if s.unacked >= h2StreamRecvWindow/4 {
				sIncr = s.unacked
				s.unacked = 0
				s.recvWindow += sIncr
			}
		}
		cc.unackedConn += int64(n)
		if cc.unackedConn >= h2ConnCreditBatch && cc.err == nil {
			cIncr = cc.unackedConn
			cc.unackedConn = 0
			cc.recvWindow += cIncr
		}
		cc.mu.Unlock()
		if sIncr > 0 || cIncr > 0 {
			err := cc.write(func() error {
				var err error
				if sIncr > 0 {
					err = cc.fr.WriteWindowUpdate(s.id, uint32(sIncr))
				}
				if cIncr > 0 && err == nil {
					err = cc.fr.WriteWindowUpdate(0, uint32(cIncr))
				}
				return err
			})
			if err != nil {
				cc.fail(err)
			}
		}
		return n, nil
	}
	if s.err != nil {
		err := s.err
		cc.mu.Unlock()
		return 0, err
	}
	// END_STREAM: the trailers, if any, are in place before io.EOF (the
	// caller reads resp.Trailer afterwards, as with net/http).
	if s.trailer != nil && s.resp.Trailer == nil {
		s.resp.Trailer = s.trailer
	}
	cc.mu.Unlock()
	return 0, io.EOF
}

// Close releases the body; before its end the stream is reset (CANCEL)
// and the unread data credited back.
func (b *h2Body) Close() error {
	s := b.s
	cc := s.cc
	cc.mu.Lock()
	if b.closed {
		cc.mu.Unlock()
		return nil
	}
	b.closed = true
	if s.remoteEnded || s.err != nil {
		// Whole response received (or already failed): only the unread
		// bytes are owed to the connection.
		unread := int64(len(s.buf) - s.off)
		s.buf, s.off = nil, 0
		cc.mu.Unlock()
		cc.creditConn(unread)
		return nil
	}
	cc.mu.Unlock()
	s.abort(errH2BodyClosed, true)
	return nil
}

// readLoop demultiplexes the server's frames until the connection fails.
func (cc *h2Conn) readLoop() {
	for {
		f, err := cc.fr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				cc.streamError(se.StreamID, se.Code, err)
				continue
			}
			if ce, ok := err.(http2.ConnectionError); ok {
				cc.goAwayAndFail(http2.ErrCode(ce), err)
				return
			}
			cc.fail(err)
			return
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			err = cc.onHeaders(f)
		case *http2.DataFrame:
			err = cc.onData(f)
		case *http2.RSTStreamFrame:
			cc.onReset(f)
		case *http2.SettingsFrame:
			if !f.IsAck() {
				cc.mu.Lock()
				err = cc.applySettings(f)
				cc.unlock()
				if err == nil {
					err = cc.write(func() error { return cc.fr.WriteSettingsAck() })
				}
				cc.client.notify(cc.pool)
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				data := f.Data
				err = cc.write(func() error { return cc.fr.WritePing(true, data) })
			}
		case *http2.GoAwayFrame:
			cc.onGoAway(f)
		case *http2.WindowUpdateFrame:
			err = cc.onWindowUpdate(f)
		case *http2.PushPromiseFrame:
			err = http2.ConnectionError(http2.ErrCodeProtocol)
		}
		if err != nil {
			if ce, ok := err.(http2.ConnectionError); ok {
				cc.goAwayAndFail(http2.ErrCode(ce), err)
			} else {
				cc.fail(err)
			}
			return
		}
	}
}

// write runs frame writes under wmu and flushes them (see unlockWrite).
func (cc *h2Conn) write(f func() error) error {
	cc.lockWrite()
	err := f()
	if ferr := cc.unlockWrite(); err == nil {
		err = ferr
	}
	return err
}

// lockWrite takes wmu, counting the writers queued for it.
func (cc *h2Conn) lockWrite() {
	cc.queued.Add(1)
	cc.wmu.Lock()
	cc.queued.Add(-1)
}

// unlockWrite flushes what is buffered, unless another writer is queued
// for wmu: the last writer in line flushes for those before it, so streams
// writing at the same time share write syscalls. Then it releases wmu.
func (cc *h2Conn) unlockWrite() error {
	var err error
	if cc.queued.Load() == 0 && cc.bw.Buffered() > 0 {
		err = cc.bw.Flush()
	}
	cc.wmu.Unlock()
	return err
}

// goAwayAndFail tells the server about a protocol error and closes.
func (cc *h2Conn) goAwayAndFail(code http2.ErrCode, err error) {
	_ = cc.write(func() error { return cc.fr.WriteGoAway(0, code, nil) })
	cc.fail(err)
}

// streamError resets one stream for an error in what the server sent.
func (cc *h2Conn) streamError(id uint32, code http2.ErrCode, err error) {
	cc.mu.Lock()
	s := cc.streams[id]
	if s != nil {
		s.failLocked(fmt.Errorf("%w: %v", errH2BadResponse, err), true)
	}
	cc.unlock()
	if s != nil {
		s.closeReqBody()
	}
	if werr := cc.write(func() error { return cc.fr.WriteRSTStream(id, code) }); werr != nil {
		cc.fail(werr)
	}
}

// applySettings applies the server's SETTINGS (mu held, or before the
// connection is shared).
func (cc *h2Conn) applySettings(f *http2.SettingsFrame) error {
	return f.ForeachSetting(func(st http2.Setting) error {
		switch st.ID {
		case http2.SettingMaxConcurrentStreams:
			cc.maxStreams = int(min(st.Val, h2DefaultMaxStreams))
		case http2.SettingInitialWindowSize:
			if st.Val > 1<<31-1 {
				return http2.ConnectionError(http2.ErrCodeFlowControl)
			}
			delta := int64(st.Val) - int64(cc.peerInitWindow)
			cc.peerInitWindow = int32(st.Val)
			for _, s := range cc.streams {
				s.sendWindow += delta
				s.cond.Broadcast()
			}
		case http2.SettingMaxFrameSize:
			cc.peerFrameSize = int(st.Val)
		}
		return nil
	})
}

func (cc *h2Conn) onHeaders(f *http2.MetaHeadersFrame) error {
	cc.mu.Lock()
	s := cc.streams[f.StreamID]
	if s == nil || s.remoteEnded || s.err != nil {
		cc.unlock()
		return nil // a stream already ended or reset on this side
	}
	if s.resp != nil {
		// Trailers.
		if !f.StreamEnded() {
			s.failLocked(fmt.Errorf("%w: trailers without END_STREAM", errH2BadResponse), true)
			cc.unlock()
			return cc.resetStream(s, http2.ErrCodeProtocol)
		}
		s.trailer = headerFrom(f.RegularFields())
		s.remoteEnded = true
		if s.localEnded {
			s.remove()
		}
		s.cond.Broadcast()
		cc.unlock()
		return nil
	}
	code, err := strconv.Atoi(f.PseudoValue("status"))
	if err != nil || code < 100 || code > 999 {
		s.failLocked(fmt.Errorf("%w: :status %q", errH2BadResponse, f.PseudoValue("status")), true)
		cc.unlock()
		return cc.resetStream(s, http2.ErrCodeProtocol)
	}
	if code < 200 && !f.StreamEnded() {
		cc.unlock()
		return nil // informational
	}
	resp := &http.Response{
		Status:     strconv.Itoa(code) + " " + http.StatusText(code),
		StatusCode: code,
		Proto:      "HTTP/2.0",
		ProtoMajor: 2,
		Header:     headerFrom(f.RegularFields()),
		Request:    s.req,
	}
	if f.StreamEnded() {
		// Headers alone (a gRPC trailers-only response): unambiguous.
		resp.Body = http.NoBody
		resp.ContentLength = 0
		s.remoteEnded = true
		if s.localEnded {
			s.remove()
		}
	} else {
		resp.ContentLength = -1
		if cl := resp.Header["Content-Length"]; len(cl) == 1 {
			if n, err := strconv.ParseInt(cl[0], 10, 64); err == nil && n >= 0 {
				resp.ContentLength = n
			}
		}
		s.body = &h2Body{s: s}
		resp.Body = s.body
	}
	s.resp = resp
	s.cond.Broadcast()
	cc.unlock()
	return nil
}

// resetStream tells the server a stream is reset (after failLocked).
func (cc *h2Conn) resetStream(s *h2Stream, code http2.ErrCode) error {
	s.closeReqBody()
	return cc.write(func() error { return cc.fr.WriteRSTStream(s.id, code) })
}

func (cc *h2Conn) onData(f *http2.DataFrame) error {
	n := int64(f.Length) // flow control counts the padding too
	data := f.Data()
	cc.mu.Lock()
	cc.recvWindow -= n
	if cc.recvWindow < 0 {
		cc.mu.Unlock()
		return http2.ConnectionError(http2.ErrCodeFlowControl)
	}
	s := cc.streams[f.StreamID]
	if s == nil || s.err != nil || s.remoteEnded || s.body == nil || s.body.closed {
		// Nobody reads it: credit it back at once.
		cc.mu.Unlock()
		cc.creditConn(n)
		return nil
	}
	s.recvWindow -= n
	if s.recvWindow < 0 {
		s.failLocked(fmt.Errorf("%w: flow control window exceeded", errH2BadResponse), true)
		cc.unlock()
		cc.creditConn(n)
		return cc.resetStream(s, http2.ErrCodeFlowControl)
	}
	s.buf = append(s.buf, data...)
	pad := n - int64(len(data))
	if pad > 0 {
		s.unacked += pad
	}
	if f.StreamEnded() {
		s.remoteEnded = true
		if s.localEnded {
			s.remove()
		}
	}
	s.cond.Broadcast()
	cc.unlock()
	if pad > 0 {
		cc.creditConn(pad)
	}
	return nil
}

func (cc *h2Conn) onReset(f *http2.RSTStreamFrame) {
	cc.mu.Lock()
	s := cc.streams[f.StreamID]
	if s == nil {
		cc.mu.Unlock()
		return
	}
	if s.remoteEnded {
		// The response is complete; the server only stops the request
		// side (RST_STREAM NO_ERROR after an early response).
		s.localEnded = true
		s.remove()
		s.cond.Broadcast()
		cc.unlock()
		s.closeReqBody()
		return
	}
	var err error = h2StreamError{id: s.id, code: f.ErrCode}
	if f.ErrCode == http2.ErrCodeRefusedStream && s.resp == nil {
		err = errH2Retry{err}
	}
	s.localEnded = true
	s.failLocked(err, false)
	cc.unlock()
	s.closeReqBody()
}

func (cc *h2Conn) onGoAway(f *http2.GoAwayFrame) {
	cc.mu.Lock()
	cc.goAway = true
	cc.goAwayID = f.LastStreamID
	var refused []*h2Stream
	for id, s := range cc.streams {
		if id > f.LastStreamID {
			s.localEnded = true
			s.failLocked(errH2Retry{errH2GoAway}, true)
			refused = append(refused, s)
		}
	}
	cc.unlock()
	for _, s := range refused {
		s.closeReqBody()
	}
	cc.client.forget(cc)
}

func (cc *h2Conn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	incr := int64(f.Increment)
	if f.StreamID == 0 {
		cc.sendWindow += incr
		if cc.sendWindow > 1<<31-1 {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		for _, s := range cc.streams {
			if !s.localEnded {
				s.cond.Broadcast()
			}
		}
		return nil
	}
	if s := cc.streams[f.StreamID]; s != nil {
		s.sendWindow += incr
		s.cond.Broadcast()
	}
	return nil
}

// headerFrom builds an http.Header with canonical keys; the values share
// one backing array, as net/http's client does.
func headerFrom(fields []hpack.HeaderField) http.Header {
	h := make(http.Header, len(fields))
	vals := make([]string, len(fields))
	for i, f := range fields {
		k := canonicalKey(f.Name)
		vals[i] = f.Value
		if vv, ok := h[k]; ok {
			h[k] = append(vv, f.Value)
		} else {
			h[k] = vals[i : i+1 : i+1]
		}
	}
	return h
}

// h2Bufs pools body buffers (request bodies read once, copy buffers).
var h2Bufs sync.Pool

func getH2Buf(n int) *[]byte {
	if bp, ok := h2Bufs.Get().(*[]byte); ok && cap(*bp) >= n {
		return bp
	}
	b := make([]byte, max(n, h2DefaultFrameSize))
	return &b
}

func putH2Buf(bp *[]byte) {
	if cap(*bp) <= 1<<20 {
		h2Bufs.Put(bp)
	}
}
