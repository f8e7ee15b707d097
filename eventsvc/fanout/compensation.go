package fanout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	"github.com/angzarr-mesh/angzarr/internal/sagakey"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// DefaultFailureDomain is where refused saga commands are recorded
// (SagaFailed) when FanoutConfig.failure_domain is empty.
const DefaultFailureDomain = "saga-failures"

// DefaultCompensationFallback is what is done about a refused saga command
// whose origin aggregate does not answer its SagaCompensation, when the
// subscription names no compensation_fallback: record the failure, then
// park the command for an operator.
var DefaultCompensationFallback = []pb.CompensationAction{
	pb.CompensationAction_COMPENSATION_ACTION_RECORD_FAILURE,
	pb.CompensationAction_COMPENSATION_ACTION_DEAD_LETTER,
}

// compensate handles the index-th command of the saga's answer to trigger,
// refused by its target with refusal. It tells the aggregate whose event
// triggered the saga, through that aggregate's coordinator (its own
// filter), with a SagaCompensation command under an idempotency key of its
// own (CompensationKey), retrying transient failures like any saga
// command. The aggregate's logic either stores compensating events (done),
// or refuses the command with a CompensationRequest in the status details:
// the framework then does the requested actions (unknown ones ignored;
// none known means the fallback). Any other answer (the
// logic does not know the command, fails, or cannot be reached) gets the
// saga's fallback (Subscription.compensation_fallback, default
// DefaultCompensationFallback). Every outcome is counted in
// angzarr.saga.compensation.total and logged: nothing is dropped silently.
// It returns an error only when ctx ended first.
func (s *sagaDelivery) compensate(ctx context.Context, trigger *pb.EventBook, index int, cmd *pb.CommandBook, refusal error) error {
	st := grpcStatus(refusal)
	comp := &pb.SagaCompensation{
		Origin: cmd.GetSagaOrigin(), RefusedCommand: cmd, CommandIndex: uint32(index),
		Code: int32(st.Code()), Reason: st.Message(),
	}
	domain := trigger.GetCover().GetDomain()
	log := s.d.log.With("subscriber", s.sub.GetName(), "domain", domain, "root", rootString(trigger.GetCover().GetRoot()),
		"sequence", comp.GetOrigin().GetTriggeringEventSequence(), "command_index", index,
		"command_domain", cmd.GetCover().GetDomain(), "refusal", refusal)

	page, err := anypb.New(comp)
	if err != nil {
		return err
	}
	ccmd := &pb.CommandBook{
		Cover:          trigger.GetCover(),
		Pages:          []*pb.CommandPage{{Command: page}},
		AutoResequence: true,
		IdempotencyKey: CompensationKey(comp.GetOrigin(), index),
	}
	var n int
	if s.origin != nil {
		n, err = s.origin(ctx, comp, index)
	} else {
		var resp *pb.CommandResponse
		resp, _, err = s.send(ctx, ccmd)
		n = len(resp.GetEvents().GetPages())
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var (
		actions  []pb.CompensationAction
		reason   string
		fallback bool
	)
	req, ok := compensationRequest(err)
	requested := slices.DeleteFunc(slices.Clone(req.GetActions()), func(a pb.CompensationAction) bool {
		_, known := pb.CompensationAction_name[int32(a)]
		return !known || a == pb.CompensationAction_COMPENSATION_ACTION_UNSPECIFIED
	})
	switch {
	case err == nil:
		s.d.metrics.compensation(ctx, s.sub.GetName(), domain, "compensated", false)
		log.InfoContext(ctx, "saga command refused, compensated by its origin", "events", n)
		return nil
	case ok && len(requested) > 0:
		actions, reason = requested, req.GetReason()
	case ok:
		actions, reason, fallback = s.fallback(), "the origin asked for no action: "+req.GetReason(), true
	default:
		actions, reason, fallback = s.fallback(), "the origin did not compensate: "+err.Error(), true
	}
	failed := &pb.SagaFailed{Compensation: comp, Actions: actions, Reason: reason, Fallback: fallback}
	for _, a := range actions {
		outcome := ""
		switch a {
		case pb.CompensationAction_COMPENSATION_ACTION_RECORD_FAILURE:
			if err := s.recordFailure(ctx, trigger, failed); err != nil {
				return err
			}
			outcome = "recorded"
		case pb.CompensationAction_COMPENSATION_ACTION_DEAD_LETTER:
			s.d.park(ctx, domain, &pb.DeadLetter{
				Subscriber: s.sub.GetName(), Kind: s.sub.GetKind(), Book: trigger, Command: cmd, CommandIndex: uint32(index),
				Cause: pb.DeadLetterCause_DEAD_LETTER_CAUSE_REFUSED, Attempts: 1,
			}, fmt.Errorf("%w (compensation: %s)", refusal, reason))
			if ctx.Err() != nil {
				return ctx.Err()
			}
			outcome = "dead_lettered"
		case pb.CompensationAction_COMPENSATION_ACTION_ESCALATE:
			log.ErrorContext(ctx, "saga command refused: escalated", "reason", reason, "fallback", fallback)
			if err := s.d.escalate(ctx, failed); err != nil {
				log.ErrorContext(ctx, "saga refusal escalation webhook failed", "webhook", s.d.opts.EscalationWebhook, "err", err)
			}
			outcome = "escalated"
		case pb.CompensationAction_COMPENSATION_ACTION_STOP:
			outcome = "stopped"
		default:
			continue
		}
		s.d.metrics.compensation(ctx, s.sub.GetName(), domain, outcome, fallback)
		if outcome == "stopped" {
			break
		}
	}
	log.WarnContext(ctx, "saga command refused, not compensated by its origin", "actions", actions, "reason", reason, "fallback", fallback)
	return nil
}

// fallback is the saga's compensation fallback.
func (s *sagaDelivery) fallback() []pb.CompensationAction {
	if f := s.sub.GetCompensationFallback(); len(f) > 0 {
		return f
	}
	return DefaultCompensationFallback
}

// recordFailure appends failed as a SagaFailed event to the failure
// domain, on the aggregate with the trigger's root, at its end, under an
// idempotency key derived from the origin (FailureKey): a redelivery
// records it once. It retries the store with backoff until it succeeds or
// ctx is done.
func (s *sagaDelivery) recordFailure(ctx context.Context, trigger *pb.EventBook, failed *pb.SagaFailed) error {
	ev, err := anypb.New(failed)
	if err != nil {
		return err
	}
	root, err := uuid.FromBytes(trigger.GetCover().GetRoot().GetValue())
	if err != nil {
		return fmt.Errorf("saga %s: trigger root: %w", s.sub.GetName(), err)
	}
	domain := s.d.failureDomain()
	req := &store.AppendRequest{
		Aggregate:      store.Aggregate{Domain: domain, Root: root},
		CorrelationID:  trigger.GetCover().GetCorrelationId(),
		Pages:          []*pb.EventPage{{Sequence: &pb.EventPage_Force{Force: true}, Event: ev}},
		IdempotencyKey: FailureKey(failed.GetCompensation().GetOrigin(), int(failed.GetCompensation().GetCommandIndex())),
	}
	for try := 1; ; try++ {
		_, err := s.d.st.Append(ctx, req)
		if err == nil {
			s.d.Notify(domain)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.d.log.Error("fanout: recording a saga failure failed", "subscriber", s.sub.GetName(), "failure_domain", domain, "err", err)
		if !s.d.backoff.sleep(ctx, try) {
			return ctx.Err()
		}
	}
}

// CompensationKey is the idempotency key of the SagaCompensation sent for
// the index-th command a saga issued for one triggering event: distinct
// from the command's own (IdempotencyKey) and stable across redeliveries.
func CompensationKey(origin *pb.SagaCommandOrigin, index int) string {
	t := origin.GetTriggeringAggregate()
	return sagakey.Key(origin.GetSagaName()+"#compensation", t.GetDomain(), t.GetRoot().GetValue(), origin.GetTriggeringEventSequence(), index)
}

// FailureKey is the idempotency key of the SagaFailed event recorded for
// the index-th command a saga issued for one triggering event.
func FailureKey(origin *pb.SagaCommandOrigin, index int) string {
	t := origin.GetTriggeringAggregate()
	return sagakey.Key(origin.GetSagaName()+"#failure", t.GetDomain(), t.GetRoot().GetValue(), origin.GetTriggeringEventSequence(), index)
}

// compensationRequest returns the CompensationRequest among err's status
// details, if there is one.
func compensationRequest(err error) (*pb.CompensationRequest, bool) {
	if err == nil {
		return nil, false
	}
	for _, d := range grpcStatus(err).Details() {
		if r, ok := d.(*pb.CompensationRequest); ok {
			return r, true
		}
	}
	return nil, false
}

// grpcStatus is err's gRPC status, however wrapped (UNKNOWN without one).
func grpcStatus(err error) *status.Status {
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		return se.GRPCStatus()
	}
	return status.New(codes.Unknown, err.Error())
}

// escalate POSTs failed as JSON to Options.EscalationWebhook (nothing when
// none is set), within Options.CallTimeout; a status other than 2xx is an
// error.
func (d *Dispatcher) escalate(ctx context.Context, failed *pb.SagaFailed) error {
	if d.opts.EscalationWebhook == "" {
		return nil
	}
	body, err := protojson.Marshal(failed)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, d.opts.CallTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.opts.EscalationWebhook, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}
