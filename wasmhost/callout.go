package wasmhost

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/angzarr-mesh/angzarr/internal/proxywasm"
)

// calloutKind tells the three kinds of root-context callouts apart.
type calloutKind uint8

const (
	calloutHTTP calloutKind = iota
	calloutGRPCCall
	calloutGRPCStream
)

// callout is one outstanding http_call / grpc_call / grpc_stream. It runs
// on its own goroutine; results are posted back onto the VM (under v.mu).
type callout struct {
	token        uint32
	kind         calloutKind
	ctx          context.Context
	cancel       context.CancelFunc
	stream       *grpcStreamState
	localClosed  bool
	remoteClosed bool

	// span is the callout's client span (tracing.go), nil when tracing is
	// off; from is the stream that made the call (its properties name the
	// span), nil on the root context.
	span trace.Span
	from *stream

	// root is the root context that made the call: its results go there.
	root uint32
}

// traceCallout starts the callout's client span and writes its context
// into the callout's headers or metadata md (VM lock held).
func (v *vm) traceCallout(c *callout, md *headerMap, path, method string, isGRPC bool) {
	t := v.gen.h.tracing
	if t == nil {
		return
	}
	c.from = v.contextStream()
	c.span = t.startCallout(c.from, md, path, method, isGRPC)
}

// spanFacts reads the calling stream's properties for the span (VM lock
// held).
func (c *callout) spanFacts() streamFacts {
	if c.span == nil || !c.span.IsRecording() {
		return streamFacts{}
	}
	return c.from.facts()
}

// endSpan ends the callout's span once.
func (c *callout) endSpan(r result, f streamFacts) {
	if c.span == nil {
		return
	}
	endSpan(c.span, r, f, false)
	c.span = nil
}

// calloutReply is the response of an http_call, visible to the plugin
// during proxy_on_http_call_response (maps 6 and 7, buffer 4).
type calloutReply struct {
	headers  *headerMap
	trailers *headerMap
	body     []byte
}

// maxCalloutBody bounds a buffered callout response (Envoy buffers the
// whole response too).
const maxCalloutBody = 64 << 20

// calloutID names a callout in flight the way Envoy does: by the root
// context that made it and its token, HTTP calls apart from gRPC ones.
// proxy-wasm-cpp-host runs every callout host function on
// contextOrEffectiveContext()->root_context() (exports.cc: http_call,
// grpc_call, grpc_stream, grpc_send, grpc_close, grpc_cancel), and Envoy's
// Context keeps its own counters and maps of calls in flight
// (context.cc: nextHttpCallToken, nextGrpcCallToken, nextGrpcStreamToken;
// http_request_, grpc_call_request_, grpc_stream_). So two plugins sharing
// a VM see the same token numbers, and a token is looked up among the
// calling root's callouts only.
type calloutID struct {
	root, token uint32
	http        bool
}

func (c *callout) id() calloutID {
	return calloutID{root: c.root, token: c.token, http: c.kind == calloutHTTP}
}

// tokenCounters are one root context's next HTTP and gRPC tokens (Envoy's
// next_http_call_token_ and next_grpc_token_, both starting at 1).
type tokenCounters struct{ http, grpc uint32 }

// counters returns root's token counters (mu held).
func (v *vm) counters(root uint32) *tokenCounters {
	tc := v.tokens[root]
	if tc == nil {
		tc = &tokenCounters{http: 1, grpc: 1}
		v.tokens[root] = tc
	}
	return tc
}

// newHTTPToken returns root's next free HTTP call token (never 0), as
// Context::nextHttpCallToken does.
func (v *vm) newHTTPToken(root uint32) uint32 {
	tc := v.counters(root)
	for {
		t := tc.http
		tc.http++
		if t == 0 {
			continue
		}
		if _, used := v.callouts[calloutID{root: root, token: t, http: true}]; !used {
			return t
		}
	}
}

// newGRPCToken returns root's next free gRPC token: odd for calls, even
// (never 0) for streams, from one counter, as Context::nextGrpcCallToken /
// nextGrpcStreamToken do.
func (v *vm) newGRPCToken(root uint32, call bool) uint32 {
	tc := v.counters(root)
	for {
		t := tc.grpc
		tc.grpc++
		if t == 0 || (t%2 == 1) != call {
			continue
		}
		if _, used := v.callouts[calloutID{root: root, token: t}]; !used {
			return t
		}
	}
}

// startCallout registers a callout of root (mu held). The callout's
// context carries its timeout (0: none) from now on: its error is
// context.Canceled when the host cancelled it, DeadlineExceeded when it
// timed out.
func (v *vm) startCallout(root, token uint32, kind calloutKind, timeout time.Duration) *callout {
	var ctx context.Context
	var cancel context.CancelFunc
	if timeout > 0 {
		ctx, cancel = context.WithTimeout(context.Background(), timeout)
	} else {
		ctx, cancel = context.WithCancel(context.Background())
	}
	c := &callout{token: token, kind: kind, ctx: ctx, cancel: cancel, root: root}
	v.callouts[c.id()] = c
	return c
}

// cancelCallouts aborts every callout (mu held); no callbacks follow.
func (v *vm) cancelCallouts() {
	for k, c := range v.callouts {
		c.cancel()
		delete(v.callouts, k)
	}
}

// cancelled reports whether the host cancelled the callout (a timeout is
// not a cancellation: its result is delivered).
func (c *callout) cancelled() bool { return errors.Is(c.ctx.Err(), context.Canceled) }

// deliver runs f on the VM if the callout is still registered.
func (v *vm) deliver(c *callout, f func()) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed || v.failed {
		return
	}
	if cur, ok := v.callouts[c.id()]; !ok || cur != c {
		return
	}
	f()
}

type httpCallRequest struct {
	addr     string
	headers  *headerMap
	body     []byte
	trailers *headerMap
}

// runHTTPCall performs an http_call and posts the result. Like Envoy's
// async client, an unreachable cluster or a timeout is a successful call
// with a 503 / 504 local reply; a reset after response headers is a
// failure (status BROKEN_CONNECTION, message "reset", no headers).
func (v *vm) runHTTPCall(c *callout, r httpCallRequest) {
	defer c.cancel()
	reply, failed := v.doHTTPCall(c.ctx, r)
	if c.cancelled() {
		c.endSpan(result{failed: true, message: "cancelled"}, streamFacts{})
		return // cancelled by the host
	}
	var facts streamFacts
	defer func() { c.endSpan(httpCallResult(r.headers, reply, failed), facts) }()
	v.deliver(c, func() {
		facts = c.spanFacts()
		delete(v.callouts, c.id())
		if failed {
			v.statusCode, v.statusMsg = uint32(proxywasm.StatusBrokenConnection), "reset"
			v.callExport("proxy_on_http_call_response", c.root, uint64(c.root), uint64(c.token), 0, 0, 0)
			v.statusCode, v.statusMsg = 0, ""
			return
		}
		v.httpResp = reply
		v.callExport("proxy_on_http_call_response", c.root, uint64(c.root), uint64(c.token),
			uint64(len(reply.headers.kv)), uint64(len(reply.body)), uint64(len(reply.trailers.kv)))
		v.httpResp = nil
	})
}

// httpCallResult is an http_call's outcome for its span: a gRPC call's
// grpc-status, or the HTTP status.
func httpCallResult(req *headerMap, reply *calloutReply, failed bool) result {
	ct, _ := req.get("content-type")
	r := result{isGRPC: strings.HasPrefix(ct, "application/grpc"), grpcCode: -1}
	if failed || reply == nil {
		r.failed, r.message = true, "reset"
		return r
	}
	st, _ := reply.headers.get(":status")
	r.httpCode, _ = strconv.Atoi(st)
	if r.isGRPC {
		g, ok := reply.trailers.get("grpc-status")
		if !ok {
			g, _ = reply.headers.get("grpc-status")
		}
		r.grpcCode = grpcCodeOf(g)
		if r.httpCode != http.StatusOK {
			r.grpcCode = httpToGRPCStatus(r.httpCode)
		}
	}
	return r
}

func localCalloutReply(code int, body string) *calloutReply {
	h := &headerMap{}
	h.add(":status", strconv.Itoa(code))
	h.add("content-length", strconv.Itoa(len(body)))
	h.add("content-type", "text/plain")
	return &calloutReply{headers: h, trailers: &headerMap{}, body: []byte(body)}
}

func (v *vm) doHTTPCall(ctx context.Context, r httpCallRequest) (*calloutReply, bool) {
	if r.addr == OriginalDst {
		return localCalloutReply(http.StatusServiceUnavailable, noHealthyUpstream), false
	}
	path, _ := r.headers.get(":path")
	method, _ := r.headers.get(":method")
	authority, _ := r.headers.get(":authority")
	u, err := url.ParseRequestURI(path)
	if err != nil {
		return localCalloutReply(http.StatusBadRequest, "invalid path"), false
	}
	u.Scheme, u.Host = "http", r.addr
	var body io.Reader = http.NoBody
	if len(r.body) > 0 {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return localCalloutReply(http.StatusBadRequest, err.Error()), false
	}
	req.Host = authority
	r.headers.toHTTP(req.Header)
	if len(r.body) > 0 {
		req.ContentLength = int64(len(r.body))
	}
	if len(r.trailers.kv) > 0 {
		req.Trailer = http.Header{}
		r.trailers.toHTTP(req.Trailer)
	}
	resp, err := v.gen.h.callouts.RoundTrip(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return localCalloutReply(http.StatusGatewayTimeout, "upstream request timeout"), false
		}
		return localCalloutReply(http.StatusServiceUnavailable, "upstream connect error or disconnect/reset before headers. reset reason: connection failure"), false
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxCalloutBody))
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return localCalloutReply(http.StatusGatewayTimeout, "upstream request timeout"), false
		}
		return nil, true
	}
	return &calloutReply{
		headers:  responseHeaderMap(resp.StatusCode, resp.Header),
		trailers: trailerMap(resp.Trailer),
		body:     data,
	}, false
}

type grpcRequest struct {
	addr string
	// authority is the call's :authority (calloutAuthority).
	authority string
	path      string
	metadata  *headerMap
	// timeout of a unary call (0: none for the proxy, but still sent as
	// grpc-timeout); unary is false for a stream, which sends none.
	timeout time.Duration
	unary   bool
}

// grpc status codes used by the host. A callout's timeout is no
// DEADLINE_EXCEEDED: Envoy's router answers it with a 504 local reply
// ("upstream request timeout"), which the async gRPC client maps to
// UNAVAILABLE (Grpc::Utility::httpToGrpcStatus).
const (
	grpcOK          = 0
	grpcInternal    = 13
	grpcUnavailable = 14
)

func (r grpcRequest) httpRequest(ctx context.Context, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+r.addr+r.path, body)
	if err != nil {
		return nil, err
	}
	req.Host = r.authority
	r.metadata.toHTTP(req.Header)
	// Shared value slices: net/http only reads them.
	req.Header["Content-Type"] = grpcContentType
	req.Header["Te"] = teTrailers
	if r.unary {
		// Envoy's Context::grpcCall always passes its timeout on, and
		// Grpc::Common::prepareHeaders writes it, "0m" for none: a gRPC
		// server reads that as a deadline already passed.
		req.Header["Grpc-Timeout"] = grpcTimeoutHeader(r.timeout)
	}
	return req, nil
}

var (
	grpcContentType = []string{"application/grpc"}
	teTrailers      = []string{"trailers"}
	// lastGRPCTimeout caches the grpc-timeout value of the last timeout
	// used: plugins use one or two.
	lastGRPCTimeout atomic.Pointer[grpcTimeoutValue]
)

type grpcTimeoutValue struct {
	d time.Duration
	v []string
}

// grpcTimeoutHeader is the grpc-timeout header value for d, in ms.
func grpcTimeoutHeader(d time.Duration) []string {
	if t := lastGRPCTimeout.Load(); t != nil && t.d == d {
		return t.v
	}
	t := &grpcTimeoutValue{d: d, v: []string{strconv.FormatInt(d.Milliseconds(), 10) + "m"}}
	lastGRPCTimeout.Store(t)
	return t.v
}

// grpcFrame prefixes msg with the gRPC length-prefix (uncompressed).
func grpcFrame(msg []byte) []byte {
	b := make([]byte, 5+len(msg))
	binary.BigEndian.PutUint32(b[1:], uint32(len(msg)))
	copy(b[5:], msg)
	return b
}

// readGRPCMessage reads one length-prefixed message; io.EOF at a boundary.
func readGRPCMessage(r io.Reader) ([]byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, errors.New("truncated gRPC frame")
		}
		return nil, err
	}
	if hdr[0] != 0 {
		return nil, errors.New("compressed gRPC message not supported")
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxCalloutBody {
		return nil, errors.New("gRPC message too large")
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(r, msg); err != nil {
		return nil, errors.New("truncated gRPC frame")
	}
	return msg, nil
}

// grpcResult extracts status and message from trailers (or, for a
// trailers-only response, headers).
func grpcResult(resp *http.Response) (uint32, string) {
	return grpcStatusOf(resp.StatusCode, resp.Header, resp.Trailer)
}

// grpcStatusOf reads a gRPC response's status: grpc-status and
// grpc-message from its trailers, or from its headers for a trailers-only
// response; a non-200 HTTP status maps as Envoy maps it.
func grpcStatusOf(httpCode int, header, trailer http.Header) (uint32, string) {
	get := func(k string) string {
		if v := trailer.Get(k); v != "" {
			return v
		}
		return header.Get(k)
	}
	if httpCode != http.StatusOK {
		return uint32(httpToGRPCStatus(httpCode)), fmt.Sprintf("HTTP status %d", httpCode)
	}
	st := get("Grpc-Status")
	if st == "" {
		return grpcInternal, "missing grpc-status"
	}
	n, err := strconv.ParseUint(st, 10, 32)
	if err != nil {
		return grpcInternal, "invalid grpc-status"
	}
	msg, err := url.PathUnescape(get("Grpc-Message"))
	if err != nil {
		msg = get("Grpc-Message")
	}
	return uint32(n), msg
}

// runGRPCCall performs a grpc_call whose request message is frame (with its
// gRPC length prefix) and posts the result.
func (v *vm) runGRPCCall(c *callout, r grpcRequest, frame []byte) {
	defer c.cancel()
	code, text, reply := v.doGRPCCall(c.ctx, r, frame)
	if c.cancelled() {
		c.endSpan(result{isGRPC: true, failed: true, message: "cancelled"}, streamFacts{})
		return
	}
	var facts streamFacts
	defer func() { c.endSpan(result{isGRPC: true, grpcCode: int(code), message: text}, facts) }()
	v.deliver(c, func() {
		facts = c.spanFacts()
		delete(v.callouts, c.id())
		if code == grpcOK {
			v.grpcRecv, v.grpcRecvSet = reply, true
			v.callExport("proxy_on_grpc_receive", c.root, uint64(c.root), uint64(c.token), uint64(len(reply)))
			v.grpcRecv, v.grpcRecvSet = nil, false
			return
		}
		v.statusCode, v.statusMsg = code, text
		v.callExport("proxy_on_grpc_close", c.root, uint64(c.root), uint64(c.token), uint64(code))
		v.statusCode, v.statusMsg = 0, ""
	})
}

func (v *vm) doGRPCCall(ctx context.Context, r grpcRequest, frame []byte) (uint32, string, []byte) {
	timedOut := func() bool { return errors.Is(ctx.Err(), context.DeadlineExceeded) }
	if r.addr == OriginalDst {
		return grpcUnavailable, noHealthyUpstream, nil
	}
	if !validAuthority(r.authority) {
		return grpcUnavailable, peerRefusedAuthority, nil
	}
	req, err := r.httpRequest(ctx, bytes.NewReader(frame))
	if err != nil {
		return grpcInternal, err.Error(), nil
	}
	req.ContentLength = int64(len(frame))
	resp, err := v.gen.h.callouts.RoundTrip(req)
	if err != nil {
		if timedOut() {
			return grpcUnavailable, "upstream request timeout", nil
		}
		return grpcUnavailable, "upstream connect error or disconnect/reset before headers. reset reason: connection failure", nil
	}
	defer resp.Body.Close()
	var reply []byte
	var readErr error
	if !endedInHeaders(resp) {
		reply, readErr = readGRPCMessage(resp.Body)
		if readErr == nil {
			_, readErr = io.Copy(io.Discard, io.LimitReader(resp.Body, maxCalloutBody))
		} else if errors.Is(readErr, io.EOF) {
			reply, readErr = nil, nil
		}
	}
	if readErr != nil {
		if timedOut() {
			return grpcUnavailable, "upstream request timeout", nil
		}
		return grpcInternal, readErr.Error(), nil
	}
	code, text := grpcResult(resp)
	if code == grpcOK && reply == nil {
		return grpcInternal, "", nil
	}
	return code, text, reply
}

// grpcStreamState queues messages the plugin sends on a gRPC stream; a
// writer goroutine drains it into the request body, so grpc_send never
// blocks the VM.
type grpcStreamState struct {
	mu     sync.Mutex
	cond   *sync.Cond
	queue  [][]byte
	closed bool // end of stream requested
}

func newGRPCStreamState() *grpcStreamState {
	g := &grpcStreamState{}
	g.cond = sync.NewCond(&g.mu)
	return g
}

func (g *grpcStreamState) send(msg []byte, end bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return
	}
	if msg != nil {
		g.queue = append(g.queue, grpcFrame(msg))
	}
	if end {
		g.closed = true
	}
	g.cond.Broadcast()
}

// writeTo copies queued frames to w until end of stream or ctx is done.
func (g *grpcStreamState) writeTo(ctx context.Context, w *io.PipeWriter) {
	stop := context.AfterFunc(ctx, func() {
		g.mu.Lock()
		g.closed = true
		g.cond.Broadcast()
		g.mu.Unlock()
	})
	defer stop()
	for {
		g.mu.Lock()
		for len(g.queue) == 0 && !g.closed {
			g.cond.Wait()
		}
		q := g.queue
		g.queue = nil
		end := g.closed
		g.mu.Unlock()
		for _, f := range q {
			if _, err := w.Write(f); err != nil {
				return
			}
		}
		if end {
			_ = w.Close()
			return
		}
	}
}

// runGRPCStream runs a bidirectional gRPC stream and posts initial
// metadata, each message, trailing metadata and the close onto the VM.
func (v *vm) runGRPCStream(c *callout, r grpcRequest) {
	defer c.cancel()
	pr, pw := io.Pipe()
	defer pr.Close()
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.stream.writeTo(c.ctx, pw)
	}()
	defer func() {
		c.cancel()
		pw.CloseWithError(context.Canceled)
		<-writerDone
	}()
	closeWith := func(code uint32, text string) {
		if c.ctx.Err() != nil {
			return
		}
		v.deliver(c, func() {
			c.remoteClosed = true
			if c.localClosed {
				delete(v.callouts, c.id())
			}
			v.statusCode, v.statusMsg = code, text
			v.callExport("proxy_on_grpc_close", c.root, uint64(c.root), uint64(c.token), uint64(code))
			v.statusCode, v.statusMsg = 0, ""
		})
	}
	if r.addr == OriginalDst {
		closeWith(grpcUnavailable, noHealthyUpstream)
		return
	}
	if !validAuthority(r.authority) {
		closeWith(grpcUnavailable, peerRefusedAuthority)
		return
	}
	req, err := r.httpRequest(c.ctx, pr)
	if err != nil {
		closeWith(grpcInternal, err.Error())
		return
	}
	resp, err := v.gen.h.callouts.RoundTrip(req)
	if err != nil {
		closeWith(grpcUnavailable, "upstream connect error or disconnect/reset before headers. reset reason: connection failure")
		return
	}
	defer resp.Body.Close()
	if !endedInHeaders(resp) {
		md := responseHeaderMap(resp.StatusCode, resp.Header)
		v.deliver(c, func() {
			v.grpcInitMeta = md
			v.callExport("proxy_on_grpc_receive_initial_metadata", c.root, uint64(c.root), uint64(c.token), uint64(len(md.kv)))
			v.grpcInitMeta = nil
		})
		for {
			msg, err := readGRPCMessage(resp.Body)
			if err != nil {
				if !errors.Is(err, io.EOF) {
					closeWith(grpcInternal, err.Error())
					return
				}
				break
			}
			v.deliver(c, func() {
				v.grpcRecv, v.grpcRecvSet = msg, true
				v.callExport("proxy_on_grpc_receive", c.root, uint64(c.root), uint64(c.token), uint64(len(msg)))
				v.grpcRecv, v.grpcRecvSet = nil, false
			})
		}
	}
	trailers := resp.Trailer
	if endedInHeaders(resp) {
		trailers = resp.Header
	}
	tm := trailerMap(trailers)
	v.deliver(c, func() {
		v.grpcTrailMeta = tm
		v.callExport("proxy_on_grpc_receive_trailing_metadata", c.root, uint64(c.root), uint64(c.token), uint64(len(tm.kv)))
		v.grpcTrailMeta = nil
	})
	code, text := grpcResult(resp)
	closeWith(code, strings.TrimSpace(text))
}
