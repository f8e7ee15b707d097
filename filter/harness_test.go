package filter

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/angzarr-mesh/angzarr/filter/grpcframe"
	"github.com/angzarr-mesh/angzarr/filter/internal/counter"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// memStore is an in-memory angzarr.EventStore with the event service's
// semantics (compare-and-append, idempotency keys, snapshots).
type memStore struct {
	aggs  map[string]*memAgg
	down  bool
	loads int
	// pageBytes, when set, pages loads as the event service does
	// (LoadResponse.more_from): the snapshot and events while they fit,
	// at least one event per page.
	pageBytes int
	// refuseHistory refuses every append as the event service refuses one
	// beyond its history bound.
	refuseHistory bool
}

type memAgg struct {
	pages    []*pb.EventPage
	snapshot *pb.Snapshot
	keys     map[string]*pb.AppendResponse
}

func newMemStore() *memStore { return &memStore{aggs: map[string]*memAgg{}} }

func aggKey(c *pb.Cover) string { return c.GetDomain() + "/" + string(c.GetRoot().GetValue()) }

func (m *memStore) agg(c *pb.Cover) *memAgg {
	a, ok := m.aggs[aggKey(c)]
	if !ok {
		a = &memAgg{keys: map[string]*pb.AppendResponse{}}
		m.aggs[aggKey(c)] = a
	}
	return a
}

func (m *memStore) load(req *pb.LoadRequest) (*pb.LoadResponse, *Status) {
	if m.down {
		return nil, statusf(Unavailable, "connection refused")
	}
	m.loads++
	a := m.agg(req.GetCover())
	book := &pb.EventBook{Cover: req.GetCover()}
	if f := req.GetFromSequence(); f > 0 {
		// A continuation: events only, up to to_sequence.
		resp := &pb.LoadResponse{Book: book, NextSequence: req.GetToSequence()}
		resp.MoreFrom = m.page(book, a.pages[f:min(int(req.GetToSequence()), len(a.pages))], 0)
		return resp, nil
	}
	from := uint32(0)
	used := 0
	if a.snapshot != nil {
		book.Snapshot = a.snapshot
		from = a.snapshot.GetSequence()
		used = proto.Size(a.snapshot)
	}
	resp := &pb.LoadResponse{Book: book, NextSequence: uint32(len(a.pages))}
	resp.MoreFrom = m.page(book, a.pages[from:], used)
	if k := req.GetIdempotencyKey(); k != "" {
		resp.Prior = a.keys[k]
	}
	return resp, nil
}

// page adds pages to book while they fit in pageBytes (after used bytes),
// at least one; it returns the sequence of the first one left out, 0 when
// none is.
func (m *memStore) page(book *pb.EventBook, pages []*pb.EventPage, used int) uint32 {
	for i, p := range pages {
		n := proto.Size(p)
		if m.pageBytes > 0 && i > 0 && used+n > m.pageBytes {
			return p.GetNum()
		}
		used += n
		book.Pages = append(book.Pages, p)
	}
	return 0
}

func (m *memStore) append(req *pb.AppendRequest) (*pb.AppendResponse, *Status) {
	if m.down {
		return nil, statusf(Unavailable, "connection refused")
	}
	if m.refuseHistory {
		return nil, statusf(FailedPrecondition, "aggregate counter/…: these events (10 bytes) would take its history since the last snapshot from … Nothing was stored")
	}
	a := m.agg(req.GetCover())
	if k := req.GetIdempotencyKey(); k != "" {
		if prior, ok := a.keys[k]; ok {
			dup := proto.Clone(prior).(*pb.AppendResponse)
			dup.Duplicate = true
			return dup, nil
		}
	}
	next := uint32(len(a.pages))
	if req.GetExpectedSequence() != next {
		return nil, statusf(Aborted, "sequence conflict: expected %d, next %d", req.GetExpectedSequence(), next)
	}
	stored := &pb.EventBook{Cover: req.GetCover()}
	for i, p := range req.GetPages() {
		if n, ok := p.GetSequence().(*pb.EventPage_Num); ok && n.Num != next+uint32(i) {
			return nil, statusf(InvalidArgument, "page %d has sequence %d, want %d", i, n.Num, next+uint32(i))
		}
		sp := &pb.EventPage{Sequence: &pb.EventPage_Num{Num: next + uint32(i)}, Event: p.GetEvent()}
		stored.Pages = append(stored.Pages, sp)
	}
	a.pages = append(a.pages, stored.Pages...)
	if req.GetSnapshotState() != nil {
		a.snapshot = &pb.Snapshot{Sequence: uint32(len(a.pages)), State: req.GetSnapshotState()}
	}
	resp := &pb.AppendResponse{Book: stored, NextSequence: uint32(len(a.pages))}
	if k := req.GetIdempotencyKey(); k != "" {
		a.keys[k] = resp
	}
	return resp, nil
}

// harness drives the filter through whole commands: client → filter →
// (event service, business logic) → filter → client, all in memory. The
// filter is a guest of the fake host: the Plugin called directly
// (native), or the built module through its proxy-wasm binding (wasm).
type harness struct {
	t *testing.T
	h *fakeHost
	g guest
	// p is the Plugin in native mode (nil in wasm mode): tests that look
	// at the filter's own bookkeeping use it.
	p     *Plugin
	store *memStore
	logic func(*pb.ContextualCommand) (*pb.EventBook, *Status)
	// beforeCall, when set, runs before each callout is answered; return
	// false to leave the callout unanswered (dropped).
	beforeCall func(c *fakeCall) bool
	// mangleResponse, when set, rewrites the logic's framed answer.
	mangleResponse func([]byte) []byte
	// extra, when set, answers callouts to other services (projectors,
	// sagas, coordinators); ok false means not handled.
	extra       func(c *fakeCall) (out proto.Message, st *Status, ok bool)
	nextID      uint32
	logicCalls  int
	seenByLogic []*pb.ContextualCommand
}

// guest is the filter as the host drives it: context creation, the stream
// callbacks and the callout results delivered on the root context.
type guest interface {
	// NewStream creates stream context id.
	NewStream(id uint32) guestStream
	// DeleteStream ends it (proxy_on_done, proxy_on_delete).
	DeleteStream(id uint32)
	OnGrpcReceive(token uint32, size int)
	OnGrpcClose(token uint32, code Code, message string)
}

// guestStream is one stream's callbacks; *Stream implements it.
type guestStream interface {
	OnRequestHeaders(endOfStream bool) Action
	OnRequestBody(size int, endOfStream bool) Action
	OnRequestTrailers() Action
	OnResponseHeaders(endOfStream bool) Action
	OnResponseBody(size int, endOfStream bool) Action
	OnResponseTrailers() Action
}

// nativeGuest is the Plugin itself.
type nativeGuest struct{ *Plugin }

func (g nativeGuest) NewStream(id uint32) guestStream { return g.Plugin.NewStream(id) }

// guestMode is how a harness runs the filter.
type guestMode string

const (
	native guestMode = "native"
	wasm   guestMode = "wasm"
)

// modes are both: every scenario that only watches the filter from the
// host runs in each, the way coraza-proxy-wasm runs its cases as go and as
// wasm, so the binding in internal/abi is covered by all of them.
var modes = []guestMode{native, wasm}

// forModes runs f once per mode, as subtests named after the mode.
func forModes(t *testing.T, f func(t *testing.T, mode guestMode)) {
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) { f(t, m) })
	}
}

// newHarness is a native harness.
func newHarness(t *testing.T, cfg string) *harness { return newHarnessIn(t, native, cfg) }

// newHarnessIn is a harness running the filter in mode, configured with cfg.
func newHarnessIn(t *testing.T, mode guestMode, cfg string) *harness {
	t.Helper()
	h := newFakeHost()
	hs := &harness{t: t, h: h, store: newMemStore(), nextID: 1}
	switch mode {
	case native:
		p := NewPlugin(h)
		var n uint64
		p.SetRandom(func() uint64 { n++; return n * 0x9e3779b97f4a7c15 })
		if err := p.Configure([]byte(cfg)); err != nil {
			t.Fatal(err)
		}
		hs.p, hs.g = p, nativeGuest{p}
	case wasm:
		hs.g = newWasmGuest(t, h, []byte(cfg))
	}
	hs.logic = func(cc *pb.ContextualCommand) (*pb.EventBook, *Status) {
		b, err := counter.Decide(cc, 0)
		if err != nil {
			st, _ := status.FromError(err)
			return nil, &Status{Code: Code(st.Code()), Message: st.Message()}
		}
		return b, nil
	}
	return hs
}

const counterConfig = `{"domains":["counter"],"max_retries":3}`

// result is what the client saw.
type result struct {
	code     Code
	message  string
	details  string
	resp     *pb.CommandResponse
	headers  map[string]string
	local    bool
	upstream bool // the request reached the business logic
	reqPath  string
}

func (r result) String() string {
	return fmt.Sprintf("code=%d msg=%q local=%v resp=%v", r.code, r.message, r.local, r.resp)
}

// pump answers queued callouts until none is left.
func (hs *harness) pump() {
	for len(hs.h.calls) > 0 {
		c := hs.h.calls[0]
		hs.h.calls = hs.h.calls[1:]
		if hs.beforeCall != nil && !hs.beforeCall(c) {
			continue
		}
		var out proto.Message
		var st *Status
		switch c.service + "/" + c.method {
		case "angzarr.EventStore/Load":
			req := &pb.LoadRequest{}
			mustUnmarshal(hs.t, c.msg, req)
			out, st = hs.store.load(req)
		case "angzarr.EventStore/Append":
			req := &pb.AppendRequest{}
			mustUnmarshal(hs.t, c.msg, req)
			out, st = hs.store.append(req)
		case "angzarr.BusinessLogic/Handle":
			req := &pb.ContextualCommand{}
			mustUnmarshal(hs.t, c.msg, req)
			hs.logicCalls++
			out, st = hs.logic(req)
		default:
			ok := false
			if hs.extra != nil {
				out, st, ok = hs.extra(c)
			}
			if !ok {
				hs.t.Fatalf("unexpected callout %s/%s", c.service, c.method)
			}
		}
		hs.h.current = 0 // callout results arrive on the root context
		if st != nil {
			// Code and message only: Envoy delivers a unary callout's
			// failure without its trailers (grpc-status-details-bin
			// included; see compensationRequested).
			hs.g.OnGrpcClose(c.token, st.Code, st.Message)
			continue
		}
		b, err := proto.Marshal(out)
		if err != nil {
			hs.t.Fatal(err)
		}
		hs.h.grpcBuf = b
		hs.g.OnGrpcReceive(c.token, len(b))
		hs.g.OnGrpcClose(c.token, OK, "")
	}
}

func mustUnmarshal(t *testing.T, b []byte, m proto.Message) {
	t.Helper()
	if err := proto.Unmarshal(b, m); err != nil {
		t.Fatal(err)
	}
}

func frame(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return grpcframe.Encode(b)
}

// send runs one request with a raw body through the filter.
func (hs *harness) send(path string, body []byte) result { return hs.sendWith(path, body, nil) }

// sendWith runs one request with extra request headers.
func (hs *harness) sendWith(path string, body []byte, extraHeaders [][2]string) result {
	t := hs.t
	id := hs.nextID
	hs.nextID++
	fs := hs.h.stream(id)
	hs.h.current = id
	fs.maps[RequestHeaders] = map[string]string{":path": path, ":method": "POST", "content-type": "application/grpc", "content-length": strconv.Itoa(len(body))}
	for _, kv := range extraHeaders {
		fs.maps[RequestHeaders][kv[0]] = kv[1]
	}
	s := hs.g.NewStream(id)
	defer hs.g.DeleteStream(id)

	var res result
	finishLocal := func() result {
		res.local = true
		res.code, res.message = fs.reply.code, fs.reply.message
		res.headers = fs.reply.headers
		res.details = fs.reply.headers["grpc-status-details-bin"]
		// Envoy runs the local reply through the encoder chain.
		hs.h.current = id
		if a := s.OnResponseHeaders(true); a != Continue {
			t.Fatalf("local reply paused in response headers")
		}
		return res
	}
	a := s.OnRequestHeaders(len(body) == 0)
	if fs.reply != nil {
		return finishLocal()
	}
	if a != Continue {
		t.Fatalf("request headers returned %d", a)
	}
	res.reqPath = fs.maps[RequestHeaders][":path"]
	if len(body) > 0 {
		fs.bufs[RequestBody] = body
		a = s.OnRequestBody(len(body), true)
		if a != Continue {
			hs.pump()
		}
		if fs.reply != nil {
			return finishLocal()
		}
		if a != Continue && !contains(fs.continued, StreamRequest) {
			t.Fatalf("request neither continued nor answered")
		}
	}
	if path != PathHandle && path != PathHandleSync && path != PathRecord {
		res.upstream = true
		return res // pass-through: not our business
	}
	// The upstream business logic.
	res.upstream = true
	cc := &pb.ContextualCommand{}
	msg, err := grpcframe.Decode(fs.bufs[RequestBody])
	if err != nil {
		t.Fatalf("forwarded body: %v", err)
	}
	var book *pb.EventBook
	var st *Status
	if err := proto.Unmarshal(msg, cc); err != nil {
		// What grpc-go answers for a request it cannot decode.
		st = statusf(Internal, "grpc: error unmarshalling request: %v", err)
	} else {
		hs.seenByLogic = append(hs.seenByLogic, cc)
		hs.logicCalls++
		book, st = hs.logic(cc)
	}
	hs.h.current = id
	if st != nil {
		fs.maps[ResponseHeaders] = map[string]string{":status": "200", "content-type": "application/grpc",
			"grpc-status": strconv.Itoa(int(st.Code)), "grpc-message": st.Message}
		if a := s.OnResponseHeaders(true); a != Continue {
			// Only a rejection decided on the cached history waits (for
			// the load that checks it).
			hs.pump()
			if !contains(fs.continued, StreamResponse) {
				t.Fatalf("trailers-only response paused and never continued")
			}
		}
		res.headers = fs.maps[ResponseHeaders]
		c, _ := strconv.Atoi(res.headers["grpc-status"])
		res.code, res.message = Code(c), res.headers["grpc-message"]
		return res
	}
	rb := frame(t, book)
	if hs.mangleResponse != nil {
		rb = hs.mangleResponse(rb)
	}
	fs.maps[ResponseHeaders] = map[string]string{":status": "200", "content-type": "application/grpc", "content-length": strconv.Itoa(len(rb))}
	if a := s.OnResponseHeaders(false); a != Continue {
		t.Fatalf("response headers returned %d", a)
	}
	fs.bufs[ResponseBody] = rb
	// An answer over the limit is refused: its data is no longer buffered.
	if a := s.OnResponseBody(len(rb), false); a != Pause && a != StopNoBuffer {
		t.Fatalf("response body not buffered: %d", a)
	}
	fs.maps[ResponseTrailers] = map[string]string{"grpc-status": "0"}
	if a := s.OnResponseTrailers(); a != Continue {
		hs.pump()
		if !contains(fs.continued, StreamResponse) {
			t.Fatalf("response neither continued nor finished")
		}
	}
	res.headers = fs.maps[ResponseHeaders]
	tr := fs.maps[ResponseTrailers]
	c, _ := strconv.Atoi(tr["grpc-status"])
	res.code, res.message, res.details = Code(c), tr["grpc-message"], tr["grpc-status-details-bin"]
	if res.code == OK {
		msg, err := grpcframe.Decode(fs.bufs[ResponseBody])
		if err != nil {
			t.Fatalf("response body: %v", err)
		}
		res.resp = &pb.CommandResponse{}
		mustUnmarshal(t, msg, res.resp)
	} else if len(fs.bufs[ResponseBody]) != 0 {
		t.Fatalf("error response still carries a body")
	}
	return res
}

// checkNoLeaks fails when the filter still holds streams or callouts. Only
// the native Plugin shows its bookkeeping; a wasm guest's is inside the
// module.
func (hs *harness) checkNoLeaks(t *testing.T) {
	t.Helper()
	if hs.p == nil {
		return
	}
	if hs.p.Callouts() != 0 || hs.p.Streams() != 0 {
		t.Fatalf("%d callouts, %d streams left", hs.p.Callouts(), hs.p.Streams())
	}
}

// handle sends a CommandBook to Handle.
func (hs *harness) handle(cmd *pb.CommandBook) result { return hs.send(PathHandle, frame(hs.t, cmd)) }

func contains(xs []StreamType, x StreamType) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// root returns a 16-byte root id for n.
func root(n byte) *pb.UUID {
	b := make([]byte, 16)
	b[15] = n
	b[6] = 0x40
	return &pb.UUID{Value: b}
}

// cmd builds a counter command book.
func cmd(r byte, seq uint32, deltas ...int64) *pb.CommandBook {
	cb := &pb.CommandBook{Cover: &pb.Cover{Domain: counter.Domain, Root: root(r)}}
	for _, d := range deltas {
		cb.Pages = append(cb.Pages, counter.Command(d, seq))
	}
	return cb
}

// stored returns the stored pages of counter aggregate r.
func (hs *harness) stored(r byte) []*pb.EventPage {
	return hs.store.agg(&pb.Cover{Domain: counter.Domain, Root: root(r)}).pages
}
