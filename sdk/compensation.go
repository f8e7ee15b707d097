package sdk

import (
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// OnCompensation registers the handler of the framework's
// angzarr.SagaCompensation: the command an aggregate receives when a
// command that a saga issued because of one of its events was refused by
// its target. The handler returns compensating events (stored like any
// decision; none acknowledges the refusal), or RequestCompensation to ask
// the framework to record the failure, dead-letter the command, escalate
// or stop. An aggregate without this handler gets the saga's fallback
// (by default: the failure recorded and the command dead-lettered).
//
//	sdk.OnCompensation(a, func(s *OrderState, c *angzarr.SagaCompensation) ([]proto.Message, error) {
//		if _, ok := sdk.RefusedCommand[*examples.ReserveStock](c); ok {
//			return []proto.Message{&examples.OrderCancelled{Reason: "out of stock: " + c.GetReason()}}, nil
//		}
//		return nil, sdk.RequestCompensation("nothing to undo", angzarr.CompensationAction_COMPENSATION_ACTION_RECORD_FAILURE)
//	})
func OnCompensation[S proto.Message](a *Aggregate[S], handle func(state S, c *angzarr.SagaCompensation) ([]proto.Message, error)) {
	On(a, handle)
}

// RefusedCommand returns the refused command of c (its first page) as a C,
// and false when it is of another type.
func RefusedCommand[C proto.Message](c *angzarr.SagaCompensation) (C, bool) {
	var zero C
	pages := c.GetRefusedCommand().GetPages()
	if len(pages) == 0 || messageName(pages[0].GetCommand().GetTypeUrl()) != nameOf[C]() {
		return zero, false
	}
	cmd, err := unpack[C](pages[0].GetCommand())
	if err != nil {
		return zero, false
	}
	return cmd, true
}

// CompensationRequest is what a compensation handler returns, as its
// error, to ask the framework to act instead of storing compensating
// events. An Aggregate answers it with a decision whose only event is the
// angzarr.CompensationRequest (see that message): the filter stores
// nothing and answers FAILED_PRECONDITION with the request among the
// status details, which the dispatcher reads. The request travels in the
// answer's message rather than in grpc-status-details-bin because the
// filter runs the logic again by unary gRPC callout after a write
// conflict, and Envoy gives a plugin no trailers of a unary callout. A
// process manager's handler returns it as an error too; the dispatcher
// calls the PM directly and reads it from the status (GRPCStatus).
type CompensationRequest struct {
	// Actions are done in order; empty means the saga's fallback.
	Actions []angzarr.CompensationAction
	// Reason says why, for the failure event, the dead letter and the logs.
	Reason string
}

// RequestCompensation asks the framework to do actions about the refused
// command, e.g. RequestCompensation("payment already refunded",
// angzarr.CompensationAction_COMPENSATION_ACTION_STOP).
func RequestCompensation(reason string, actions ...angzarr.CompensationAction) error {
	return &CompensationRequest{Actions: actions, Reason: reason}
}

// Error names the actions and the reason.
func (r *CompensationRequest) Error() string {
	names := make([]string, len(r.Actions))
	for i, a := range r.Actions {
		names[i] = strings.TrimPrefix(a.String(), "COMPENSATION_ACTION_")
	}
	return fmt.Sprintf("compensation requested (%s): %s", strings.Join(names, ", "), r.Reason)
}

// GRPCStatus is FAILED_PRECONDITION with the request among its details.
func (r *CompensationRequest) GRPCStatus() *status.Status {
	st := status.New(codes.FailedPrecondition, r.Error())
	if with, err := st.WithDetails(&angzarr.CompensationRequest{Actions: r.Actions, Reason: r.Reason}); err == nil {
		return with
	}
	return st
}

// decision is the logic's answer carrying r: one page whose event is the
// angzarr.CompensationRequest.
func (r *CompensationRequest) decision(cover *angzarr.Cover) (*angzarr.EventBook, error) {
	ev, err := anypb.New(&angzarr.CompensationRequest{Actions: r.Actions, Reason: r.Reason})
	if err != nil {
		return nil, err
	}
	return &angzarr.EventBook{Cover: cover, Pages: []*angzarr.EventPage{{Event: ev}}}, nil
}

// CompensationRequested is what the framework answers for a decision that
// carries a CompensationRequest (as an Aggregate answers RequestCompensation):
// a FAILED_PRECONDITION error with the request among its status details.
// nil when book carries none. Tests that call a logic directly use it to
// see the answer as the dispatcher does.
func CompensationRequested(book *angzarr.EventBook) error {
	for _, p := range book.GetPages() {
		req := &angzarr.CompensationRequest{}
		if messageName(p.GetEvent().GetTypeUrl()) != nameOf[*angzarr.CompensationRequest]() || p.GetEvent().UnmarshalTo(req) != nil {
			continue
		}
		st := status.New(codes.FailedPrecondition, "compensation requested: "+req.GetReason())
		if with, err := st.WithDetails(req); err == nil {
			st = with
		}
		return st.Err()
	}
	return nil
}
