package sdk_test

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/proto/examples"
	"github.com/angzarr-mesh/angzarr/sdk"
)

// TestCompensation: OnCompensation routes the framework's SagaCompensation
// to its handler, RefusedCommand unpacks the refused command by type, and
// RequestCompensation is answered as a decision that CompensationRequested
// turns into FAILED_PRECONDITION with an angzarr.CompensationRequest among
// the details.
func TestCompensation(t *testing.T) {
	a := points()
	sdk.OnCompensation(a, func(s *examples.CustomerState, c *angzarr.SagaCompensation) ([]proto.Message, error) {
		if redeem, ok := sdk.RefusedCommand[*examples.RedeemLoyaltyPoints](c); ok {
			return msgs{&examples.LoyaltyPointsAdded{Points: redeem.Points, NewBalance: s.LoyaltyPoints + redeem.Points}}, nil
		}
		if _, ok := sdk.RefusedCommand[*examples.AddLoyaltyPoints](c); ok {
			t.Fatal("a RedeemLoyaltyPoints unpacked as AddLoyaltyPoints")
		}
		return nil, sdk.RequestCompensation("nothing to undo", angzarr.CompensationAction_COMPENSATION_ACTION_RECORD_FAILURE,
			angzarr.CompensationAction_COMPENSATION_ACTION_STOP)
	})
	compensation := func(refused proto.Message) *angzarr.ContextualCommand {
		cmd, _ := anypb.New(refused)
		comp, _ := anypb.New(&angzarr.SagaCompensation{
			RefusedCommand: &angzarr.CommandBook{Pages: []*angzarr.CommandPage{{Command: cmd}}}, Code: int32(codes.FailedPrecondition), Reason: "no"})
		return &angzarr.ContextualCommand{Command: &angzarr.CommandBook{Pages: []*angzarr.CommandPage{{Command: comp}}}}
	}

	book, err := a.Handle(context.Background(), compensation(&examples.RedeemLoyaltyPoints{Points: 7}))
	var added examples.LoyaltyPointsAdded
	if err != nil || len(book.GetPages()) != 1 || book.GetPages()[0].GetEvent().UnmarshalTo(&added) != nil || added.Points != 7 {
		t.Fatalf("compensating events %v, %v", book, err)
	}

	// A request is answered as a decision whose only event is the
	// angzarr.CompensationRequest (it survives the filter's unary callout,
	// whose trailers Envoy drops); the framework answers it as
	// FAILED_PRECONDITION with the request among the details.
	book, err = a.Handle(context.Background(), compensation(&examples.CreateCustomer{Name: "x"}))
	if err != nil || len(book.GetPages()) != 1 {
		t.Fatalf("request answered %v, %v; want one page", book, err)
	}
	st := status.Convert(sdk.CompensationRequested(book))
	if st.Code() != codes.FailedPrecondition || len(st.Details()) != 1 {
		t.Fatalf("request: %v (%v)", st, st.Details())
	}
	req, ok := st.Details()[0].(*angzarr.CompensationRequest)
	if !ok || req.GetReason() != "nothing to undo" || len(req.GetActions()) != 2 || req.GetActions()[1] != angzarr.CompensationAction_COMPENSATION_ACTION_STOP {
		t.Fatalf("request detail %v", st.Details()[0])
	}
}
