package wasmhost

import (
	"context"
	"net/http"
	"strings"
	"sync"

	"github.com/angzarr-mesh/angzarr/internal/proxywasm"
)

// stream is the HTTP context of one proxied request on one VM: what the
// plugin can see and change, and the pause/continue state the proxy waits
// on. All fields are guarded by the VM lock (v.mu); cond uses it.
type stream struct {
	v      *vm
	id     uint32
	root   uint32    // its root context (its plugin's)
	cond   sync.Cond // L is &v.mu
	req    *http.Request
	isGRPC bool

	// Header maps visible to the plugin. As in Envoy they are nil (host
	// calls answer BAD_ARGUMENT) outside the callback that delivered them
	// and the pause that followed it.
	reqHeaders   *headerMap
	reqTrailers  *headerMap
	respHeaders  *headerMap
	respTrailers *headerMap
	// addTrailers: the last body callback (end_of_stream) may create
	// trailers by writing to the trailer map, as Envoy's addDecodedTrailers.
	addReqTrailers  bool
	addRespTrailers bool

	// Buffered bodies and whether buffer ops may touch them.
	reqBody         []byte
	respBody        []byte
	reqBodyVisible  bool
	respBodyVisible bool

	reqContinued  bool // proxy_continue_stream(request) since the last request callback
	respContinued bool
	local         *localReply // proxy_send_local_response
	reset         bool        // proxy_close_stream
	cancelled     bool        // downstream went away
	// expired is why a timeout ended the stream ("stream timeout",
	// "request timeout"); expiryHandled once the proxy acted on it.
	expired       string
	expiryHandled bool
	// reqHeld: the plugin stopped the request headers with
	// allow_on_headers_stop_iteration and has not let them go yet;
	// reqReleased holds them from their release until the proxy sends them.
	reqHeld     bool
	reqReleased *headerMap
	bypass      bool // plugin failed and FailOpen: no more callbacks
	created     bool // proxy_on_context_create done
	props       map[string][]byte
	// traceCtx carries the request span (tracing.go), the parent of the
	// callouts the stream makes; nil when tracing is off.
	traceCtx context.Context
}

func newStream(v *vm, r *http.Request) *stream {
	s := &stream{v: v, req: r, root: v.rootID}
	s.cond.L = &v.mu
	s.isGRPC = strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc")
	return s
}

// outcome is what the proxy must do after a callback or a pause.
type outcome uint8

const (
	proceed   outcome = iota // go on (possibly bypassing the failed plugin)
	sendLocal                // a local reply is pending
	resetIt                  // reset the stream
	failIt                   // plugin failed, fail closed
	gone                     // downstream cancelled
	expired                  // a stream timeout fired (timeouts.go)
)

// outcome inspects the stream with the lock held.
func (s *stream) outcome() outcome {
	switch {
	case s.cancelled:
		return gone
	case s.expired != "" && !s.expiryHandled:
		return expired
	case s.local != nil:
		return sendLocal
	case s.reset:
		return resetIt
	case s.v.failed || s.v.closed:
		if s.v.gen.policy() == FailOpen {
			s.bypass = true
			// Unfiltered from now on: held request headers go on.
			s.releaseHeaders()
			return proceed
		}
		return failIt
	}
	return proceed
}

// callback calls a stream callback with the lock held; args exclude the
// context id. It returns the callback's result, 0 when the stream bypasses
// the plugin.
func (s *stream) callback(name string, args ...uint64) uint32 {
	if s.bypass {
		return actionContinue
	}
	all := make([]uint64, 0, 1+len(args))
	all = append(all, uint64(s.id))
	all = append(all, args...)
	r, _ := s.v.callExport(name, s.id, all...)
	return uint32(r)
}

// headersCallback runs proxy_on_request_headers or
// proxy_on_response_headers (dir) on hdrs, with the VM lock held, and waits
// while the plugin pauses the headers; it returns them as the plugin left
// them, and the outcome. With hold, a pause does not wait: the headers
// stay with the stream (reqHeld), the body callbacks go on, and nil
// headers are returned (see awaitHeldHeaders).
func (s *stream) headersCallback(dir proxywasm.StreamType, hdrs *headerMap, eos, hold bool) (*headerMap, outcome) {
	slot, continued, name := &s.reqHeaders, &s.reqContinued, "proxy_on_request_headers"
	if dir == proxywasm.StreamResponse {
		slot, continued, name = &s.respHeaders, &s.respContinued, "proxy_on_response_headers"
	}
	*slot, *continued = hdrs, false
	res := s.callback(name, uint64(len(hdrs.kv)), b2u(eos))
	o := s.outcome()
	if o == proceed && !s.bypass && res != actionContinue && res != actionContinueDontEnd {
		if hold {
			s.reqHeld = true
			return nil, proceed
		}
		if !s.await(dir) {
			o = s.outcome()
		}
	}
	out := *slot
	*slot = nil
	return out, o
}

// await blocks with the lock held until dir is continued (true) or the
// stream is interrupted (false; see outcome).
func (s *stream) await(dir proxywasm.StreamType) bool {
	for {
		if s.cancelled || s.local != nil || s.reset || s.v.failed || s.v.closed || (s.expired != "" && !s.expiryHandled) {
			return false
		}
		if dir == proxywasm.StreamRequest && s.reqContinued {
			s.reqContinued = false
			return true
		}
		if dir == proxywasm.StreamResponse && s.respContinued {
			s.respContinued = false
			return true
		}
		s.cond.Wait()
	}
}

// releaseHeaders lets held request headers go (lock held): the plugin
// continued them, or let request body or trailers go on.
func (s *stream) releaseHeaders() {
	if !s.reqHeld {
		return
	}
	s.reqHeld = false
	s.reqReleased, s.reqHeaders = s.reqHeaders, nil
	s.cond.Broadcast()
}

// awaitHeldHeaders waits (lock held) until held request headers are let
// go: by proxy_continue_stream(request), which also lets go the body
// buffered so far (returned as held), or by a body or trailers callback
// that answered Continue (the request pump then sends the body).
func (s *stream) awaitHeldHeaders() (hdrs *headerMap, held []byte, o outcome) {
	for s.reqHeld {
		if o := s.outcome(); o != proceed {
			return nil, nil, o
		}
		if !s.reqHeld {
			break // released by the outcome (a failed plugin, FailOpen)
		}
		if s.reqContinued {
			s.reqContinued = false
			s.releaseHeaders()
			held = s.reqBody
			s.reqBody, s.reqBodyVisible = nil, false
			break
		}
		s.cond.Wait()
	}
	if o := s.outcome(); o != proceed {
		return nil, nil, o
	}
	hdrs, s.reqReleased = s.reqReleased, nil
	return hdrs, held, proceed
}

// half is one direction of a stream, the request or the response, as the
// plugin sees it: the fields of s the body and trailer callbacks work on.
type half struct {
	body             *[]byte
	bodyVisible      *bool
	continued        *bool
	trailers         **headerMap
	addTrailers      *bool
	bodyCallback     string
	trailersCallback string
}

func (s *stream) half(dir proxywasm.StreamType) half {
	if dir == proxywasm.StreamResponse {
		return half{&s.respBody, &s.respBodyVisible, &s.respContinued, &s.respTrailers, &s.addRespTrailers,
			"proxy_on_response_body", "proxy_on_response_trailers"}
	}
	return half{&s.reqBody, &s.reqBodyVisible, &s.reqContinued, &s.reqTrailers, &s.addReqTrailers,
		"proxy_on_request_body", "proxy_on_request_trailers"}
}

// take hands over the buffered body and the trailers, which the plugin
// can no longer see.
func (h half) take() ([]byte, *headerMap, outcome) {
	out, t := *h.body, *h.trailers
	*h.body, *h.bodyVisible, *h.trailers = nil, false, nil
	return out, t, proceed
}

// create registers the stream on its VM and calls proxy_on_context_create.
func (s *stream) create() {
	v := s.v
	s.id = v.allocID()
	v.streams[s.id] = s
	if v.failed || v.closed {
		return
	}
	s.created = true
	v.callExport("proxy_on_context_create", s.id, uint64(s.id), uint64(s.root))
}

// finish runs proxy_on_log, proxy_on_done and proxy_on_delete (Envoy's order
// for HTTP streams: access log, then filter destruction) and forgets the
// stream, after which proxy_set_effective_context on it is BAD_ARGUMENT.
func (s *stream) finish() {
	v := s.v
	if s.created && !s.bypass && !v.failed && !v.closed {
		s.reqHeaders, s.reqTrailers, s.respHeaders, s.respTrailers = nil, nil, nil, nil
		s.reqBodyVisible, s.respBodyVisible = false, false
		v.callExport("proxy_on_log", s.id, uint64(s.id))
		v.callExport("proxy_on_done", s.id, uint64(s.id))
		v.callExport("proxy_on_delete", s.id, uint64(s.id))
	}
	delete(v.streams, s.id)
}

// headerMapFor returns the map of type t as the current context sees it;
// mutable reports whether it may be changed.
func (v *vm) headerMapFor(t proxywasm.MapType, mutable bool) *headerMap {
	s := v.contextStream()
	switch t {
	case proxywasm.MapRequestHeaders:
		if s != nil {
			return s.reqHeaders
		}
	case proxywasm.MapRequestTrailers:
		if s != nil {
			if s.reqTrailers == nil && mutable && s.addReqTrailers {
				s.reqTrailers = &headerMap{}
			}
			return s.reqTrailers
		}
	case proxywasm.MapResponseHeaders:
		if s != nil {
			return s.respHeaders
		}
	case proxywasm.MapResponseTrailers:
		if s != nil {
			if s.respTrailers == nil && mutable && s.addRespTrailers {
				s.respTrailers = &headerMap{}
			}
			return s.respTrailers
		}
	case proxywasm.MapGRPCInitialMetadata:
		if !mutable {
			return v.grpcInitMeta
		}
	case proxywasm.MapGRPCTrailingMetadata:
		if !mutable {
			return v.grpcTrailMeta
		}
	case proxywasm.MapHTTPCallResponseHeaders:
		if !mutable && v.httpResp != nil {
			return v.httpResp.headers
		}
	case proxywasm.MapHTTPCallResponseTrailers:
		if !mutable && v.httpResp != nil {
			return v.httpResp.trailers
		}
	}
	return nil
}
