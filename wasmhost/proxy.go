package wasmhost

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/angzarr-mesh/angzarr/internal/proxywasm"
)

// proxyStream drives one downstream request through the plugin to the
// upstream and back, with Envoy's filter semantics:
//
//   - request headers: PAUSE stops everything (no body callbacks) until
//     proxy_continue_stream(request), or with allow_on_headers_stop_iteration
//     holds the headers while the body callbacks go on; the upstream stream
//     opens when the headers go on, as the plugin left them;
//   - request/response body: PAUSE buffers; body_size is the total buffered;
//     the buffer is forwarded on CONTINUE (or on continue_stream after a
//     PAUSE at end of stream);
//   - trailers: PAUSE holds the trailers and any buffered body;
//   - a local reply sent while the request is processed runs through the
//     response callbacks (Envoy encodes local replies through the filter
//     chain); one sent while the response is processed replaces the
//     response if no header went downstream yet, else resets the stream.
//
// One goroutine (a worker standing in for the HTTP handler's) runs the
// request headers and the whole response; a second pumps the request body
// (gRPC streams are full duplex).
type proxyStream struct {
	h *Host
	s *stream
	v *vm
	w http.ResponseWriter
	r *http.Request

	upCtx    context.Context
	upCancel context.CancelFunc
	upReq    *http.Request
	// body carries the request body to the upstream request; upTrailer
	// is its trailers (declared by the client, filled in at the end).
	body      *bodyPipe
	upTrailer http.Header
	pumpDone  chan struct{}
	// timers are the stream's idle and request timeouts (timeouts.go).
	timers *streamTimers

	wroteHeaders bool
	code         int // HTTP status written downstream

	// start is when the request arrived (angzarr.command.duration).
	start time.Time
	// reqSpan and upSpan are the request's server span and the upstream
	// request's client span (tracing.go); nil when tracing is off.
	reqSpan trace.Span
	upSpan  trace.Span
	// traceCtx carries the request span; nil when tracing is off.
	traceCtx context.Context
}

var errInterrupted = errors.New("wasmhost: stream interrupted by the plugin")

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// run proxies the stream; it reports whether the downstream stream must be
// reset (the caller panics with http.ErrAbortHandler after cleanup).
func (p *proxyStream) run() (abort bool) {
	s, v, r := p.s, p.v, p.r
	p.start = time.Now()
	stop := context.AfterFunc(r.Context(), func() {
		v.mu.Lock()
		// Once a timeout fired, the proxy itself ends the request's body
		// (endPump), which cancels an HTTP/1.1 request: not the client.
		s.cancelled = s.expired == ""
		s.cond.Broadcast()
		v.mu.Unlock()
	})
	defer stop()
	p.upCtx, p.upCancel = context.WithCancel(r.Context())
	p.timers = p.startTimers()
	defer func() { p.cleanup(abort) }()

	reqHeaders := requestHeaderMap(r)
	if t := p.h.tracing; t != nil {
		// Before the plugin sees the headers: what it forwards is the
		// request span's context.
		p.traceCtx, p.reqSpan = t.startRequest(reqHeaders, s.isGRPC)
	}
	// net/http's HTTP/2 server gives a request whose HEADERS ended the
	// stream a zero ContentLength and a body that is at its end.
	eos := r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0
	if eos {
		p.timers.requestDone()
	}
	// With allow_on_headers_stop_iteration a plugin that stops the request
	// headers still gets the body (Envoy's StopIteration rather than
	// StopAllIterationAndWatermark; envoy/source/extensions/common/wasm/
	// context.cc, Context::onRequestHeaders): the headers are held, and the
	// upstream stream is not opened, until the plugin continues.
	hold := !eos && v.pluginOf(s.root).AllowOnHeadersStopIteration
	v.mu.Lock()
	if !s.bypass {
		s.create()
	}
	s.traceCtx = p.traceCtx
	hdrs, o := s.headersCallback(proxywasm.StreamRequest, reqHeaders, eos, hold)
	lr := s.local
	v.mu.Unlock()
	if o != proceed {
		return p.interrupted(o, lr, true)
	}
	if !eos {
		if len(r.Trailer) > 0 {
			// Declared trailers: the pump fills them in at the end.
			p.upTrailer = http.Header{}
			for k := range r.Trailer {
				p.upTrailer[k] = nil
			}
		}
		p.body = newBodyPipe()
		p.pumpDone = make(chan struct{})
		p.h.workers.goWorker(p.pumpRequest, nil)
	}
	var held []byte
	if hdrs == nil {
		// Held: wait for the plugin to continue (proxy_continue_stream,
		// or a body or trailers callback answering Continue). As Envoy's
		// router, which only sees the headers once the filter chain
		// continues them (FilterManager::decodeHeaders stops iterating at
		// a filter that stopped), no upstream stream exists until then.
		v.mu.Lock()
		hdrs, held, o = s.awaitHeldHeaders()
		lr = s.local
		v.mu.Unlock()
		if o != proceed {
			return p.interrupted(o, lr, true)
		}
	}
	return p.forward(hdrs, eos, held)
}

// forward opens the upstream stream with the request headers as the plugin
// left them (and held, the body the plugin buffered while it held them),
// then responds with what comes back.
func (p *proxyStream) forward(hdrs *headerMap, eos bool, held []byte) bool {
	s, v, r := p.s, p.v, p.r
	if t := p.h.tracing; t != nil {
		path, _ := hdrs.get(":path")
		method, _ := hdrs.get(":method")
		p.upSpan = t.startCall(p.traceCtx, hdrs, path, method, s.isGRPC)
	}
	if err := p.newUpstreamRequest(hdrs, eos, held); err != nil {
		p.endUpstream(result{failed: true, message: err.Error()})
		return p.respondLocal(&localReply{code: http.StatusBadRequest, body: err.Error(), grpcStatus: -1})
	}
	resp, err := p.h.upstream.RoundTrip(p.upReq)
	if err != nil {
		p.endUpstream(result{isGRPC: s.isGRPC, failed: true, message: err.Error()})
		v.mu.Lock()
		o := s.outcome()
		lr := s.local
		v.mu.Unlock()
		if o != proceed {
			return p.interrupted(o, lr, true)
		}
		if r.Context().Err() != nil {
			return false
		}
		reason := "connection failure"
		if !errors.Is(err, context.Canceled) && !isDialError(err) {
			reason = "remote reset"
		}
		return p.respondLocal(upstreamFailReply(reason))
	}
	defer resp.Body.Close()
	p.timers.responseStarted()
	src := &response{code: resp.StatusCode, header: resp.Header}
	if !endedInHeaders(resp) {
		src.body = resp.Body
		src.upstream = resp
	}
	return p.respond(src)
}

// interrupted acts on an outcome other than proceed: nothing when the
// client went away, a reset, or a local reply (through the plugin's
// response callbacks when throughPlugin, as Envoy encodes a local reply
// sent while the request is processed; else straight downstream). Once
// response headers went downstream, anything but gone resets.
func (p *proxyStream) interrupted(o outcome, lr *localReply, throughPlugin bool) bool {
	switch o {
	case gone:
		return false
	case resetIt:
		return true
	case failIt:
		return p.writeDirect(failReply())
	case expired:
		lr = p.timeoutReply()
	}
	if p.wroteHeaders {
		return true
	}
	if throughPlugin {
		return p.respondLocal(lr)
	}
	return p.writeDirect(lr)
}

// cleanup stops the upstream exchange and the request pump, finishes the
// stream's context (proxy_on_log/done/delete), then records the command
// metrics and ends the spans with the stream's angzarr.* properties.
func (p *proxyStream) cleanup(abort bool) {
	p.timers.stop()
	p.upCancel()
	p.endPump()
	p.v.mu.Lock()
	p.s.finish()
	var f streamFacts
	var cmd *commandAttrs
	if props := p.s.props; props != nil {
		if p.upSpan != nil || p.reqSpan != nil {
			f = p.s.facts() // strings for the spans
		}
		if domain, ok := props[propDomain]; ok {
			outcome, ok := props[propOutcome]
			if !ok {
				outcome = []byte("error")
			}
			cmd = commandAttrsFor(&p.h.commands.attrs, domain, outcome)
		}
	}
	p.v.mu.Unlock()
	if cmd != nil {
		p.h.commands.recordWith(cmd, time.Since(p.start))
	}
	if p.upSpan != nil {
		endSpan(p.upSpan, result{isGRPC: p.s.isGRPC, failed: true, message: "stream ended before the upstream response"}, f, false)
	}
	if p.reqSpan != nil {
		endSpan(p.reqSpan, p.downstreamResult(abort), f, true)
	}
}

// endPump stops the request pump and waits for it.
func (p *proxyStream) endPump() {
	if p.pumpDone == nil {
		return
	}
	select {
	case <-p.pumpDone:
	default:
		// A read of an HTTP/1.1 body holds the body's lock: only a
		// deadline ends it (for HTTP/2, Close would do).
		_ = http.NewResponseController(p.w).SetReadDeadline(time.Now())
	}
	_ = p.r.Body.Close()
	p.body.Close()
	<-p.pumpDone
}

// downstreamResult is how the response to the client ended: the
// grpc-status written (in trailers, or in the headers of a trailers-only
// response), or the HTTP status.
func (p *proxyStream) downstreamResult(abort bool) result {
	r := result{isGRPC: p.s.isGRPC, httpCode: p.code, grpcCode: -1}
	if abort {
		r.failed, r.message = true, "stream reset"
		return r
	}
	if !p.wroteHeaders {
		r.failed, r.message = true, "no response: the client went away"
		return r
	}
	if r.isGRPC {
		h := p.w.Header()
		st, msg := h[http.TrailerPrefix+"Grpc-Status"], h[http.TrailerPrefix+"Grpc-Message"]
		if len(st) == 0 {
			st, msg = h["Grpc-Status"], h["Grpc-Message"]
		}
		if len(st) > 0 {
			r.grpcCode = grpcCodeOf(st[0])
		}
		if len(msg) > 0 {
			r.message = msg[0]
		}
		if r.grpcCode < 0 && p.r.Context().Err() != nil {
			r.failed, r.message = true, "the client went away"
		}
	}
	return r
}

// endUpstream ends the upstream request's span (no-op without one).
func (p *proxyStream) endUpstream(r result) {
	if p.upSpan == nil {
		return
	}
	var f streamFacts
	if p.upSpan.IsRecording() {
		p.v.mu.Lock()
		f = p.s.facts()
		p.v.mu.Unlock()
	}
	endSpan(p.upSpan, r, f, false)
	p.upSpan = nil
}

// upstreamResult reads the upstream's status: grpc-status from its
// trailers, or from its headers for a trailers-only response.
func upstreamResult(isGRPC bool, code int, header, trailer http.Header) result {
	r := result{isGRPC: isGRPC, httpCode: code, grpcCode: -1}
	if !isGRPC {
		return r
	}
	st, msg := grpcStatusOf(code, header, trailer)
	r.grpcCode, r.message = int(st), msg
	return r
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// newUpstreamRequest builds the upstream request from the headers as the
// plugin left them; held is body the plugin let go with them.
func (p *proxyStream) newUpstreamRequest(hdrs *headerMap, eos bool, held []byte) error {
	path, _ := hdrs.get(":path")
	method, _ := hdrs.get(":method")
	authority, _ := hdrs.get(":authority")
	if method == "" {
		method = http.MethodGet
	}
	u, err := url.ParseRequestURI(path)
	if err != nil {
		return err
	}
	u.Scheme = "http"
	u.Host = p.h.upstreamHost()
	var body io.Reader
	if !eos {
		body = p.body
		if len(held) > 0 {
			body = io.MultiReader(bytes.NewReader(held), p.body)
		}
	}
	req, err := http.NewRequestWithContext(p.upCtx, method, u.String(), body)
	if err != nil {
		return err
	}
	if eos {
		req.Body = http.NoBody
	}
	req.Host = authority
	hdrs.toHTTP(req.Header)
	if cl, ok := hdrs.get("content-length"); ok && !eos {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n >= 0 {
			req.ContentLength = n
		}
	}
	req.Trailer = p.upTrailer
	p.upReq = req
	return nil
}

// pumpRequest delivers the request body (and trailers) to the plugin and
// forwards what it lets through upstream.
func (p *proxyStream) pumpRequest() {
	defer close(p.pumpDone)
	v := p.v
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		n, err := p.r.Body.Read(buf)
		if err != nil && err != io.EOF {
			p.body.closeWithError(err)
			return
		}
		p.timers.active()
		eof := err == io.EOF
		if eof {
			p.timers.requestDone()
		}
		var tr http.Header
		if eof {
			tr = p.r.Trailer
		}
		v.mu.Lock()
		out, trailers, o := p.transfer(proxywasm.StreamRequest, buf[:n], eof, tr)
		if o == proceed && eof {
			p.addTrailers(trailers)
		}
		v.mu.Unlock()
		if o != proceed {
			// The handler goroutine sees the outcome once its upstream
			// exchange is cancelled.
			p.upCancel()
			p.body.closeWithError(errInterrupted)
			return
		}
		if !eof {
			if _, err := p.body.Write(out); err != nil {
				return
			}
			continue
		}
		// The last bytes and the end together: one DATA frame upstream.
		_ = p.body.writeEnd(out)
		return
	}
}

// addTrailers fills the upstream request's declared trailers with what the
// plugin left (lock held, before the body's end reaches the client
// transport, which then reads them).
func (p *proxyStream) addTrailers(trailers *headerMap) {
	if trailers == nil || p.upTrailer == nil {
		return
	}
	for _, kv := range trailers.kv {
		k := http.CanonicalHeaderKey(kv[0])
		if _, declared := p.upTrailer[k]; declared {
			p.upTrailer[k] = append(p.upTrailer[k], kv[1])
		}
	}
}

func nonEmpty(h http.Header) bool {
	for _, v := range h {
		if len(v) > 0 {
			return true
		}
	}
	return false
}

// transfer runs one step of either half of the stream (lock held): the
// body callback for chunk, and at the end (eof) the trailers callback if
// tr has trailers. It returns the bytes to pass on and, at the end, the
// trailers to send (the peer's as the plugin left them, or those the
// plugin created in its last body callback).
func (p *proxyStream) transfer(dir proxywasm.StreamType, chunk []byte, eof bool, tr http.Header) ([]byte, *headerMap, outcome) {
	hasTrailers := eof && nonEmpty(tr)
	out, trailers, o := p.bodyCallback(dir, chunk, eof && !hasTrailers)
	if o == proceed && hasTrailers {
		var more []byte
		more, trailers, o = p.trailersCallback(dir, tr)
		out = append(out, more...)
	}
	return out, trailers, o
}

// bodyCallback runs proxy_on_request_body or proxy_on_response_body for a
// chunk (lock held) and returns the bytes to pass on, and trailers the
// plugin created at the end of the stream.
func (p *proxyStream) bodyCallback(dir proxywasm.StreamType, chunk []byte, eos bool) ([]byte, *headerMap, outcome) {
	s := p.s
	h := s.half(dir)
	*h.body = append(*h.body, chunk...)
	if !s.bypass {
		*h.bodyVisible = true
		*h.addTrailers = eos
		*h.continued = false
		res := s.callback(h.bodyCallback, uint64(len(*h.body)), b2u(eos))
		*h.addTrailers = false
		if o := s.outcome(); o != proceed {
			return nil, nil, o
		}
		if !s.bypass && res != actionContinue {
			if res >= dataStopIterationNoBuffer {
				*h.body = (*h.body)[:len(*h.body)-len(chunk)]
			}
			if res == dataStopIterationAndBuffer {
				if limit := p.h.cfg.BufferLimitBytes; limit > 0 && len(*h.body) > limit {
					s.local = bufferOverflowReply(dir)
					return nil, nil, sendLocal
				}
			}
			if !eos {
				return nil, nil, proceed
			}
			if o := p.await(dir); o != proceed {
				return nil, nil, o
			}
		}
	}
	if dir == proxywasm.StreamRequest {
		s.releaseHeaders()
	}
	return h.take()
}

// trailersCallback runs proxy_on_request_trailers or
// proxy_on_response_trailers (lock held); it returns any body still
// buffered and the trailers to send.
func (p *proxyStream) trailersCallback(dir proxywasm.StreamType, tr http.Header) ([]byte, *headerMap, outcome) {
	s := p.s
	h := s.half(dir)
	*h.trailers = trailerMap(tr)
	if !s.bypass {
		*h.continued = false
		res := s.callback(h.trailersCallback, uint64(len((*h.trailers).kv)))
		o := s.outcome()
		if o == proceed && !s.bypass && res != actionContinue {
			o = p.await(dir)
		}
		if o != proceed {
			return nil, nil, o
		}
	}
	if dir == proxywasm.StreamRequest {
		s.releaseHeaders()
	}
	return h.take()
}

// await waits (lock held) until the plugin continues dir: with request
// headers held, until it lets them go (awaitHeldHeaders consumes the
// continue_stream), else for proxy_continue_stream.
func (p *proxyStream) await(dir proxywasm.StreamType) outcome {
	s := p.s
	if dir == proxywasm.StreamRequest && s.reqHeld {
		for s.reqHeld {
			if o := s.outcome(); o != proceed {
				return o
			}
			if !s.reqHeld {
				break // released by the outcome (a failed plugin, FailOpen)
			}
			s.cond.Wait()
		}
		return proceed
	}
	if !s.await(dir) {
		return s.outcome()
	}
	return proceed
}

// response is an upstream response or a rendered local reply.
type response struct {
	code     int
	header   http.Header
	body     io.Reader      // nil: headers end the stream
	upstream *http.Response // its trailers follow the body; nil for a local reply
	local    bool
}

// respondLocal sends a local reply through the response callbacks, as
// Envoy does for replies sent while the request is being processed.
func (p *proxyStream) respondLocal(lr *localReply) bool {
	code, h, body := lr.response(p.s.isGRPC)
	src := &response{code: code, header: h, local: true}
	if len(body) > 0 {
		src.body = bytes.NewReader(body)
	}
	return p.respond(src)
}

// writeDirect writes a local reply straight downstream, bypassing the
// plugin; after response headers went out it can only reset.
func (p *proxyStream) writeDirect(lr *localReply) bool {
	if p.wroteHeaders {
		return true
	}
	code, h, body := lr.response(p.s.isGRPC)
	dst := p.w.Header()
	for k, vs := range h {
		dst[k] = vs
	}
	setDate(dst)
	p.wroteHeaders, p.code = true, code
	p.w.WriteHeader(code)
	if len(body) > 0 {
		_, _ = p.w.Write(body)
	}
	return false
}

// respond runs the response callbacks and writes the response downstream.
func (p *proxyStream) respond(src *response) bool {
	s, v := p.s, p.v
	eos := src.body == nil
	if eos && !src.local {
		p.endUpstream(upstreamResult(s.isGRPC, src.code, src.header, nil))
	}
	v.mu.Lock()
	hdrs, o := s.headersCallback(proxywasm.StreamResponse, responseHeaderMap(src.code, src.header), eos, false)
	lr := s.local
	v.mu.Unlock()
	if o != proceed {
		// Sent while the response is processed, a local reply replaces it.
		return p.interrupted(o, lr, false)
	}
	p.writeHeaders(hdrs, eos)
	if eos {
		return false
	}

	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	flusher, _ := p.w.(http.Flusher)
	for {
		n, err := src.body.Read(buf)
		if err != nil && err != io.EOF {
			// Upstream reset (or our own cancellation) mid-response.
			p.endUpstream(result{isGRPC: s.isGRPC, failed: true, message: "upstream reset: " + err.Error()})
			return true
		}
		p.timers.active()
		eof := err == io.EOF
		var tr http.Header
		if eof && src.upstream != nil {
			tr = src.upstream.Trailer
		}
		if eof && !src.local {
			p.endUpstream(upstreamResult(s.isGRPC, src.code, src.header, tr))
		}
		v.mu.Lock()
		out, trailers, o := p.transfer(proxywasm.StreamResponse, buf[:n], eof, tr)
		v.mu.Unlock()
		if o != proceed {
			// Headers already went downstream: Envoy resets.
			return o != gone
		}
		if len(out) > 0 {
			if _, err := p.w.Write(out); err != nil {
				return false
			}
			if !eof && flusher != nil {
				flusher.Flush()
			}
		}
		if eof {
			if trailers != nil {
				dst := p.w.Header()
				for _, kv := range trailers.kv {
					if hopHeader(kv[0]) || len(kv[0]) == 0 || kv[0][0] == ':' {
						continue
					}
					k := trailerKey(kv[0])
					dst[k] = append(dst[k], kv[1])
				}
			}
			return false
		}
	}
}

// writeHeaders sends the response headers downstream.
func (p *proxyStream) writeHeaders(hdrs *headerMap, eos bool) {
	code := http.StatusOK
	if st, ok := hdrs.get(":status"); ok {
		if n, err := strconv.Atoi(st); err == nil && n >= 100 && n <= 999 {
			code = n
		}
	}
	dst := p.w.Header()
	hdrs.toHTTP(dst)
	setDate(dst)
	p.wroteHeaders, p.code = true, code
	p.w.WriteHeader(code)
	if !eos {
		if f, ok := p.w.(http.Flusher); ok {
			f.Flush()
		}
	}
}

// setDate gives a response the Date header net/http would add, formatted
// once a second rather than per response, unless it has one.
func setDate(h http.Header) {
	if _, ok := h["Date"]; ok {
		return
	}
	now := time.Now()
	d := dateCache.Load()
	if d == nil || d.sec != now.Unix() {
		d = &cachedDate{sec: now.Unix(), v: []string{now.UTC().Format(http.TimeFormat)}}
		dateCache.Store(d)
	}
	h["Date"] = d.v // shared: net/http copies header values when it sends them
}

type cachedDate struct {
	sec int64
	v   []string
}

var dateCache atomic.Pointer[cachedDate]
