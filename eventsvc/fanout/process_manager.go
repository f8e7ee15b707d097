package fanout

import (
	"cmp"
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	"github.com/angzarr-mesh/angzarr/internal/sagakey"
	"github.com/angzarr-mesh/angzarr/internal/telemetry"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// ProcessManagerNamespace is the UUID namespace of process-manager stream
// roots: a workflow's root is the UUIDv5 of its correlation id in it
// (ProcessManagerRoot). The client's correlation id never becomes a key
// itself.
var ProcessManagerNamespace = uuid.MustParse("6f1d4c52-5a43-4a0e-9a55-9f4b1b3b8d21")

// maxStepConflicts bounds how often one step is decided again after a
// write conflict on the PM's stream before the delivery fails (and is
// retried with backoff by the worker).
const maxStepConflicts = 16

// ProcessManagerRoot is the root of the workflow stream of correlationID
// in a process manager's domain.
func ProcessManagerRoot(correlationID string) uuid.UUID {
	return uuid.NewSHA1(ProcessManagerNamespace, []byte(correlationID))
}

// ProcessManagerDomain is the domain of a process manager's streams:
// Subscription.domain, default its name.
func ProcessManagerDomain(sub *pb.Subscription) string {
	return cmp.Or(sub.GetDomain(), sub.GetName())
}

// StepKey is the idempotency key of the step a process manager stores for
// one triggering event (the append of its PM events and its
// ProcessManagerStep): a redelivered event finds the step it already
// stored (store.Loaded.Prior) instead of deciding again.
func StepKey(pmName string, trigger *pb.Cover, seq uint32) string {
	return sagakey.Key(pmName+"#step", trigger.GetDomain(), trigger.GetRoot().GetValue(), seq, 0)
}

// pmDelivery feeds a process manager (angzarr.ProcessManager/Handle) one
// page of a log entry at a time. For each event with a correlation id it
// loads the workflow's stream (ProcessManagerDomain, ProcessManagerRoot),
// calls Handle, appends the PM's events and a ProcessManagerStep holding
// the prepared commands in one append under the step's idempotency key
// (StepKey) with the expected sequence, decides again on a write
// conflict, and then executes the commands like a saga's (each on its
// own, refusals compensated). The commands' origin is the PM's stream and
// the step's sequence, so their keys (IdempotencyKey) derive from the PM
// stream's position; a refused one is compensated by the PM itself: it is
// called again with the SagaCompensation and its answer is stored as a
// step of its own (CompensationKey).
//
// Exactly once: a step is stored once (its key); a redelivery of the
// trigger finds it (store.Loaded.Prior) and sends the stored commands
// again under the same keys, which their targets apply once. An event
// without a correlation id belongs to no workflow and is skipped.
type pmDelivery struct {
	*sagaDelivery
	domain string
}

func newPMDelivery(d *Dispatcher, sub *pb.Subscription) *pmDelivery {
	p := &pmDelivery{sagaDelivery: &sagaDelivery{d: d, sub: sub}, domain: ProcessManagerDomain(sub)}
	p.origin = p.compensation
	return p
}

// deliver handles each page of book as one step of its workflow.
func (p *pmDelivery) deliver(ctx context.Context, book *pb.EventBook) error {
	corr := book.GetCover().GetCorrelationId()
	if corr == "" {
		p.d.log.DebugContext(ctx, "process manager: event without correlation id skipped", "subscriber", p.sub.GetName(),
			"domain", book.GetCover().GetDomain(), "root", rootString(book.GetCover().GetRoot()))
		return nil
	}
	for _, page := range book.GetPages() {
		trigger := &pb.EventBook{Cover: book.GetCover(), Pages: []*pb.EventPage{page}, Position: book.GetPosition()}
		req := &pb.ProcessManagerRequest{Trigger: trigger}
		step := &pb.ProcessManagerStep{Trigger: book.GetCover(), TriggerSequence: page.GetNum()}
		if _, err := p.step(ctx, corr, StepKey(p.sub.GetName(), book.GetCover(), page.GetNum()), req, step); err != nil {
			return err
		}
	}
	return nil
}

// compensation tells the process manager that a command it issued was
// refused: a step of its own, under CompensationKey. It retries transient
// failures like a saga command; the PM's refusal (with or without a
// CompensationRequest) is returned as it is for compensate to act on.
func (p *pmDelivery) compensation(ctx context.Context, comp *pb.SagaCompensation, index int) (int, error) {
	corr := comp.GetOrigin().GetTriggeringAggregate().GetCorrelationId()
	req := &pb.ProcessManagerRequest{Compensation: comp}
	step := &pb.ProcessManagerStep{Compensation: comp}
	for attempt := 1; ; attempt++ {
		n, err := p.step(ctx, corr, CompensationKey(comp.GetOrigin(), index), req, step)
		if err == nil || ctx.Err() != nil || BusinessRefusal(err) || attempt >= p.d.opts.MaxAttempts {
			return n, err
		}
		if !p.d.backoff.sleep(ctx, attempt) {
			return 0, err
		}
	}
}

// step decides, stores and executes one step of the workflow corr: req
// is what Handle gets besides the state, step the ProcessManagerStep to
// store with the commands. It returns the number of PM events stored
// (zero for a step found already stored).
func (p *pmDelivery) step(ctx context.Context, corr, key string, req *pb.ProcessManagerRequest, step *pb.ProcessManagerStep) (int, error) {
	cmds, at, n, err := p.decide(ctx, corr, key, req, step)
	if err != nil {
		return 0, err
	}
	cover := store.Aggregate{Domain: p.domain, Root: ProcessManagerRoot(corr)}.Cover(corr)
	return n, p.execute(ctx, cover, at, cmds)
}

// decide decides and stores one step of the workflow corr (step's
// arguments), or finds it stored under key. It returns the step's
// prepared commands, the sequence of its ProcessManagerStep and the
// number of PM events it stored (zero for a step found stored); no
// commands when the PM decided nothing (nothing is stored then).
func (p *pmDelivery) decide(ctx context.Context, corr, key string, req *pb.ProcessManagerRequest, step *pb.ProcessManagerStep) ([]*pb.CommandBook, uint32, int, error) {
	agg := store.Aggregate{Domain: p.domain, Root: ProcessManagerRoot(corr)}
	cover := agg.Cover(corr)
	conn, err := p.d.conns.get(p.sub.GetAddress())
	if err != nil {
		return nil, 0, 0, err
	}
	pm := pb.NewProcessManagerClient(conn)
	for try := 1; ; try++ {
		loaded, err := p.fetch(ctx, agg, key)
		if err != nil {
			return nil, 0, 0, err
		}
		if loaded.Prior != nil { // stored before: send its commands again
			stored, at, err := storedStep(loaded.Prior.Pages)
			if err != nil {
				return nil, 0, 0, fmt.Errorf("process manager %s: workflow %s: %w", p.sub.GetName(), agg, err)
			}
			return stored, at, 0, nil
		}
		req.State = &pb.EventBook{Cover: cover, Snapshot: loaded.Snapshot, Pages: loaded.Pages}
		cctx, cancel := context.WithTimeout(ctx, p.d.opts.CallTimeout)
		resp, err := pm.Handle(cctx, req)
		cancel()
		if err != nil {
			return nil, 0, 0, fmt.Errorf("process manager %s at %s: %w", p.sub.GetName(), p.sub.GetAddress(), err)
		}
		if len(resp.GetEvents()) == 0 && len(resp.GetCommands()) == 0 {
			return nil, 0, 0, nil // nothing decided, nothing to store
		}
		pages := make([]*pb.EventPage, 0, len(resp.GetEvents())+1)
		for i, ev := range resp.GetEvents() {
			if ev.GetTypeUrl() == "" {
				return nil, 0, 0, &RefusedError{Saga: p.sub.GetName(), Index: i, Reason: "an event without a type"}
			}
			pages = append(pages, &pb.EventPage{Sequence: &pb.EventPage_Num{Num: loaded.Next + uint32(i)}, Event: ev})
		}
		at := loaded.Next + uint32(len(pages))
		origin := &pb.SagaCommandOrigin{SagaName: p.sub.GetName(), TriggeringAggregate: cover, TriggeringEventSequence: at}
		cmds, err := SagaCommands(p.sub, origin, resp.GetCommands())
		if err != nil {
			return nil, 0, 0, err
		}
		st := proto.Clone(step).(*pb.ProcessManagerStep)
		st.Commands = cmds
		ev, err := anypb.New(st)
		if err != nil {
			return nil, 0, 0, err
		}
		pages = append(pages, &pb.EventPage{Sequence: &pb.EventPage_Num{Num: at}, Event: ev})
		res, err := p.d.st.Append(ctx, &store.AppendRequest{
			Aggregate: agg, CorrelationID: corr, Expected: loaded.Next, Pages: pages,
			IdempotencyKey: key, Trace: store.TraceOf(ctx),
		})
		if errors.Is(err, store.ErrConflict) && try < maxStepConflicts {
			p.d.metrics.pmConflict(ctx, p.sub.GetName())
			continue // another step of the workflow came first: decide again
		}
		if err != nil {
			return nil, 0, 0, fmt.Errorf("process manager %s: storing workflow %s: %w", p.sub.GetName(), agg, err)
		}
		if res.Duplicate { // stored concurrently under the same key: send what was stored
			if cmds, at, err = storedStep(res.Pages); err != nil {
				return nil, 0, 0, fmt.Errorf("process manager %s: workflow %s: %w", p.sub.GetName(), agg, err)
			}
		} else {
			p.d.Notify(p.domain)
		}
		return cmds, at, len(pages) - 1, nil
	}
}

// fetch loads the workflow's stream and the step stored under key, if
// any, in the span orchestration.fetch.
func (p *pmDelivery) fetch(ctx context.Context, agg store.Aggregate, key string) (_ *store.Loaded, err error) {
	ctx, span := p.d.tracer.Start(ctx, spanFetch, trace.WithAttributes(
		attribute.String("domain", agg.Domain), attribute.String("root", agg.Root.String()),
		attribute.String(telemetry.CorrelationKey, telemetry.CorrelationID(ctx)),
		attribute.String("process_manager", p.sub.GetName())))
	defer func() { endSpan(span, err) }()
	loaded, err := p.d.st.Load(ctx, agg, store.LoadQuery{IdempotencyKey: key}) // the whole history: MaxBytes 0
	if err != nil {
		return nil, fmt.Errorf("process manager %s: loading workflow %s: %w", p.sub.GetName(), agg, err)
	}
	return loaded, nil
}

// execute sends a stored step's commands, each on its own (command); the
// step's book (the PM's cover, the ProcessManagerStep's sequence) is the
// trigger their dead letters and compensations name.
func (p *pmDelivery) execute(ctx context.Context, cover *pb.Cover, at uint32, cmds []*pb.CommandBook) error {
	book := &pb.EventBook{Cover: cover, Pages: []*pb.EventPage{{Sequence: &pb.EventPage_Num{Num: at}}}}
	for i, cmd := range cmds {
		if err := p.command(ctx, book, i, cmd); err != nil {
			return err
		}
	}
	return nil
}

// storedStep finds the ProcessManagerStep among a stored step's pages
// (its last one) and returns its commands and sequence.
func storedStep(pages []*pb.EventPage) ([]*pb.CommandBook, uint32, error) {
	for i := len(pages) - 1; i >= 0; i-- {
		var st pb.ProcessManagerStep
		if pages[i].GetEvent().MessageIs(&st) {
			if err := pages[i].GetEvent().UnmarshalTo(&st); err != nil {
				return nil, 0, fmt.Errorf("stored step: %w", err)
			}
			return st.GetCommands(), pages[i].GetNum(), nil
		}
	}
	return nil, 0, errors.New("stored step has no ProcessManagerStep")
}
