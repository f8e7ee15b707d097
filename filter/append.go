package filter

import (
	"encoding/base64"
	"strconv"
	"time"

	"github.com/angzarr-mesh/angzarr/filter/grpcframe"
	"github.com/angzarr-mesh/angzarr/filter/internal/wire"
)

// appendPages asks the event service to append pages at s.expected, stamped
// with the stream's cover (and so its correlation id). onOK runs with the
// stored result, onConflict when the expected sequence was stale; every
// other failure ends the command with UNAVAILABLE (nothing was stored).
func (s *Stream) appendPages(pages []*wire.EventPage, snapshot []byte, onOK func(s *Stream, resp *wire.AppendResponse), onConflict func(s *Stream)) {
	req := &wire.AppendRequest{
		Cover:            s.cover,
		ExpectedSequence: s.expected,
		Pages:            pages,
		SnapshotState:    snapshot,
		IdempotencyKey:   s.idemKey,
	}
	s.appending = appending{pages: pages, snapshot: snapshot, onOK: onOK, onConflict: onConflict}
	st := s.p.call(s, s.p.cfg.EventServiceCluster, eventStoreService, "Append", req.Marshal(), time.Duration(s.p.cfg.EventServiceTimeout),
		(*Stream).onAppendAnswer)
	if st != nil {
		s.fail(st, OutcomeUnavailable)
	}
}

// appending is the append in flight: what appendPages was given.
type appending struct {
	pages      []*wire.EventPage
	snapshot   []byte
	onOK       func(s *Stream, resp *wire.AppendResponse)
	onConflict func(s *Stream)
}

// onAppendAnswer is the answer to appendPages.
func (s *Stream) onAppendAnswer(msg []byte, st *Status) {
	a := s.appending
	s.appending = appending{}
	if st != nil {
		// Refused, failed or timed out (perhaps stored after all):
		// the cached history is in doubt.
		s.p.cache.drop(cacheKey(s.cover))
		if st.Code == Aborted {
			s.p.metrics.conflict(s.domain)
			a.onConflict(s)
			return
		}
		s.fail(eventServiceStatus("append", st), OutcomeUnavailable)
		return
	}
	resp, err := wire.DecodeAppendResponse(msg)
	if err != nil {
		s.p.cache.drop(cacheKey(s.cover))
		s.fail(statusf(Unavailable, "event service: undecodable AppendResponse: %v", err), OutcomeUnavailable)
		return
	}
	s.cacheAppended(a.pages, a.snapshot, resp)
	a.onOK(s, resp)
}

// cacheAppended adds the pages just stored to the cached history, or drops
// it when the append leaves it unclear what a load would now answer: a
// Record, a snapshot, forced sequences, a duplicate.
func (s *Stream) cacheAppended(pages []*wire.EventPage, snapshot []byte, resp *wire.AppendResponse) {
	key := cacheKey(s.cover)
	keep := s.kind != kindRecord && snapshot == nil && !resp.Duplicate
	for _, p := range pages {
		keep = keep && !p.Force
	}
	if !keep {
		s.p.cache.drop(key)
		return
	}
	stored, err := wire.PageFields(resp.Book)
	if err != nil {
		s.p.cache.drop(key)
		return
	}
	s.p.cache.extend(key, s.expected, stored, resp.NextSequence)
}

// reportConflict reloads the aggregate to learn its current sequence and
// answers ABORTED with it.
func (s *Stream) reportConflict(why string) {
	want := s.expected
	s.loadHead(func(s *Stream, resp *wire.LoadResponse) {
		s.fail(conflictStatus(s.cover, want, resp.NextSequence, why), OutcomeAborted)
	})
}

// appendDecision numbers the logic's events from s.expected and appends
// them; on a conflict an auto_resequence command is retried.
func (s *Stream) appendDecision(book *wire.EventBook) {
	if st := compensationRequested(book); st != nil {
		// Stores nothing, like a rejection: on the cached history it is
		// checked against a fresh load first.
		o := OutcomeRejected
		if st.Code != FailedPrecondition {
			o = OutcomeError
		}
		if s.fromCache {
			s.verifyCached(func(s *Stream) { s.fail(st, o) })
			return
		}
		s.fail(st, o)
		return
	}
	if len(book.Pages) == 0 && book.SnapshotState == nil {
		// The command decided nothing: nothing to store.
		if s.fromCache {
			s.verifyCached(func(s *Stream) { s.complete(nil, OutcomeOK) })
			return
		}
		s.complete(nil, OutcomeOK)
		return
	}
	if st := s.historyFits(s.history, book.Pages, book.SnapshotState); st != nil {
		s.fail(st, OutcomeTooLarge)
		return
	}
	for i, p := range book.Pages {
		if !p.Force {
			p.HasNum, p.Num = true, s.expected+uint32(i)
		}
		p.CreatedAt = nil // the event service stamps the time
	}
	s.appendPages(book.Pages, book.SnapshotState, (*Stream).onDecisionStored, (*Stream).onDecisionConflict)
}

// onDecisionStored answers a command whose decision was stored.
func (s *Stream) onDecisionStored(resp *wire.AppendResponse) {
	o := OutcomeOK
	if resp.Duplicate {
		o = OutcomeDuplicate
	}
	s.complete(resp.Book, o)
}

// onDecisionConflict retries an auto_resequence command (reload after a
// jittered back-off, run the logic again by callout, append) or answers
// ABORTED.
func (s *Stream) onDecisionConflict() {
	if !s.cmd.AutoResequence {
		s.reportConflict("")
		return
	}
	if s.retries >= s.p.cfg.MaxRetries {
		s.reportConflict("gave up after " + strconv.Itoa(s.retries) + " retries: ")
		return
	}
	delay, ok := s.retryDelay()
	if !ok {
		s.reportConflict("gave up after " + strconv.Itoa(s.retries) + " retries at the command's deadline: ")
		return
	}
	s.retries++
	s.p.metrics.retry(s.domain)
	s.loadAfter(delay, func(s *Stream, resp *wire.LoadResponse) {
		if prior := resp.Prior; prior != nil {
			// An earlier attempt (or a twin) already applied the key.
			s.complete(prior.Book, OutcomeDuplicate)
			return
		}
		s.expected = resp.NextSequence
		for _, p := range s.cmd.Pages {
			p.Sequence = s.expected
		}
		s.history = len(resp.Book)
		cc := wire.ContextualCommand(resp.Book, s.cover, s.cmd)
		if st := s.checkForward(len(resp.Book), cc); st != nil {
			s.fail(st, OutcomeTooLarge)
			return
		}
		s.callLogic(cc)
	})
}

// callLogic runs the business logic again by callout and appends its new
// decision; a rejection ends the command with the logic's status.
func (s *Stream) callLogic(cc []byte) {
	st := s.p.call(s, s.p.cfg.BusinessLogicCluster, logicService, "Handle", cc, time.Duration(s.p.cfg.BusinessLogicTimeout),
		func(s *Stream, msg []byte, st *Status) {
			if st != nil {
				s.fail(st, OutcomeRejected)
				return
			}
			book, err := wire.DecodeDecision(msg)
			if err != nil {
				s.fail(statusf(Internal, "business logic answered an undecodable EventBook: %v", err), OutcomeError)
				return
			}
			s.appendDecision(book)
		})
	if st != nil {
		s.fail(st, OutcomeUnavailable)
	}
}

// respond replaces the upstream response with resp (an encoded
// CommandResponse) and an OK status.
func (s *Stream) respond(resp []byte, o Outcome) { s.respondFramed(grpcframe.Encode(resp), o) }

// respondFramed is respond with the CommandResponse already framed.
func (s *Stream) respondFramed(framed []byte, o Outcome) {
	h := s.host()
	if err := h.SetBuffer(ResponseBody, framed); err != nil {
		s.fail(statusf(Internal, "replace response body: %v", err), OutcomeError)
		return
	}
	_ = h.ReplaceHeader(ResponseTrailers, "grpc-status", "0")
	_ = h.RemoveHeader(ResponseTrailers, "grpc-message")
	_ = h.RemoveHeader(ResponseTrailers, "grpc-status-details-bin")
	s.finish(o)
	s.resume(StreamResponse)
}

// compensationRequested is the answer to a decision that asks the
// framework to act about a refused saga command instead of storing events
// (see angzarr.CompensationRequest): FAILED_PRECONDITION with the request,
// as the logic sent it, among the status details, which the dispatcher
// reads. A request mixed with events is the logic's error (INTERNAL).
// nil when the decision holds no request.
//
// Why a decision and not only a refusal with the request in
// grpc-status-details-bin: after a write conflict the filter runs the
// logic again by unary gRPC callout, and a unary callout reaches a
// proxy-wasm plugin without its trailers. Envoy's wasm Context answers
// proxy_grpc_call with a GrpcCallClientHandler (context.h), a
// RawAsyncRequestCallbacks whose onSuccessRaw and onFailure(status,
// message) are all the plugin gets (onGrpcReceiveWrapper,
// onGrpcCloseWrapper in context.cc); AsyncRequestImpl's
// onReceiveTrailingMetadata is empty (source/common/grpc/
// async_client_impl.cc). Only a stream callout (proxy_grpc_stream)
// delivers trailing metadata, and Envoy gives a stream no timeout. The
// message of an OK answer survives every path.
func compensationRequested(book *wire.EventBook) *Status {
	for _, p := range book.Pages {
		reason, ok := wire.CompensationRequest(p.Event)
		if !ok {
			continue
		}
		if len(book.Pages) > 1 || book.SnapshotState != nil {
			return statusf(Internal, "business logic answered an angzarr.CompensationRequest together with events or a snapshot; nothing stored")
		}
		msg := "compensation requested: " + reason
		return &Status{Code: FailedPrecondition, Message: msg,
			Details: base64.RawStdEncoding.EncodeToString(wire.RPCStatus(int32(FailedPrecondition), msg, p.Event))}
	}
	return nil
}
