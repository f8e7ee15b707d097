package wasmhost

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// streamTimers are a stream's timeouts, Envoy's HttpConnectionManager
// stream_idle_timeout and request_timeout (Config.StreamIdleTimeout,
// Config.RequestTimeout):
//
//   - idle: nothing moved on the stream, in either direction, for the
//     timeout (Envoy's ActiveStream::onIdleTimeout, "stream timeout");
//   - request: the request did not end within the timeout of its start,
//     and no response began (ActiveStream::onRequestTimeout, "request
//     timeout").
//
// Either ends the stream with a local reply 408 if no response header went
// downstream yet, else with a reset. A body that stops arriving is thus
// reset, and its upstream stream cancelled.
type streamTimers struct {
	p    *proxyStream
	idle time.Duration
	last atomic.Int64 // UnixNano of the last activity

	mu      sync.Mutex // orders fire against stop
	stopped bool
	idleT   *time.Timer
	reqT    *time.Timer
}

// timeouts are the stream timeouts in force (0: none); SetStreamTimeouts
// replaces them for streams that start afterwards.
type timeouts struct{ idle, request time.Duration }

// SetStreamTimeouts replaces the stream idle and request timeouts
// (Config.StreamIdleTimeout, Config.RequestTimeout; 0: the default,
// negative: none) for streams that start afterwards: the xDS-fed proxy
// applies the listener's HttpConnectionManager fields with it.
func (h *Host) SetStreamTimeouts(idle, request time.Duration) {
	h.timeouts.Store(&timeouts{
		idle:    timeoutOrDefault(idle, DefaultStreamIdleTimeout),
		request: timeoutOrDefault(request, DefaultRequestTimeout),
	})
}

func (p *proxyStream) startTimers() *streamTimers {
	to := p.h.timeouts.Load()
	t := &streamTimers{p: p, idle: to.idle}
	if t.idle > 0 {
		t.last.Store(time.Now().UnixNano())
		t.idleT = time.AfterFunc(t.idle, t.idleFired)
	}
	if to.request > 0 {
		t.reqT = time.AfterFunc(to.request, func() { t.fire("request timeout") })
	}
	return t
}

// active records activity on the stream (a body chunk either way).
func (t *streamTimers) active() {
	if t.idleT != nil {
		t.last.Store(time.Now().UnixNano())
	}
}

// idleFired re-arms the idle timer for what is left when the stream was
// active since (cheaper than resetting the timer per chunk), else fires.
func (t *streamTimers) idleFired() {
	if rest := t.idle - time.Since(time.Unix(0, t.last.Load())); rest > 0 {
		t.mu.Lock()
		if !t.stopped {
			t.idleT.Reset(rest)
		}
		t.mu.Unlock()
		return
	}
	t.fire("stream timeout")
}

// requestDone disarms the request timeout: the request ended.
func (t *streamTimers) requestDone() {
	if t.reqT != nil {
		t.reqT.Stop()
	}
}

// responseStarted disarms the request timeout too, as Envoy does once the
// response begins.
func (t *streamTimers) responseStarted() { t.requestDone() }

// fire marks the stream expired, wakes whatever waits on it and cancels
// the upstream exchange. The handler then replies; a downstream body read
// that still blocks the request pump is ended by the handler's cleanup,
// before the reply (timeoutReply).
func (t *streamTimers) fire(reason string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	p := t.p
	p.v.mu.Lock()
	if p.s.expired == "" {
		p.s.expired = reason
	}
	p.s.cond.Broadcast()
	p.v.mu.Unlock()
	p.upCancel()
}

// stop disarms both timers; once it returns no timer touches the stream
// (the handler may return).
func (t *streamTimers) stop() {
	t.mu.Lock()
	t.stopped = true
	t.mu.Unlock()
	if t.idleT != nil {
		t.idleT.Stop()
	}
	t.requestDone()
}

// timeoutReply is the local reply for the timeout that fired, which the
// proxy now handles.
func (p *proxyStream) timeoutReply() *localReply {
	p.v.mu.Lock()
	reason := p.s.expired
	p.s.expiryHandled = true
	p.v.mu.Unlock()
	// The reply cannot wait for a body that stopped: end the pump first
	// (net/http's HTTP/1.1 writer takes the body's lock, which a pending
	// read holds).
	p.endPump()
	return &localReply{code: http.StatusRequestTimeout, body: reason, grpcStatus: -1}
}
