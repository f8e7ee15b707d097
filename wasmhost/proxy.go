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
)

// proxyStream drives one downstream request through the plugin to the
// upstream and back, with Envoy's filter semantics:
//
//   - request headers: PAUSE stops everything (no body callbacks) until
//     proxy_continue_stream(request); the headers are then sent upstream as
//     the plugin left them;
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
	// body carries the request body to the upstream request.
	body     *bodyPipe
	pumpDone chan struct{}

	wroteHeaders bool
	code         int // HTTP status written downstream

	// start is when the request arrived (angzarr.command.duration).
	start time.Time
	// reqSpan and upSpan are the request's server span and the upstream
	// request's client span (tracing.go); nil when tracing is off.
	reqSpan trace.Span
	upSpan  trace.Span
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
		s.cancelled = true
		s.cond.Broadcast()
		v.mu.Unlock()
	})
	defer stop()
	p.upCtx, p.upCancel = context.WithCancel(r.Context())
	defer func() { p.cleanup(abort) }()

	reqHeaders := requestHeaderMap(r)
	var traceCtx context.Context
	if t := p.h.tracing; t != nil {
		// Before the plugin sees the headers: what it forwards is the
		// request span's context.
		traceCtx, p.reqSpan = t.startRequest(reqHeaders, s.isGRPC)
	}
	v.mu.Lock()
	if !s.bypass {
		s.create()
	}
	s.traceCtx = traceCtx
	// net/http's HTTP/2 server gives a request whose HEADERS ended the
	// stream a zero ContentLength and a body that is at its end.
	eos := r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0
	hdrs, o := s.headersCallback(streamRequest, reqHeaders, eos)
	lr := s.local
	v.mu.Unlock()

	switch o {
	case gone:
		return false
	case resetIt:
		return true
	case failIt:
		return p.writeDirect(failReply())
	case sendLocal:
		return p.respondLocal(lr)
	}

	if t := p.h.tracing; t != nil {
		path, _ := hdrs.get(":path")
		method, _ := hdrs.get(":method")
		p.upSpan = t.startCall(traceCtx, hdrs, path, method, s.isGRPC)
	}
	if err := p.newUpstreamRequest(hdrs, eos); err != nil {
		p.endUpstream(result{failed: true, message: err.Error()})
		return p.respondLocal(&localReply{code: http.StatusBadRequest, body: err.Error(), grpcStatus: -1})
	}
	if !eos {
		p.pumpDone = make(chan struct{})
		p.h.workers.goWorker(p.pumpRequest, nil)
	}
	resp, err := p.h.upstream.RoundTrip(p.upReq)
	if err != nil {
		p.endUpstream(result{isGRPC: s.isGRPC, failed: true, message: err.Error()})
		v.mu.Lock()
		o := s.outcome()
		lr := s.local
		v.mu.Unlock()
		switch o {
		case gone:
			return false
		case resetIt:
			return true
		case failIt:
			return p.writeDirect(failReply())
		case sendLocal:
			return p.respondLocal(lr)
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
	src := &response{code: resp.StatusCode, header: resp.Header}
	if !endedInHeaders(resp) {
		src.body = resp.Body
		src.upstream = resp
	}
	return p.respond(src)
}

// cleanup stops the upstream exchange and the request pump, finishes the
// stream's context (proxy_on_log/done/delete), then records the command
// metrics and ends the spans with the stream's angzarr.* properties.
func (p *proxyStream) cleanup(abort bool) {
	p.upCancel()
	if p.pumpDone != nil {
		_ = p.r.Body.Close()
		p.body.Close()
		<-p.pumpDone
	}
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
// plugin left them.
func (p *proxyStream) newUpstreamRequest(hdrs *headerMap, eos bool) error {
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
		p.body = newBodyPipe()
		body = p.body
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
	if len(p.r.Trailer) > 0 {
		req.Trailer = http.Header{}
		for k := range p.r.Trailer {
			req.Trailer[k] = nil
		}
	}
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
		eof := err == io.EOF
		hasTrailers := eof && nonEmpty(p.r.Trailer)
		v.mu.Lock()
		out, o := p.requestBody(buf[:n], eof && !hasTrailers)
		var trailers *headerMap
		if o == proceed && hasTrailers {
			var more []byte
			more, trailers, o = p.requestTrailers()
			out = append(out, more...)
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
		if trailers != nil && p.upReq.Trailer != nil {
			for _, kv := range trailers.kv {
				k := http.CanonicalHeaderKey(kv[0])
				if _, declared := p.upReq.Trailer[k]; declared {
					p.upReq.Trailer[k] = append(p.upReq.Trailer[k], kv[1])
				}
			}
		}
		// The last bytes and the end together: one DATA frame upstream.
		_ = p.body.writeEnd(out)
		return
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

// requestBody runs proxy_on_request_body for a chunk (lock held) and
// returns the bytes to forward.
func (p *proxyStream) requestBody(chunk []byte, eos bool) ([]byte, outcome) {
	s := p.s
	if s.bypass {
		out := append(s.reqBody, chunk...)
		s.reqBody = nil
		return out, proceed
	}
	s.reqBody = append(s.reqBody, chunk...)
	s.reqBodyVisible = true
	s.reqContinued = false
	res := s.callback("proxy_on_request_body", uint64(len(s.reqBody)), b2u(eos))
	if o := s.outcome(); o != proceed {
		return nil, o
	}
	if s.bypass || res == actionContinue {
		out := s.reqBody
		s.reqBody, s.reqBodyVisible = nil, false
		return out, proceed
	}
	if res >= dataStopIterationNoBuffer {
		s.reqBody = s.reqBody[:len(s.reqBody)-len(chunk)]
	}
	if !eos {
		return nil, proceed
	}
	if !s.await(streamRequest) {
		if o := s.outcome(); o != proceed {
			return nil, o
		}
	}
	out := s.reqBody
	s.reqBody, s.reqBodyVisible = nil, false
	return out, proceed
}

// requestTrailers runs proxy_on_request_trailers (lock held); it returns
// any body still buffered and the trailers to send.
func (p *proxyStream) requestTrailers() ([]byte, *headerMap, outcome) {
	s := p.s
	s.reqTrailers = trailerMap(p.r.Trailer)
	if !s.bypass {
		s.reqContinued = false
		res := s.callback("proxy_on_request_trailers", uint64(len(s.reqTrailers.kv)))
		o := s.outcome()
		if o == proceed && !s.bypass && res != actionContinue {
			if !s.await(streamRequest) {
				o = s.outcome()
			}
		}
		if o != proceed {
			return nil, nil, o
		}
	}
	out := s.reqBody
	s.reqBody, s.reqBodyVisible = nil, false
	t := s.reqTrailers
	s.reqTrailers = nil
	return out, t, proceed
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
	hdrs, o := s.headersCallback(streamResponse, responseHeaderMap(src.code, src.header), eos)
	lr := s.local
	v.mu.Unlock()
	switch o {
	case gone:
		return false
	case resetIt:
		return true
	case failIt:
		return p.writeDirect(failReply())
	case sendLocal:
		return p.writeDirect(lr)
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
		eof := err == io.EOF
		var tr http.Header
		if eof && src.upstream != nil {
			tr = src.upstream.Trailer
		}
		if eof && !src.local {
			p.endUpstream(upstreamResult(s.isGRPC, src.code, src.header, tr))
		}
		hasTrailers := nonEmpty(tr)
		v.mu.Lock()
		out, trailers, o := p.responseBody(buf[:n], eof && !hasTrailers)
		if o == proceed && hasTrailers {
			var more []byte
			more, trailers, o = p.responseTrailers(tr)
			out = append(out, more...)
		}
		v.mu.Unlock()
		switch o {
		case gone:
			return false
		case resetIt, sendLocal, failIt:
			// Headers already went downstream: Envoy resets.
			return true
		}
		if len(out) > 0 {
			if _, err := p.w.Write(out); err != nil {
				return false
			}
			if !eos && !eof && flusher != nil {
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

// responseBody runs proxy_on_response_body for a chunk (lock held); it
// returns the bytes to write and trailers the plugin created at the end.
func (p *proxyStream) responseBody(chunk []byte, eos bool) ([]byte, *headerMap, outcome) {
	s := p.s
	if s.bypass {
		out := append(s.respBody, chunk...)
		s.respBody = nil
		return out, nil, proceed
	}
	s.respBody = append(s.respBody, chunk...)
	s.respBodyVisible = true
	s.addRespTrailers = eos
	s.respContinued = false
	res := s.callback("proxy_on_response_body", uint64(len(s.respBody)), b2u(eos))
	s.addRespTrailers = false
	if o := s.outcome(); o != proceed {
		return nil, nil, o
	}
	if !s.bypass && res != actionContinue {
		if res >= dataStopIterationNoBuffer {
			s.respBody = s.respBody[:len(s.respBody)-len(chunk)]
		}
		if !eos {
			return nil, nil, proceed
		}
		if !s.await(streamResponse) {
			if o := s.outcome(); o != proceed {
				return nil, nil, o
			}
		}
	}
	out := s.respBody
	s.respBody, s.respBodyVisible = nil, false
	t := s.respTrailers
	s.respTrailers = nil
	return out, t, proceed
}

// responseTrailers runs proxy_on_response_trailers (lock held); it returns
// any body still buffered and the trailers to send.
func (p *proxyStream) responseTrailers(tr http.Header) ([]byte, *headerMap, outcome) {
	s := p.s
	s.respTrailers = trailerMap(tr)
	if !s.bypass {
		s.respContinued = false
		res := s.callback("proxy_on_response_trailers", uint64(len(s.respTrailers.kv)))
		o := s.outcome()
		if o == proceed && !s.bypass && res != actionContinue {
			if !s.await(streamResponse) {
				o = s.outcome()
			}
		}
		if o != proceed {
			return nil, nil, o
		}
	}
	out := s.respBody
	s.respBody, s.respBodyVisible = nil, false
	t := s.respTrailers
	s.respTrailers = nil
	return out, t, proceed
}
