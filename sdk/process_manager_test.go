package sdk_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/proto/examples"
	"github.com/angzarr-mesh/angzarr/sdk"
)

// tally is a process manager that counts the orders of a workflow: each
// OrderCreated is remembered (Counted) and answered with a credit to the
// customer; a refused credit is remembered as a refusal.
func tally() *sdk.ProcessManager[*wrapperspb.Int32Value] {
	pm := sdk.NewProcessManager("tally", func() *wrapperspb.Int32Value { return &wrapperspb.Int32Value{} })
	sdk.Remember(pm, func(s *wrapperspb.Int32Value, e *wrapperspb.Int32Value) { s.Value += e.GetValue() })
	sdk.Orchestrate(pm, func(s *wrapperspb.Int32Value, src *angzarr.Cover, e *examples.OrderCreated) (sdk.Step, error) {
		if e.GetCustomerId() == "" {
			return sdk.Step{}, sdk.Invalid("an order without a customer")
		}
		credit, err := sdk.Command("customer", uuid.MustParse(e.GetCustomerId()), src.GetCorrelationId(),
			&examples.AddLoyaltyPoints{Points: s.GetValue() + 1, Reason: "order"})
		return sdk.Step{Events: []proto.Message{wrapperspb.Int32(1)}, Commands: []*angzarr.CommandBook{credit}}, err
	})
	return pm
}

// TestProcessManager: the state is rebuilt from the PM's own events (the
// framework's ProcessManagerStep changes nothing), the reaction to the
// trigger's type answers packed events and the commands, an event without
// a reaction gets an empty answer, a reaction's rejection is its status,
// and a refusal without OnRefused is FAILED_PRECONDITION (the fallback).
func TestProcessManager(t *testing.T) {
	pm := tally()
	ctx := context.Background()
	page := func(m proto.Message) *angzarr.EventPage {
		a, err := anypb.New(m)
		if err != nil {
			t.Fatal(err)
		}
		return &angzarr.EventPage{Event: a}
	}
	cust := uuid.New()
	state := &angzarr.EventBook{Pages: []*angzarr.EventPage{page(wrapperspb.Int32(1)), page(&angzarr.ProcessManagerStep{}), page(wrapperspb.Int32(1))}}
	trigger := &angzarr.EventBook{Cover: &angzarr.Cover{Domain: "order", CorrelationId: "wf"}, Pages: []*angzarr.EventPage{page(&examples.OrderCreated{CustomerId: cust.String()})}}

	resp, err := pm.Handle(ctx, &angzarr.ProcessManagerRequest{State: state, Trigger: trigger})
	if err != nil {
		t.Fatal(err)
	}
	var credit examples.AddLoyaltyPoints
	if len(resp.GetEvents()) != 1 || len(resp.GetCommands()) != 1 {
		t.Fatalf("answer %v: want 1 event and 1 command", resp)
	}
	cmd := resp.GetCommands()[0]
	if err := cmd.GetPages()[0].GetCommand().UnmarshalTo(&credit); err != nil || credit.GetPoints() != 3 ||
		cmd.GetCover().GetCorrelationId() != "wf" || cmd.GetCover().GetDomain() != "customer" {
		t.Fatalf("command %v (%v): want 3 points (2 remembered + 1) for the customer in workflow wf", cmd, err)
	}

	other := &angzarr.EventBook{Cover: trigger.GetCover(), Pages: []*angzarr.EventPage{page(&examples.OrderCancelled{})}}
	if resp, err := pm.Handle(ctx, &angzarr.ProcessManagerRequest{State: state, Trigger: other}); err != nil || len(resp.GetEvents())+len(resp.GetCommands()) != 0 {
		t.Fatalf("an event without a reaction: %v, %v; want an empty answer", resp, err)
	}
	bad := &angzarr.EventBook{Cover: trigger.GetCover(), Pages: []*angzarr.EventPage{page(&examples.OrderCreated{})}}
	if _, err := pm.Handle(ctx, &angzarr.ProcessManagerRequest{State: state, Trigger: bad}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("a rejected event: %v, want INVALID_ARGUMENT", err)
	}
	comp := &angzarr.ProcessManagerRequest{State: state, Compensation: &angzarr.SagaCompensation{RefusedCommand: cmd, Reason: "no such customer"}}
	if _, err := pm.Handle(ctx, comp); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("a refusal without OnRefused: %v, want FAILED_PRECONDITION", err)
	}
	if _, err := pm.Handle(ctx, &angzarr.ProcessManagerRequest{State: state}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("neither trigger nor compensation: %v, want INVALID_ARGUMENT", err)
	}

	// OnRefused: the refused command comes back typed; a request is a
	// FAILED_PRECONDITION with the CompensationRequest in its details.
	sdk.OnRefused(pm, func(s *wrapperspb.Int32Value, c *angzarr.SagaCompensation) (sdk.Step, error) {
		if add, ok := sdk.RefusedCommand[*examples.AddLoyaltyPoints](c); ok && add.GetPoints() == 3 {
			return sdk.Step{Events: []proto.Message{wrapperspb.Int32(-1)}}, nil
		}
		return sdk.Step{}, sdk.RequestCompensation("unknown", angzarr.CompensationAction_COMPENSATION_ACTION_STOP)
	})
	resp, err = pm.Handle(ctx, comp)
	var undone wrapperspb.Int32Value
	if err != nil || len(resp.GetEvents()) != 1 || resp.GetEvents()[0].UnmarshalTo(&undone) != nil || undone.GetValue() != -1 {
		t.Fatalf("refusal handled: %v, %v; want the event -1", resp, err)
	}
	comp.Compensation.RefusedCommand = nil
	_, err = pm.Handle(ctx, comp)
	if st := status.Convert(err); st.Code() != codes.FailedPrecondition || len(st.Details()) != 1 {
		t.Fatalf("compensation request: %v, want FAILED_PRECONDITION with its details", err)
	}
}

// TestRegisterProcessManager: Register serves a process manager as
// angzarr.ProcessManager.
func TestRegisterProcessManager(t *testing.T) {
	name, err := sdk.Register(grpc.NewServer(), tally())
	if err != nil || name != angzarr.ProcessManager_ServiceDesc.ServiceName {
		t.Fatalf("Register: %q, %v", name, err)
	}
}
