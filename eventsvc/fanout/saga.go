package fanout

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/angzarr-mesh/angzarr/internal/sagakey"
	"github.com/angzarr-mesh/angzarr/internal/telemetry"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// sagaDelivery calls angzarr.Saga/HandleSync once per page of a log entry
// (so each command's origin names the exact triggering event) and executes
// the returned commands against the target domains'
// angzarr.BusinessCoordinator/Handle, each on its own (command).
type sagaDelivery struct {
	d   *Dispatcher
	sub *pb.Subscription
	// origin, when set, tells the origin of a refused command about it
	// instead of its coordinator (a process manager compensates itself):
	// it returns the number of compensating events stored, or the origin's
	// refusal.
	origin func(ctx context.Context, comp *pb.SagaCompensation, index int) (int, error)
}

// deliver returns an error when the saga could not be called or answered
// unusably (the entry is then retried or parked whole), or when ctx ended
// before every command was executed or parked. A command that fails does
// not fail the delivery: it is parked on its own and the others run.
func (s *sagaDelivery) deliver(ctx context.Context, book *pb.EventBook) error {
	conn, err := s.d.conns.get(s.sub.GetAddress())
	if err != nil {
		return err
	}
	saga := pb.NewSagaClient(conn)
	for _, page := range book.GetPages() {
		trigger := &pb.EventBook{Cover: book.GetCover(), Pages: []*pb.EventPage{page}, Position: book.GetPosition()}
		cctx, cancel := context.WithTimeout(ctx, s.d.opts.CallTimeout)
		resp, err := saga.HandleSync(cctx, trigger)
		cancel()
		if err != nil {
			return fmt.Errorf("saga %s at %s: %w", s.sub.GetName(), s.sub.GetAddress(), err)
		}
		origin := &pb.SagaCommandOrigin{SagaName: s.sub.GetName(), TriggeringAggregate: book.GetCover(), TriggeringEventSequence: page.GetNum()}
		cmds, err := SagaCommands(s.sub, origin, resp.GetCommands())
		if err != nil {
			return err
		}
		for i, cmd := range cmds {
			if err := s.command(ctx, trigger, i, cmd); err != nil {
				return err
			}
		}
	}
	return nil
}

// command executes the index-th command the saga returned for trigger, on
// its own (send): a transient failure is retried, a business refusal is
// not. A refused command is compensated (compensate); one that still fails
// after the last attempt is parked in the dead-letter log by itself (the
// trigger, the command, its index, cause EXHAUSTED), and the saga's other
// commands go on. The idempotency key makes every retry, redelivery and
// replay safe. It returns an error only when ctx ended first: the entry is
// then delivered again.
func (s *sagaDelivery) command(ctx context.Context, trigger *pb.EventBook, index int, cmd *pb.CommandBook) error {
	name := s.sub.GetName()
	_, attempts, err := s.send(ctx, cmd)
	switch {
	case err == nil:
		s.d.metrics.command(ctx, name, "ok")
		return nil
	case ctx.Err() != nil:
		return err
	case BusinessRefusal(err):
		s.d.metrics.command(ctx, name, "refused")
		return s.compensate(ctx, trigger, index, cmd, err)
	}
	s.d.metrics.command(ctx, name, "failed")
	s.d.park(ctx, trigger.GetCover().GetDomain(), &pb.DeadLetter{
		Subscriber: name, Kind: s.sub.GetKind(), Book: trigger, Command: cmd, CommandIndex: uint32(index),
		Cause: pb.DeadLetterCause_DEAD_LETTER_CAUSE_EXHAUSTED, Attempts: uint32(attempts),
	}, err)
	return ctx.Err() // nil once parked
}

// send executes cmd, retrying a transient failure (unavailable, deadline
// exceeded, resource exhausted, aborted: a conflict the target's retries
// did not resolve, ...) with backoff up to Options.MaxAttempts; a business
// refusal (BusinessRefusal) is not retried. It returns the answer, the
// attempts made and the last error.
func (s *sagaDelivery) send(ctx context.Context, cmd *pb.CommandBook) (*pb.CommandResponse, int, error) {
	for attempt := 1; ; attempt++ {
		resp, err := s.execute(ctx, cmd, attempt)
		if err == nil || ctx.Err() != nil || BusinessRefusal(err) || attempt >= s.d.opts.MaxAttempts {
			return resp, attempt, err
		}
		s.d.metrics.command(ctx, s.sub.GetName(), "retry")
		s.d.log.DebugContext(ctx, "saga command failed", "subscriber", s.sub.GetName(), "domain", cmd.GetCover().GetDomain(),
			"idempotency_key", cmd.GetIdempotencyKey(), "attempt", attempt, "err", err)
		if !s.d.backoff.sleep(ctx, attempt) {
			return nil, attempt, err
		}
	}
}

// execute sends one command to its domain's coordinator, in the span
// orchestration.execute.
func (s *sagaDelivery) execute(ctx context.Context, cmd *pb.CommandBook, attempt int) (_ *pb.CommandResponse, err error) {
	domain := cmd.GetCover().GetDomain()
	ctx = telemetry.WithCorrelationID(ctx, cmd.GetCover().GetCorrelationId()) // the command's, for its call
	ctx, span := s.d.tracer.Start(ctx, spanExecute, trace.WithAttributes(
		attribute.String("domain", domain),
		attribute.String("root", rootString(cmd.GetCover().GetRoot())),
		attribute.String(telemetry.CorrelationKey, cmd.GetCover().GetCorrelationId()),
		attribute.String("saga", s.sub.GetName()),
		attribute.String("idempotency_key", cmd.GetIdempotencyKey()),
		attribute.Int("attempt", attempt),
	))
	defer func() { endSpan(span, err) }()
	addr, err := s.d.endpoint(domain)
	if err != nil {
		return nil, fmt.Errorf("saga %s: %w", s.sub.GetName(), err)
	}
	conn, err := s.d.conns.get(addr)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, s.d.opts.CallTimeout)
	defer cancel()
	resp, err := pb.NewBusinessCoordinatorClient(conn).Handle(cctx, cmd)
	if err != nil {
		return nil, fmt.Errorf("saga %s: command for %s at %s: %w", s.sub.GetName(), domain, addr, err)
	}
	return resp, nil
}

// SagaCommands checks the commands a saga returned for one triggering
// event and prepares them for execution: each gets the saga origin,
// auto_resequence, the trigger's correlation id when it has none, and the
// idempotency key IdempotencyKey(origin, index). A command without a cover,
// or for a domain outside the saga's target_domains, refuses the whole
// response with a *RefusedError (nothing is executed).
func SagaCommands(sub *pb.Subscription, origin *pb.SagaCommandOrigin, cmds []*pb.CommandBook) ([]*pb.CommandBook, error) {
	out := make([]*pb.CommandBook, len(cmds))
	for i, c := range cmds {
		domain := c.GetCover().GetDomain()
		switch {
		case c.GetCover() == nil || domain == "":
			return nil, &RefusedError{Saga: sub.GetName(), Index: i, Reason: "no target domain (cover.domain)"}
		case !targets(sub, domain):
			return nil, &RefusedError{Saga: sub.GetName(), Index: i, Reason: fmt.Sprintf("domain %q is not one of its target domains %v", domain, sub.GetTargetDomains())}
		}
		cmd := proto.Clone(c).(*pb.CommandBook)
		cmd.SagaOrigin = proto.Clone(origin).(*pb.SagaCommandOrigin)
		cmd.AutoResequence = true
		if cmd.Cover.CorrelationId == "" {
			cmd.Cover.CorrelationId = origin.GetTriggeringAggregate().GetCorrelationId()
		}
		cmd.IdempotencyKey = IdempotencyKey(origin, i)
		out[i] = cmd
	}
	return out, nil
}

// IdempotencyKey derives the idempotency key of the index-th command a saga
// issued for one triggering event with internal/sagakey: "saga-" and the
// hex SHA-256 of the saga name, the triggering domain and root, the
// triggering event sequence and the index. The same trigger always yields
// the same keys, so a command redelivered after a crash is applied once,
// and the filter's CASCADE mode derives the same key for the same command.
func IdempotencyKey(origin *pb.SagaCommandOrigin, index int) string {
	t := origin.GetTriggeringAggregate()
	return sagakey.Key(origin.GetSagaName(), t.GetDomain(), t.GetRoot().GetValue(), origin.GetTriggeringEventSequence(), index)
}
