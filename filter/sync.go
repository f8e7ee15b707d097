package filter

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/angzarr-mesh/angzarr/filter/config"
	"github.com/angzarr-mesh/angzarr/filter/internal/wire"
	"github.com/angzarr-mesh/angzarr/internal/sagakey"
)

// Sync modes (angzarr.SyncMode).
const (
	syncNone    int32 = 0
	syncSimple  int32 = 1
	syncCascade int32 = 2
)

// Request metadata that carries a cascade from one domain's filter to the
// next: how many saga hops deep the command is (the client's command is
// 0), and the aggregates already in the cascade as comma-separated
// "domain/root" entries, the first being the client's aggregate.
const (
	CascadeDepthHeader = "x-angzarr-cascade-depth"
	CascadePathHeader  = "x-angzarr-cascade-path"
)

// Services the sync modes call.
const (
	projectorService = "angzarr.Projector"
	sagaService      = "angzarr.Saga"
	// pmCoordinatorService is served by the event service.
	pmCoordinatorService = "angzarr.ProcessManagerCoordinator"
	coordinatorService   = "angzarr.BusinessCoordinator"
)

// syncRun is the synchronous part of a SIMPLE or CASCADE command after its
// events were stored: projector calls (in parallel) and, for CASCADE, the
// saga chain (sequential: each saga of each stored page, each of its
// commands executed before the next).
type syncRun struct {
	// book is the stored EventBook (cover with the correlation id), raw
	// and decoded.
	raw  []byte
	book *wire.EventBook
	// outcome is the command's outcome if the sync part succeeds.
	outcome Outcome
	// local holds each configured projector's projection (by index).
	local [][]byte
	// projections and cascade gather the cascaded commands' results, in
	// execution order.
	projections [][]byte
	cascade     [][]byte
	// pending counts the projector calls and the saga chain in flight.
	pending int
	// failed is the first failure.
	failed *Status
}

// fail records the first failure of the sync part.
func (r *syncRun) fail(st *Status) {
	if r.failed == nil {
		r.failed = st
	}
}

// readCascadeHeaders reads the cascade metadata of a HandleSync request.
func (s *Stream) readCascadeHeaders() {
	s.cascadeDepthHdr, _ = s.host().GetHeader(RequestHeaders, CascadeDepthHeader)
	s.cascadePathHdr, _ = s.host().GetHeader(RequestHeaders, CascadePathHeader)
}

// pathEntry names an aggregate in a cascade path.
func pathEntry(c *wire.Cover) string { return c.Domain + "/" + rootString(c.Root) }

// checkCascade refuses a CASCADE command that is too deep or revisits an
// aggregate of its cascade, before anything is loaded or stored.
func (s *Stream) checkCascade(cover *wire.Cover) (*Status, Outcome) {
	if s.cascadeDepthHdr != "" {
		d, err := strconv.Atoi(s.cascadeDepthHdr)
		if err != nil || d < 0 {
			return statusf(InvalidArgument, "%s: %q is not a cascade depth", CascadeDepthHeader, s.cascadeDepthHdr), OutcomeInvalid
		}
		s.depth = d
	}
	if s.cascadePathHdr != "" {
		s.path = strings.Split(s.cascadePathHdr, ",")
	}
	self := pathEntry(cover)
	shown := strings.Join(append(append([]string(nil), s.path...), self), " -> ")
	if s.depth > s.p.cfg.MaxCascadeDepth {
		s.p.metrics.cascadeRefused(s.domain, "depth")
		return statusf(FailedPrecondition, "cascade depth limit of %d exceeded: the command for %s is %d saga hops deep (cascade path %s); nothing was stored for it",
			s.p.cfg.MaxCascadeDepth, self, s.depth, shown), OutcomeCascadeRefused
	}
	for _, e := range s.path {
		if e == self {
			s.p.metrics.cascadeRefused(s.domain, "cycle")
			return statusf(FailedPrecondition, "cascade cycle: aggregate %s is already in the cascade path %s; nothing was stored for it",
				self, shown), OutcomeCascadeRefused
		}
	}
	return nil, ""
}

// complete answers a stored (or idempotently repeated) command whose
// events are bookRaw: right away without a sync mode, else after the
// synchronous projectors and, for CASCADE, the saga cascade.
func (s *Stream) complete(bookRaw []byte, o Outcome) {
	if s.syncMode == syncNone {
		s.respondFramed(wire.FramedCommandResponse(bookRaw, s.cover), o)
		return
	}
	raw := wire.BookWithCover(bookRaw, s.cover)
	book, err := wire.DecodeEventBook(raw)
	if err != nil {
		s.fail(statusf(Internal, "the event service returned an undecodable EventBook for the stored events: %v", err), OutcomeError)
		return
	}
	cfg := s.p.cfg
	r := &syncRun{raw: raw, book: book, outcome: o, local: make([][]byte, len(cfg.SyncProjectors))}
	s.sync = r
	if s.syncMode == syncCascade {
		s.p.metrics.cascadeDepth(s.domain, s.depth)
	}
	if len(book.Pages) == 0 {
		s.finishSync()
		return
	}
	r.pending = 1 // held until every call is started
	for i := range cfg.SyncProjectors {
		r.pending++
		s.callProjector(r, i)
	}
	if s.syncMode == syncCascade && len(cfg.Sagas)+len(cfg.ProcessManagers) > 0 {
		r.pending++
		s.runSaga(r, 0, 0)
	}
	s.syncDone(r)
}

// syncDone ends one pending part; the last one answers the client.
func (s *Stream) syncDone(r *syncRun) {
	r.pending--
	if r.pending == 0 {
		s.finishSync()
	}
}

// callProjector calls the i-th synchronous projector with the stored
// events.
func (s *Stream) callProjector(r *syncRun, i int) {
	pr := s.p.cfg.SyncProjectors[i]
	start := s.host().Now()
	st := s.p.call(s, pr.Cluster, projectorService, "HandleSync", r.raw, time.Duration(s.p.cfg.ProjectorTimeout),
		func(s *Stream, msg []byte, st *Status) {
			if st == nil {
				if _, err := wire.DecodeProjection(msg); err != nil {
					st = statusf(Internal, "answered an undecodable Projection: %v", err)
				}
			}
			s.p.metrics.projector(pr.Name, st == nil, s.host().Now().Sub(start))
			if st != nil {
				r.fail(&Status{Code: st.Code, Message: fmt.Sprintf("synchronous projector %s failed (%s): %s", pr.Name, codeName(st.Code), st.Message)})
			} else {
				r.local[i] = nonNilBytes(msg)
			}
			s.syncDone(r)
		})
	if st != nil {
		s.p.metrics.projector(pr.Name, false, -1)
		r.fail(&Status{Code: st.Code, Message: "synchronous projector " + pr.Name + ": " + st.Message})
		s.syncDone(r)
	}
}

func nonNilBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// runSaga calls saga j for stored page i (one page per call, as the event
// service's dispatcher does, so each command's origin names its exact
// triggering event), executes its commands, and moves on; the steps j
// past the sagas are the process managers' (runProcessManager). After the
// last step of the last page the chain is done.
func (s *Stream) runSaga(r *syncRun, i, j int) {
	sagas := s.p.cfg.Sagas
	if j == len(sagas)+len(s.p.cfg.ProcessManagers) {
		i, j = i+1, 0
	}
	if i >= len(r.book.Pages) || r.failed != nil {
		s.syncDone(r)
		return
	}
	if j >= len(sagas) {
		s.runProcessManager(r, i, j)
		return
	}
	sg := &sagas[j]
	page := r.book.Pages[i]
	trigger := (&wire.EventBook{Cover: r.book.Cover, Pages: []*wire.EventPage{page}}).Marshal()
	st := s.p.call(s, sg.Cluster, sagaService, "HandleSync", trigger, time.Duration(s.p.cfg.SagaTimeout),
		func(s *Stream, msg []byte, st *Status) {
			var cmds []*wire.CommandBook
			if st == nil {
				var err error
				if cmds, err = wire.DecodeSagaResponse(msg); err != nil {
					st = statusf(Internal, "answered an undecodable SagaResponse: %v", err)
				}
			}
			s.p.metrics.saga(sg.Name, st == nil)
			if st != nil {
				r.fail(&Status{Code: st.Code, Message: fmt.Sprintf("saga %s failed on event %d (%s): %s", sg.Name, page.Num, codeName(st.Code), st.Message)})
				s.syncDone(r)
				return
			}
			if st := s.prepareSagaCommands(sg, r.book.Cover, page.Num, cmds); st != nil {
				r.fail(st)
				s.syncDone(r)
				return
			}
			s.runCommand(r, "saga "+sg.Name, cmds, 0, func() { s.runSaga(r, i, j+1) })
		})
	if st != nil {
		r.fail(&Status{Code: st.Code, Message: "saga " + sg.Name + ": " + st.Message})
		s.syncDone(r)
	}
}

// prepareSagaCommands checks the commands saga sg returned for the event
// seq of the aggregate trigger and sets what the event service's
// dispatcher sets: the saga origin, auto_resequence, the trigger's
// correlation id when the command has none, and the idempotency key
// sagakey.Key(saga, trigger, seq, index) — so the dispatcher's later
// delivery of the same event to the same saga is a no-op.
func (s *Stream) prepareSagaCommands(sg *config.Saga, trigger *wire.Cover, seq uint32, cmds []*wire.CommandBook) *Status {
	origin := &wire.SagaOrigin{SagaName: sg.Name, TriggeringAggregate: trigger, TriggeringEventSequence: seq}
	for i, c := range cmds {
		switch {
		case c.Cover == nil || c.Cover.Domain == "":
			return statusf(Internal, "saga %s returned command %d for event %d without a target domain (cover.domain)", sg.Name, i, seq)
		case !sg.MayTarget(c.Cover.Domain):
			return statusf(Internal, "saga %s returned command %d for domain %q, which is not one of its target domains %v", sg.Name, i, c.Cover.Domain, sg.Targets)
		}
		if _, ok := s.p.cfg.Coordinator(c.Cover.Domain); !ok {
			return statusf(FailedPrecondition, "saga %s: no coordinator cluster is configured for domain %q", sg.Name, c.Cover.Domain)
		}
		c.SetSagaOrigin(origin)
		c.AutoResequence = true
		if c.Cover.CorrelationID == "" {
			c.Cover.CorrelationID = trigger.CorrelationID
		}
		c.IdempotencyKey = sagakey.Key(sg.Name, trigger.Domain, trigger.Root, seq, i)
	}
	return nil
}

// runProcessManager has the event service run the step of process manager
// j-len(sagas) for stored page i (angzarr.ProcessManagerCoordinator/
// HandleSync: the dispatcher's own step, stored under its step key, see
// fanout.ProcessManagerCoordinator), executes the commands it answers,
// already prepared (origin, idempotency key, auto_resequence), and moves
// on. The dispatcher's later delivery of the event finds the step stored
// and sends the same commands under the same keys: they take effect once.
func (s *Stream) runProcessManager(r *syncRun, i, j int) {
	pm := &s.p.cfg.ProcessManagers[j-len(s.p.cfg.Sagas)]
	page := r.book.Pages[i]
	trigger := (&wire.EventBook{Cover: r.book.Cover, Pages: []*wire.EventPage{page}}).Marshal()
	req := wire.ProcessManagerSyncRequest(pm.Name, trigger)
	st := s.p.call(s, s.p.cfg.EventServiceCluster, pmCoordinatorService, "HandleSync", req, time.Duration(s.p.cfg.SagaTimeout),
		func(s *Stream, msg []byte, st *Status) {
			var cmds []*wire.CommandBook
			if st == nil {
				var err error
				if cmds, err = wire.DecodeSagaResponse(msg); err != nil {
					st = statusf(Internal, "answered an undecodable SagaResponse: %v", err)
				}
			}
			if st != nil {
				r.fail(&Status{Code: st.Code, Message: fmt.Sprintf("process manager %s failed on event %d (%s): %s", pm.Name, page.Num, codeName(st.Code), st.Message)})
				s.syncDone(r)
				return
			}
			for k, c := range cmds {
				st := (*Status)(nil)
				switch {
				case c.Cover == nil || c.Cover.Domain == "":
					st = statusf(Internal, "process manager %s: command %d for event %d has no target domain (cover.domain)", pm.Name, k, page.Num)
				case !pm.MayTarget(c.Cover.Domain):
					st = statusf(Internal, "process manager %s: command %d for domain %q, which is not one of its target domains %v", pm.Name, k, c.Cover.Domain, pm.Targets)
				case c.SagaOrigin == nil || c.IdempotencyKey == "":
					st = statusf(Internal, "process manager %s: the event service answered command %d without its origin and idempotency key", pm.Name, k)
				}
				if _, ok := s.p.cfg.Coordinator(c.Cover.Domain); st == nil && !ok {
					st = statusf(FailedPrecondition, "process manager %s: no coordinator cluster is configured for domain %q", pm.Name, c.Cover.Domain)
				}
				if st != nil {
					r.fail(st)
					s.syncDone(r)
					return
				}
			}
			s.runCommand(r, "process manager "+pm.Name, cmds, 0, func() { s.runSaga(r, i, j+1) })
		})
	if st != nil {
		r.fail(&Status{Code: st.Code, Message: "process manager " + pm.Name + ": " + st.Message})
		s.syncDone(r)
	}
}

// runCommand executes the k-th command of a saga or process manager
// (issuer, for messages) through its domain's coordinator with CASCADE,
// then the next; then runs next.
func (s *Stream) runCommand(r *syncRun, issuer string, cmds []*wire.CommandBook, k int, next func()) {
	if k == len(cmds) {
		next()
		return
	}
	c := cmds[k]
	target := c.Cover.Domain
	cluster, _ := s.p.cfg.Coordinator(target)
	path := append(append([]string(nil), s.path...), pathEntry(s.cover))
	md := [][2]string{
		{CascadeDepthHeader, strconv.Itoa(s.depth + 1)},
		{CascadePathHeader, strings.Join(path, ",")},
	}
	req := (&wire.SyncCommandBook{Command: c, SyncMode: syncCascade}).Marshal()
	start := s.host().Now()
	what := fmt.Sprintf("%s: command %d for %s/%s", issuer, k, target, rootString(c.Cover.Root))
	st := s.p.callMD(s, cluster, coordinatorService, "HandleSync", md, req, time.Duration(s.p.cfg.CascadeTimeout),
		func(s *Stream, msg []byte, st *Status) {
			s.p.metrics.cascadeHop(target, s.host().Now().Sub(start))
			var resp *wire.SyncResponse
			if st == nil {
				var err error
				if resp, err = wire.DecodeSyncResponse(msg); err != nil {
					st = statusf(Internal, "answered an undecodable CommandResponse: %v", err)
				}
			}
			if st != nil {
				r.fail(&Status{Code: st.Code, Message: fmt.Sprintf("%s failed (%s): %s", what, codeName(st.Code), st.Message)})
				s.syncDone(r)
				return
			}
			if resp.Events != nil {
				r.cascade = append(r.cascade, resp.Events)
			}
			r.cascade = append(r.cascade, resp.Cascade...)
			r.projections = append(r.projections, resp.Projections...)
			s.runCommand(r, issuer, cmds, k+1, next)
		})
	if st != nil {
		r.fail(&Status{Code: st.Code, Message: what + ": " + st.Message})
		s.syncDone(r)
	}
}

// response is the CommandResponse gathered so far: the command's events,
// the projections (this aggregate's projectors in configuration order,
// then the cascade's in execution order) and the cascade's events.
func (r *syncRun) response() []byte {
	resp := &wire.SyncResponse{Events: r.raw, Cascade: r.cascade}
	for _, p := range r.local {
		if p != nil {
			resp.Projections = append(resp.Projections, p)
		}
	}
	resp.Projections = append(resp.Projections, r.projections...)
	return resp.Marshal()
}

// finishSync answers the client: the gathered CommandResponse, or the
// first failure with what was stored in its details.
func (s *Stream) finishSync() {
	r := s.sync
	if r.failed == nil {
		s.respond(r.response(), r.outcome)
		return
	}
	st := &Status{
		Code: r.failed.Code,
		Message: fmt.Sprintf("the command's events were stored (%s%s), but its synchronous part failed: %s%s",
			pathEntry(s.cover), pageRange(r.book), r.failed.Message, asyncNote()),
		Partial: r.response(),
	}
	s.fail(st, OutcomeSyncFailed)
}

// pageRange renders the sequences of a stored book for messages.
func pageRange(b *wire.EventBook) string {
	if len(b.Pages) == 0 {
		return ", no events"
	}
	first, last := b.Pages[0].Num, b.Pages[len(b.Pages)-1].Num
	if first == last {
		return fmt.Sprintf(" sequence %d", first)
	}
	return fmt.Sprintf(" sequences %d-%d", first, last)
}

// asyncNote reminds that the event service still delivers the events.
func asyncNote() string {
	return "; the event service still delivers the stored events to projectors and sagas asynchronously (the response's details carry what was stored; retry only with an idempotency_key)"
}

// codeName names a gRPC code for messages.
func codeName(c Code) string {
	names := [...]string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
		"PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
		"INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}
	if int(c) < len(names) {
		return names[c]
	}
	return "code " + strconv.Itoa(int(c))
}
