package filter

import (
	"time"

	"github.com/angzarr-mesh/angzarr/filter/internal/wire"
)

// Paths the filter serves and protects.
const (
	PathHandle          = "/angzarr.BusinessCoordinator/Handle"
	PathHandleSync      = "/angzarr.BusinessCoordinator/HandleSync"
	PathRecord          = "/angzarr.BusinessCoordinator/Record"
	PathLogicHandle     = "/angzarr.BusinessLogic/Handle"
	businessLogicPrefix = "/angzarr.BusinessLogic/"
	logicService        = "angzarr.BusinessLogic"
	eventStoreService   = "angzarr.EventStore"
)

// kind is which coordinator method a stream carries.
type kind int

const (
	kindNone kind = iota // not a command: pass through
	kindHandle
	kindHandleSync
	kindRecord
)

// Stream is one HTTP stream's state machine: its callbacks return the action
// for the host, and callout continuations resume it.
type Stream struct {
	p    *Plugin
	id   uint32
	kind kind

	// start is when the request headers arrived (latency).
	start time.Time
	// deadline is the client's (grpc-timeout from start); zero when none.
	deadline time.Time
	// attemptStart is when the current attempt to decide and append began
	// (start, then each retry's after its back-off): its length scales the
	// next back-off.
	attemptStart time.Time
	// inCallback is set while a stream callback runs: resuming then means
	// returning Continue rather than calling ContinueStream.
	inCallback bool
	// resumeNow is set by resume() during a callback.
	resumeNow bool
	// requestDone: the request body was processed (or refused).
	requestDone bool
	// inResponse: the upstream response has started, errors now go into
	// the trailers instead of a local reply.
	inResponse bool
	// localReply: the filter answered the request itself; the response
	// callbacks that follow belong to that reply and pass through.
	localReply bool
	// finished: the outcome was recorded.
	finished bool
	// described: the command's domain, root and correlation id were
	// recorded as stream properties (properties.go).
	described bool
	// closed: the host ended the stream.
	closed bool

	reqSize  int
	respSize int
	respBig  bool

	domain string
	cover  *wire.Cover // domain + root + correlation id
	// ownCover is where cover points once set (no allocation of its own).
	ownCover    wire.Cover
	cmd         *wire.CommandBook
	correlation string
	idemKey     string
	// caller is the client's identity from x-forwarded-client-cert, with
	// CallerIdentity ("" when it has none).
	caller string
	// expected is the aggregate sequence the next append expects.
	expected uint32
	retries  int
	// fromCache: the logic decided on the cached history (aggCache), not
	// on a fresh load.
	fromCache bool
	// trailersOnly: the logic's response ended with its headers.
	trailersOnly bool
	// probe, when set, is the answer (an encoded CommandResponse) to send
	// instead of the upstream's: the request forwarded to the logic is a
	// no-op probe.
	probe        []byte
	probeOutcome Outcome
	// probeBook is the raw EventBook of an idempotent repeat, for the sync
	// modes.
	probeBook []byte

	// syncMode is the HandleSync request's angzarr.SyncMode.
	syncMode int32
	// cascadeDepthHdr and cascadePathHdr are the request's cascade
	// metadata; depth and path their parsed values (CASCADE only).
	cascadeDepthHdr string
	cascadePathHdr  string
	depth           int
	path            []string
	// loaded continues the load in flight, verified a decision verified
	// by verifyCached; appending is the append in flight.
	loaded    func(s *Stream, resp *wire.LoadResponse)
	verified  func(s *Stream)
	appending appending
	// paged is the first page of a paged load in flight, its book growing
	// with each continuation; headOnly: the load in flight needs only its
	// first page.
	paged    *wire.LoadResponse
	headOnly bool
	// history is the size of the history the logic decides on (its raw
	// EventBook), for the append's size check (historyFits).
	history int
	// record is a Record's book while its aggregate loads.
	record *wire.EventBook
	// sync is the synchronous part in progress.
	sync *syncRun
	// trace is the client's W3C trace context (traceparent, tracestate,
	// baggage), sent as metadata on every callout of the stream.
	trace [][2]string
}

// ID is the stream's context id.
func (s *Stream) ID() uint32 { return s.id }

// host is a shortcut.
func (s *Stream) host() Host { return s.p.host }

// enter and leave bracket a stream callback; leave turns a resume
// requested during the callback into the callback's result.
func (s *Stream) enter() { s.inCallback, s.resumeNow = true, false }

func (s *Stream) leave(a Action) Action {
	s.inCallback = false
	if s.resumeNow {
		s.resumeNow = false
		return Continue
	}
	return a
}

// resume continues the paused direction.
func (s *Stream) resume(dir StreamType) {
	if s.inCallback {
		s.resumeNow = true
		return
	}
	if err := s.host().ContinueStream(dir); err != nil {
		s.host().Log(LogWarn, "angzarr: continue stream: "+err.Error())
	}
}

// finish records the command's outcome once.
func (s *Stream) finish(o Outcome) {
	if s.finished || s.kind == kindNone {
		return
	}
	s.finished = true
	s.p.metrics.command(s.domain, o, s.host().Now().Sub(s.start))
	s.recordOutcome(o)
}

// fail ends the command with an error status: a local reply during the
// request phase, rewritten trailers once the response has started.
func (s *Stream) fail(st *Status, o Outcome) {
	s.finish(o)
	if !s.inResponse {
		s.localReply = true
		var hdrs [][2]string
		if s.correlation != "" {
			hdrs = append(hdrs, [2]string{CorrelationHeader, s.correlation})
		}
		if d := st.detailsHeader(); d != "" {
			hdrs = append(hdrs, [2]string{"grpc-status-details-bin", d})
		}
		if err := s.host().SendLocalReply(st.Code, st.Message, hdrs); err != nil {
			s.host().Log(LogWarn, "angzarr: local reply: "+err.Error())
		}
		return
	}
	h := s.host()
	// A trailers-only response carries its status in the headers.
	m := ResponseTrailers
	if s.trailersOnly {
		m = ResponseHeaders
	} else {
		_ = h.SetBuffer(ResponseBody, nil)
	}
	_ = h.ReplaceHeader(m, "grpc-status", grpcStatusHeader(st.Code))
	_ = h.ReplaceHeader(m, "grpc-message", encodeGrpcMessage(st.Message))
	if d := st.detailsHeader(); d != "" {
		_ = h.ReplaceHeader(m, "grpc-status-details-bin", d)
	} else {
		_ = h.RemoveHeader(m, "grpc-status-details-bin")
	}
	s.resume(StreamResponse)
}

// gone marks the stream ended by the host.
func (s *Stream) gone() {
	if !s.finished && s.kind != kindNone {
		s.finish(OutcomeError)
	}
	s.closed = true
}

// OnDone is proxy_on_done: the host is finishing the stream.
func (s *Stream) OnDone() {}
