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
// the returned commands, in order, against the target domains'
// angzarr.BusinessCoordinator/Handle.
type sagaDelivery struct {
	d   *Dispatcher
	sub *pb.Subscription
}

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
		for _, cmd := range cmds {
			if err := s.execute(ctx, cmd); err != nil {
				return err
			}
		}
		s.d.metrics.commands(ctx, s.sub.GetName(), len(cmds))
	}
	return nil
}

// execute sends one command to its domain's coordinator, in the span
// orchestration.execute.
func (s *sagaDelivery) execute(ctx context.Context, cmd *pb.CommandBook) (err error) {
	domain := cmd.GetCover().GetDomain()
	ctx = telemetry.WithCorrelationID(ctx, cmd.GetCover().GetCorrelationId()) // the command's, for its call
	ctx, span := s.d.tracer.Start(ctx, spanExecute, trace.WithAttributes(
		attribute.String("domain", domain),
		attribute.String("root", rootString(cmd.GetCover().GetRoot())),
		attribute.String(telemetry.CorrelationKey, cmd.GetCover().GetCorrelationId()),
		attribute.String("saga", s.sub.GetName()),
		attribute.String("idempotency_key", cmd.GetIdempotencyKey()),
	))
	defer func() { endSpan(span, err) }()
	addr, err := s.d.endpoint(domain)
	if err != nil {
		return fmt.Errorf("saga %s: %w", s.sub.GetName(), err)
	}
	conn, err := s.d.conns.get(addr)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, s.d.opts.CallTimeout)
	defer cancel()
	if _, err := pb.NewBusinessCoordinatorClient(conn).Handle(cctx, cmd); err != nil {
		return fmt.Errorf("saga %s: command for %s at %s: %w", s.sub.GetName(), domain, addr, err)
	}
	return nil
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
