package filter

import (
	"github.com/angzarr-mesh/angzarr/filter/grpcframe"
	"github.com/angzarr-mesh/angzarr/filter/internal/wire"
)

// OnResponseHeaders returns the correlation id and lets the body come; a
// trailers-only error from the logic (a business rejection) passes through.
func (s *Stream) OnResponseHeaders(endOfStream bool) Action {
	s.enter()
	return s.leave(s.onResponseHeaders(endOfStream))
}

func (s *Stream) onResponseHeaders(endOfStream bool) Action {
	if s.kind == kindNone || s.localReply {
		return Continue
	}
	s.inResponse = true
	h := s.host()
	_ = h.RemoveHeader(ResponseHeaders, "content-length")
	if s.correlation != "" {
		_ = h.ReplaceHeader(ResponseHeaders, CorrelationHeader, s.correlation)
	}
	if endOfStream {
		s.trailersOnly = true
		code, _ := h.GetHeader(ResponseHeaders, "grpc-status")
		if s.probe != nil {
			// The answer is already decided, but a trailers-only response
			// cannot carry it.
			msg, _ := h.GetHeader(ResponseHeaders, "grpc-message")
			_ = h.ReplaceHeader(ResponseHeaders, "grpc-status", grpcStatusHeader(Internal))
			_ = h.ReplaceHeader(ResponseHeaders, "grpc-message", encodeGrpcMessage(
				"business logic refused the no-op probe (a CommandBook without pages must be answered with an empty EventBook): status "+code+": "+msg))
			s.finish(OutcomeError)
			return Continue
		}
		if s.fromCache && code != "0" && code != "" {
			s.verifyRejection()
			return Pause
		}
		s.finish(rejectionOutcome(code))
	}
	return Continue
}

// rejectionOutcome classifies the logic's trailers-only answer.
func rejectionOutcome(code string) Outcome {
	if code == "0" || code == "" {
		return OutcomeError
	}
	return OutcomeRejected
}

// OnResponseBody buffers the logic's answer until the trailers.
func (s *Stream) OnResponseBody(size int, endOfStream bool) Action {
	s.enter()
	return s.leave(s.onResponseBody(size, endOfStream))
}

func (s *Stream) onResponseBody(size int, endOfStream bool) Action {
	if s.kind == kindNone || s.localReply || !s.inResponse {
		return Continue
	}
	s.respSize = size
	if size > s.p.cfg.MaxBodyBytes+grpcframe.HeaderLen {
		s.respBig = true
	}
	if endOfStream {
		// A gRPC response always ends with trailers; without them there is
		// no status to rewrite, so let it through as it is.
		s.host().Log(LogWarn, "angzarr: business logic response ended without trailers")
		s.finish(OutcomeError)
		return Continue
	}
	if s.respBig {
		// Refused at the trailers: buffer no more of it. Envoy resets a
		// response whose stopped body outgrows the listener's buffer
		// limit, which would cut the RESOURCE_EXHAUSTED answer short.
		return StopNoBuffer
	}
	return Pause
}

// OnResponseTrailers stores the logic's decision and answers the client
// (pausing while the callouts run).
func (s *Stream) OnResponseTrailers() Action {
	s.enter()
	return s.leave(s.onResponseTrailers())
}

func (s *Stream) onResponseTrailers() Action {
	if s.kind == kindNone || s.localReply || !s.inResponse {
		return Continue
	}
	h := s.host()
	if s.probe != nil {
		if s.kind == kindHandleSync && s.syncMode != syncNone {
			s.complete(s.probeBook, s.probeOutcome)
			return Pause
		}
		s.respond(s.probe, s.probeOutcome)
		return Pause
	}
	code, _ := h.GetHeader(ResponseTrailers, "grpc-status")
	if code != "0" {
		// A business rejection: pass it through, nothing stored.
		if s.fromCache {
			s.verifyRejection()
			return Pause
		}
		s.finish(OutcomeRejected)
		return Continue
	}
	if s.respBig {
		s.fail(statusf(ResourceExhausted, "business logic answer of %d bytes exceeds the limit of %d bytes", s.respSize, s.p.cfg.MaxBodyBytes), OutcomeTooLarge)
		return Pause
	}
	body, err := h.GetBuffer(ResponseBody, 0, s.respSize)
	if err != nil {
		s.fail(statusf(Internal, "read business logic answer: %v", err), OutcomeError)
		return Pause
	}
	msg, err := grpcframe.Decode(body)
	if err != nil {
		s.fail(statusf(Internal, "business logic answer: %v", err), OutcomeError)
		return Pause
	}
	book, err := wire.DecodeDecision(msg)
	if err != nil {
		s.fail(statusf(Internal, "business logic answered an undecodable EventBook: %v", err), OutcomeError)
		return Pause
	}
	s.appendDecision(book)
	return Pause
}
