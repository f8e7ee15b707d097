package filter

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/angzarr-mesh/angzarr/filter/grpcframe"
	"github.com/angzarr-mesh/angzarr/filter/internal/wire"
	"github.com/angzarr-mesh/angzarr/internal/sagakey"
)

// OnRequestHeaders decides whether the stream is a command, rewrites it to
// the business logic and lets the body come: with HoldRequestHeaders it
// stops the headers (the host must still deliver the body), else it
// continues them (pausing would stop the body callbacks).
func (s *Stream) OnRequestHeaders(endOfStream bool) Action {
	s.enter()
	return s.leave(s.onRequestHeaders(endOfStream))
}

func (s *Stream) onRequestHeaders(endOfStream bool) Action {
	if s.p.cfg.PassThrough() {
		return Continue
	}
	path, _ := s.host().GetHeader(RequestHeaders, ":path")
	switch path {
	case PathHandle:
		s.kind = kindHandle
	case PathHandleSync:
		s.kind = kindHandleSync
		s.readCascadeHeaders()
	case PathRecord:
		s.kind = kindRecord
	default:
		if strings.HasPrefix(path, businessLogicPrefix) {
			s.kind = kindHandle // counted as a command for metrics
			s.start = s.host().Now()
			s.fail(statusf(PermissionDenied, "%s is internal to the aggregate's pod: call angzarr.BusinessCoordinator instead", path), OutcomeDenied)
			return Pause
		}
		return Continue
	}
	s.start = s.host().Now()
	s.attemptStart = s.start
	s.readDeadline()
	s.readTraceHeaders()
	s.readCaller()
	if s.kind == kindRecord {
		if st := s.authorizeRecord(); st != nil {
			s.fail(st, OutcomeDenied)
			return Pause
		}
	}
	if err := s.host().ReplaceHeader(RequestHeaders, ":path", PathLogicHandle); err != nil {
		s.fail(statusf(Internal, "rewrite :path: %v", err), OutcomeError)
		return Pause
	}
	_ = s.host().RemoveHeader(RequestHeaders, "content-length")
	if endOfStream {
		s.fail(statusf(InvalidArgument, "%s request has no body", path), OutcomeInvalid)
		return Pause
	}
	if s.p.cfg.HoldRequestHeaders {
		// Stop the headers (Envoy's StopIteration with
		// allow_on_headers_stop_iteration): the router opens the stream to
		// the logic only when the processed command continues.
		return Pause
	}
	return Continue
}

// OnRequestBody buffers the request until its end, then processes it.
func (s *Stream) OnRequestBody(size int, endOfStream bool) Action {
	s.enter()
	return s.leave(s.onRequestBody(size, endOfStream))
}

func (s *Stream) onRequestBody(size int, endOfStream bool) Action {
	if s.kind == kindNone || s.requestDone || s.localReply {
		return Continue
	}
	s.reqSize = size
	if size > s.p.cfg.MaxBodyBytes {
		s.requestDone = true
		s.fail(statusf(ResourceExhausted, "request body of %d bytes exceeds the limit of %d bytes", size, s.p.cfg.MaxBodyBytes), OutcomeTooLarge)
		return Pause
	}
	if !endOfStream {
		return Pause
	}
	s.processRequest()
	return Pause
}

// OnRequestTrailers processes a request whose body ended before trailers.
func (s *Stream) OnRequestTrailers() Action {
	s.enter()
	if s.kind == kindNone || s.requestDone || s.localReply {
		return s.leave(Continue)
	}
	s.processRequest()
	return s.leave(Pause)
}

// processRequest decodes and validates the buffered request and starts its
// first callout.
func (s *Stream) processRequest() {
	s.requestDone = true
	body, err := s.host().GetBuffer(RequestBody, 0, s.reqSize)
	if err != nil {
		s.fail(statusf(Internal, "read request body: %v", err), OutcomeError)
		return
	}
	msg, err := grpcframe.Decode(body)
	if err != nil {
		if errors.Is(err, grpcframe.ErrCompressed) {
			s.fail(statusf(Unimplemented, "compressed gRPC messages are not supported by the Angzarr filter: send the request without grpc-encoding"), OutcomeUnimplemented)
			return
		}
		s.fail(statusf(InvalidArgument, "malformed gRPC request: %v", err), OutcomeInvalid)
		return
	}
	switch s.kind {
	case kindHandle:
		cmd, err := wire.DecodeCommandBook(msg)
		if err != nil {
			s.fail(statusf(InvalidArgument, "request is not an angzarr.CommandBook: %v", err), OutcomeInvalid)
			return
		}
		s.startCommand(cmd)
	case kindHandleSync:
		scb, err := wire.DecodeSyncCommandBook(msg)
		if err != nil {
			s.fail(statusf(InvalidArgument, "request is not an angzarr.SyncCommandBook: %v", err), OutcomeInvalid)
			return
		}
		if scb.Command != nil && scb.Command.Cover != nil {
			s.domain = scb.Command.Cover.Domain
		}
		if scb.SyncMode < syncNone || scb.SyncMode > syncCascade {
			s.fail(statusf(InvalidArgument, "unknown sync mode %s: use SYNC_MODE_NONE, SYNC_MODE_SIMPLE or SYNC_MODE_CASCADE", wire.SyncModeName(scb.SyncMode)), OutcomeInvalid)
			return
		}
		s.syncMode = scb.SyncMode
		if scb.Command == nil {
			s.fail(statusf(InvalidArgument, "SyncCommandBook has no command"), OutcomeInvalid)
			return
		}
		s.startCommand(scb.Command)
	case kindRecord:
		book, err := wire.DecodeEventBook(msg)
		if err != nil {
			s.fail(statusf(InvalidArgument, "request is not an angzarr.EventBook: %v", err), OutcomeInvalid)
			return
		}
		s.startRecord(book)
	}
}

// setCorrelation keeps the cover's correlation id or generates one.
func (s *Stream) setCorrelation(cover *wire.Cover) {
	if cover.CorrelationID == "" {
		cover.CorrelationID = newUUIDv4(s.p.random)
	}
	s.correlation = cover.CorrelationID
	s.ownCover = wire.Cover{Domain: cover.Domain, Root: cover.Root, CorrelationID: s.correlation}
	s.cover = &s.ownCover
	s.describe()
}

// idempotencyKey is the book's key, or one derived from its saga origin (a
// saga's command for a given triggering event takes effect at most once).
// The derivation is sagakey.Key with index 0: a book without an explicit
// key does not say which of the saga's commands for the event it is, so
// two such commands of one saga for one event to the same aggregate would
// share a key. The event service's dispatcher and the CASCADE sync mode
// always set the key explicitly (with the command's index).
func idempotencyKey(cmd *wire.CommandBook) string {
	if cmd.IdempotencyKey != "" {
		return cmd.IdempotencyKey
	}
	o := cmd.SagaOrigin
	if o == nil || o.SagaName == "" {
		return ""
	}
	var dom string
	var r []byte
	if t := o.TriggeringAggregate; t != nil {
		dom, r = t.Domain, t.Root
	}
	return sagakey.Key(o.SagaName, dom, r, o.TriggeringEventSequence, 0)
}

// startCommand validates a command and loads its aggregate.
func (s *Stream) startCommand(cmd *wire.CommandBook) {
	if cmd.Cover != nil {
		s.domain = cmd.Cover.Domain
	}
	if st := validateCommand(s.p.cfg, cmd); st != nil {
		s.fail(st, OutcomeInvalid)
		return
	}
	if s.syncMode == syncCascade {
		if st, o := s.checkCascade(cmd.Cover); st != nil {
			s.fail(st, o)
			return
		}
	}
	s.setCorrelation(cmd.Cover)
	s.cmd = cmd
	s.idemKey = s.scopeKey(idempotencyKey(cmd))
	if s.startFromCache() {
		return
	}
	s.load((*Stream).onCommandLoaded)
}

// startFromCache forwards the command with the cached history instead of
// loading it, when the cache may be used for it (see aggCache).
func (s *Stream) startFromCache() bool {
	if s.idemKey != "" || s.cmd.AutoResequence {
		return false
	}
	e, ok := s.p.cache.get(cacheKey(s.cover))
	if !ok || e.next != s.cmd.Pages[0].Sequence {
		return false
	}
	s.fromCache = true
	s.expected = e.next
	s.forwardCommand(e.book)
	return true
}

// verifyCached checks a decision made on the cached history that stores
// nothing (a business rejection, an empty decision), which no write
// conflict would catch: a fresh load decides whether it stands (current
// runs) or the command's expected sequence was stale (ABORTED).
func (s *Stream) verifyCached(current func(s *Stream)) {
	s.fromCache = false
	s.verified = current
	s.loadHead((*Stream).onVerifyLoaded)
}

func (s *Stream) onVerifyLoaded(resp *wire.LoadResponse) {
	if resp.NextSequence != s.expected {
		s.fail(conflictStatus(s.cover, s.expected, resp.NextSequence, ""), OutcomeAborted)
		return
	}
	s.verified(s)
}

// verifyRejection passes a business rejection of a command decided on the
// cached history on once verifyCached confirms the history was current.
func (s *Stream) verifyRejection() {
	s.verifyCached(func(s *Stream) {
		s.finish(OutcomeRejected)
		s.resume(StreamResponse)
	})
}

// load asks the event service for the aggregate's history (every page of
// a paged one); then runs with the answer. The continuations of the
// stream's callouts (one at a time) are kept in the stream and are
// functions of it, not closures, so that starting a callout allocates
// nothing for them.
func (s *Stream) load(then func(s *Stream, resp *wire.LoadResponse)) { s.loadAfter(0, then) }

// loadHead is load for an answer that needs only the first page: the
// next sequence and the idempotency lookup, not the whole history.
func (s *Stream) loadHead(then func(s *Stream, resp *wire.LoadResponse)) {
	s.loadAfter(0, then)
	s.headOnly = true
}

// loadAfter is load with the event service waiting delay first (whole
// milliseconds): the filter has no timer of its own.
func (s *Stream) loadAfter(delay time.Duration, then func(s *Stream, resp *wire.LoadResponse)) {
	// The cover keeps the correlation id: the event service's spans and
	// logs of the load carry it.
	s.loaded, s.paged, s.headOnly = then, nil, false
	s.callLoad(&wire.LoadRequest{Cover: s.cover, IdempotencyKey: s.idemKey, DelayMs: uint32(delay.Milliseconds())})
}

func (s *Stream) callLoad(req *wire.LoadRequest) {
	st := s.p.call(s, s.p.cfg.EventServiceCluster, eventStoreService, "Load", req.Marshal(), time.Duration(s.p.cfg.EventServiceTimeout),
		(*Stream).onLoadAnswer)
	if st != nil {
		s.fail(st, OutcomeUnavailable)
	}
}

// onLoadAnswer is the answer to load. A long history comes in pages
// (LoadResponse.more_from): each continuation's pages are added to the
// first page's book, which is handed on once complete. A history that
// outgrows what a command can carry to the logic ends the command there.
func (s *Stream) onLoadAnswer(msg []byte, st *Status) {
	if st != nil {
		s.fail(eventServiceStatus("load", st), OutcomeUnavailable)
		return
	}
	resp, err := wire.DecodeLoadResponse(msg)
	if err != nil {
		s.fail(statusf(Unavailable, "event service: undecodable LoadResponse: %v", err), OutcomeUnavailable)
		return
	}
	if first := s.paged; first != nil {
		pages, err := wire.PageFields(resp.Book)
		if err != nil || len(pages) == 0 {
			s.fail(statusf(Unavailable, "event service: undecodable or empty page of a paged history from sequence %d: %v", first.MoreFrom, err), OutcomeUnavailable)
			return
		}
		first.Book = append(first.Book, pages...)
		first.MoreFrom = resp.MoreFrom
		resp = first
	}
	if resp.MoreFrom != 0 && resp.Prior == nil && !s.headOnly {
		if len(resp.Book) > s.p.cfg.MaxBodyBytes {
			s.fail(s.historyTooLarge(fmt.Sprintf("its history since the last snapshot is more than %d bytes (events before sequence %d; %d bytes loaded up to sequence %d)",
				len(resp.Book), resp.NextSequence, len(resp.Book), resp.MoreFrom)), OutcomeTooLarge)
			return
		}
		if s.paged == nil {
			// Clipped: the pages to come are appended to a copy, not
			// over the rest of the host's buffer.
			resp.Book = slices.Clip(resp.Book)
			s.paged = resp
		}
		s.callLoad(&wire.LoadRequest{Cover: s.cover, FromSequence: resp.MoreFrom, ToSequence: resp.NextSequence})
		return
	}
	s.paged = nil
	if resp.Prior == nil && resp.MoreFrom == 0 {
		s.p.cache.put(cacheKey(s.cover), resp.Book, resp.NextSequence)
	}
	s.loaded(s, resp)
}

// commandRoom is the room a history without a snapshot keeps for the
// command that comes with it: an append that would leave less is refused
// (historyFits).
const commandRoom = 64 << 10

// historyLimit is the most bytes of history (an EventBook: the snapshot
// and the events after it) an append may leave: max_body_bytes, which
// bounds what the filter hands the logic, less commandRoom.
func (s *Stream) historyLimit() int {
	return max(s.p.cfg.MaxBodyBytes-commandRoom, s.p.cfg.MaxBodyBytes/2)
}

// historyFits refuses an append of pages without a snapshot that would
// take the history (of history bytes) beyond historyLimit: the next command
// could not carry it to the logic. Nothing is stored then.
func (s *Stream) historyFits(history int, pages []*wire.EventPage, snapshot []byte) *Status {
	if snapshot != nil || len(pages) == 0 {
		return nil // a snapshot starts the history afresh
	}
	add := wire.PagesSize(pages)
	if history+add <= s.historyLimit() {
		return nil
	}
	return s.historyTooLarge(fmt.Sprintf("these events (%d bytes) would take its history since the last snapshot from %d to %d bytes, beyond the %d bytes kept for it (max_body_bytes less %d for a command)",
		add, history, history+add, s.historyLimit(), commandRoom))
}

// checkForward refuses a ContextualCommand (framed) beyond max_body_bytes:
// the history (of history bytes) and the command do not fit in what the
// filter may hand the logic.
func (s *Stream) checkForward(history int, framed []byte) *Status {
	if len(framed) <= s.p.cfg.MaxBodyBytes {
		return nil
	}
	return s.historyTooLarge(fmt.Sprintf("its history since the last snapshot (%d bytes) and the command make a request of %d bytes",
		history, len(framed)))
}

// historyTooLarge is the FAILED_PRECONDITION answer for an aggregate whose
// history cannot go to the logic, or would not after an append: not
// RESOURCE_EXHAUSTED, which says the caller's own message was too large
// (or a quota ran out) and invites a retry, while here no retry or smaller
// command helps until the aggregate has a snapshot. The message says what
// to do and that nothing is lost.
func (s *Stream) historyTooLarge(what string) *Status {
	root := rootString(s.cover.Root)
	return statusf(FailedPrecondition, "aggregate %s/%s: %s; a command can carry at most %d bytes of history and command to the business logic "+
		"(max_body_bytes; the logic's gRPC receive limit, 4 MiB by default, bounds it too). Nothing was stored; the history stays readable "+
		"(angzarr events %s %s). Store snapshots: the logic returns snapshot_state with its events, e.g. every snapshotEvery events "+
		"(the domain's setting in the topology), or an operator records one (BusinessCoordinator.Record with snapshot_state)",
		s.cover.Domain, root, what, s.p.cfg.MaxBodyBytes, s.cover.Domain, root)
}

// eventServiceStatus maps an event-service failure to the command's answer.
func eventServiceStatus(op string, st *Status) *Status {
	switch st.Code {
	case InvalidArgument:
		return statusf(InvalidArgument, "event service refused the %s: %s", op, st.Message)
	case FailedPrecondition:
		// A history beyond the event service's bound (nothing stored):
		// its message says what to do.
		return statusf(FailedPrecondition, "event service refused the %s: %s", op, st.Message)
	default:
		return statusf(Unavailable, "event service %s failed (%d): %s", op, st.Code, st.Message)
	}
}

// onCommandLoaded decides what to forward to the logic once the aggregate
// is loaded: the ContextualCommand, or a probe for an idempotent repeat.
func (s *Stream) onCommandLoaded(resp *wire.LoadResponse) {
	if prior := resp.Prior; prior != nil {
		s.probeBook = prior.Book
		s.forwardProbe(wire.CommandResponse(prior.Book, s.cover), OutcomeDuplicate)
		return
	}
	next := resp.NextSequence
	if want := s.cmd.Pages[0].Sequence; !s.cmd.AutoResequence && want != next {
		s.fail(conflictStatus(s.cover, want, next, ""), OutcomeAborted)
		return
	}
	s.expected = next
	s.forwardCommand(resp.Book)
}

// forwardCommand forwards the command with its history (raw EventBook) as
// the logic's ContextualCommand. It is built in the plugin's reusable
// buffer: the host copies the body out in SetBuffer (proxy_set_buffer_bytes
// copies in Envoy and wasmhost), so the buffer is free again at once, and
// the bytes of every command's history are no garbage for the collector
// (whose pause grows with the garbage; see filter/internal/abi/gc.go). A
// buffer grown past maxForwardBuf is not kept. The two are not forwarded
// when they are beyond what the filter may hand the logic (checkForward).
func (s *Stream) forwardCommand(bookRaw []byte) {
	s.history = len(bookRaw)
	b := wire.AppendFramedContextualCommand(s.p.forwardBuf, bookRaw, s.cover, s.cmd)
	if st := s.checkForward(len(bookRaw), b); st != nil {
		s.fail(st, OutcomeTooLarge)
	} else {
		s.forward(b)
	}
	if cap(b) <= maxForwardBuf {
		s.p.forwardBuf = b[:0]
	}
}

// maxForwardBuf bounds the buffer forwardCommand keeps between commands.
const maxForwardBuf = 256 << 10

// forward replaces the request body with framed (a gRPC message frame) and
// lets the request go to the business logic.
func (s *Stream) forward(framed []byte) {
	if err := s.host().SetBuffer(RequestBody, framed); err != nil {
		s.fail(statusf(Internal, "replace request body: %v", err), OutcomeError)
		return
	}
	s.resume(StreamRequest)
}

// forwardProbe sends the logic a no-op command (no pages) and remembers the
// answer (an encoded CommandResponse) that replaces its response.
func (s *Stream) forwardProbe(answer []byte, o Outcome) {
	s.probe, s.probeOutcome = answer, o
	s.forward(wire.FramedContextualCommand(nil, s.cover, &wire.CommandBook{Cover: s.cover}))
}

// startRecord validates an EventBook for Record and appends it right away,
// in the request phase, so that failures are local replies.
func (s *Stream) startRecord(book *wire.EventBook) {
	if book.Cover != nil {
		s.domain = book.Cover.Domain
	}
	if st := validateRecord(s.p.cfg, book); st != nil {
		s.fail(st, OutcomeInvalid)
		return
	}
	s.setCorrelation(book.Cover)
	if p := book.Pages[0]; p.HasNum {
		s.expected = p.Num
	}
	for i, p := range book.Pages {
		if !p.HasNum && !p.Force {
			p.HasNum, p.Num = true, s.expected+uint32(i)
		}
	}
	if book.SnapshotState != nil {
		// A snapshot starts the history afresh, whatever its size: the
		// way out for an aggregate whose history no command can carry.
		s.appendPages(book.Pages, book.SnapshotState, (*Stream).onRecordStored, func(s *Stream) { s.reportConflict("") })
		return
	}
	s.record = book
	// Loaded first: an append that would take the history beyond what a
	// command can carry is refused before anything is stored.
	s.load((*Stream).onRecordLoaded)
}

// onRecordLoaded appends a Record's events once the history's size says
// they fit (an idempotent repeat appends as it is: the event service
// answers with the first append).
func (s *Stream) onRecordLoaded(resp *wire.LoadResponse) {
	book := s.record
	s.record = nil
	if resp.Prior == nil {
		if st := s.historyFits(len(resp.Book), book.Pages, book.SnapshotState); st != nil {
			s.fail(st, OutcomeTooLarge)
			return
		}
	}
	s.appendPages(book.Pages, book.SnapshotState, (*Stream).onRecordStored, func(s *Stream) { s.reportConflict("") })
}

// onRecordStored answers a Record whose events were stored.
func (s *Stream) onRecordStored(resp *wire.AppendResponse) {
	o := OutcomeOK
	if resp.Duplicate {
		o = OutcomeDuplicate
	}
	s.forwardProbe(wire.CommandResponse(resp.Book, s.cover), o)
}
