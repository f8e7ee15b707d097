package sdk

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Step is a process manager's decision for one step of a workflow: the
// events to remember (stored in the workflow's stream) and the commands
// to issue. The framework stores both before it sends a command, and
// sends each exactly once.
type Step struct {
	// Events are the PM's own events (messages of its .proto).
	Events []proto.Message
	// Commands are built with Command; the framework adds the origin, the
	// idempotency key and, when missing, the correlation id.
	Commands []*angzarr.CommandBook
}

// ProcessManager is a stateful orchestrator over a state message S, built
// from appliers of its own events (Remember), reactions to the events of
// its source domains (Orchestrate) and a handler of its refused commands
// (OnRefused). It serves angzarr.ProcessManager: for each call it rebuilds
// S from the workflow's stream (the framework's ProcessManagerStep events
// change nothing), runs the reaction to the trigger's event type (none:
// an empty answer) or the refusal handler, and answers the step.
//
//	pm := sdk.NewProcessManager("checkout", func() *examples.CheckoutState { return &examples.CheckoutState{} })
//	sdk.Remember(pm, func(s *examples.CheckoutState, e *examples.CheckoutStarted) { s.CartId = e.GetCartId() })
//	sdk.Orchestrate(pm, func(s *examples.CheckoutState, src *angzarr.Cover, e *examples.CartCheckedOut) (sdk.Step, error) {
//		create, err := sdk.Command("order", orderRoot, src.GetCorrelationId(), &examples.CreateOrder{...})
//		return sdk.Step{Events: []proto.Message{&examples.CheckoutStarted{...}}, Commands: []*angzarr.CommandBook{create}}, err
//	})
type ProcessManager[S proto.Message] struct {
	angzarr.UnimplementedProcessManagerServer

	name      string
	newState  func() S
	appliers  appliers[S]
	reactions map[protoreflect.FullName]func(S, *angzarr.Cover, *anypb.Any) (Step, error)
	refused   func(S, *angzarr.SagaCompensation) (Step, error)
}

var _ angzarr.ProcessManagerServer = (*ProcessManager[*anypb.Any])(nil)

// NewProcessManager returns the process manager name (its name in the
// topology) whose workflow state starts as newState().
func NewProcessManager[S proto.Message](name string, newState func() S) *ProcessManager[S] {
	return &ProcessManager[S]{
		name: name, newState: newState, appliers: appliers[S]{},
		reactions: map[protoreflect.FullName]func(S, *angzarr.Cover, *anypb.Any) (Step, error){},
	}
}

// Name is the process manager's name.
func (pm *ProcessManager[S]) Name() string { return pm.name }

// Remember registers how one of the PM's own events of type E changes the
// workflow's state. Like Apply, it mutates the state and never fails.
func Remember[S, E proto.Message](pm *ProcessManager[S], fn func(state S, event E)) {
	pm.appliers[nameOf[E]()] = func(s S, raw *anypb.Any) error {
		e, err := unpack[E](raw)
		if err != nil {
			return err
		}
		fn(s, e)
		return nil
	}
}

// Orchestrate registers the PM's reaction to events of type E of its
// source domains: source is the cover of the aggregate that emitted it
// (its correlation id is the workflow's). It reads the state (it must not
// change it) and returns the step; an error refuses the event (the
// framework retries and then dead-letters it).
func Orchestrate[S, E proto.Message](pm *ProcessManager[S], react func(state S, source *angzarr.Cover, event E) (Step, error)) {
	pm.reactions[nameOf[E]()] = func(s S, source *angzarr.Cover, raw *anypb.Any) (Step, error) {
		e, err := unpack[E](raw)
		if err != nil {
			return Step{}, err
		}
		return react(s, source, e)
	}
}

// OnRefused registers the handler of the PM's refused commands: c names
// the refused command (RefusedCommand), its target's code and reason. It
// returns the compensating step (events, commands), or
// RequestCompensation to ask the framework to record the failure,
// dead-letter the command, escalate or stop. Without a handler every
// refusal gets the topology's fallback.
func OnRefused[S proto.Message](pm *ProcessManager[S], handle func(state S, c *angzarr.SagaCompensation) (Step, error)) {
	pm.refused = handle
}

// Rebuild returns the workflow's state from its stream.
func (pm *ProcessManager[S]) Rebuild(book *angzarr.EventBook) (S, error) {
	state := pm.newState()
	if snap := book.GetSnapshot(); snap.GetState() != nil {
		if err := (proto.UnmarshalOptions{Merge: true}).Unmarshal(snap.GetState().GetValue(), state); err != nil {
			return state, Invalid("cannot decode snapshot state: %v", err)
		}
	}
	for _, page := range book.GetPages() {
		if err := pm.appliers.apply(state, page.GetEvent()); err != nil {
			return state, err
		}
	}
	return state, nil
}

// Handle decides one step: it implements angzarr.ProcessManagerServer.
func (pm *ProcessManager[S]) Handle(_ context.Context, req *angzarr.ProcessManagerRequest) (*angzarr.ProcessManagerResponse, error) {
	state, err := pm.Rebuild(req.GetState())
	if err != nil {
		return nil, err
	}
	var step Step
	switch {
	case req.GetCompensation() != nil:
		if pm.refused == nil {
			return nil, status.Errorf(codes.FailedPrecondition, "process manager %s handles no refusals", pm.name)
		}
		step, err = pm.refused(state, req.GetCompensation())
	case req.GetTrigger() != nil:
		for _, page := range req.GetTrigger().GetPages() {
			react, ok := pm.reactions[messageName(page.GetEvent().GetTypeUrl())]
			if !ok {
				continue
			}
			s, err := react(state, req.GetTrigger().GetCover(), page.GetEvent())
			if err != nil {
				return nil, err
			}
			step.Events = append(step.Events, s.Events...)
			step.Commands = append(step.Commands, s.Commands...)
		}
	default:
		return nil, Invalid("a process manager request needs a trigger or a compensation")
	}
	if err != nil {
		return nil, err
	}
	out := &angzarr.ProcessManagerResponse{Commands: step.Commands}
	for _, e := range step.Events {
		packed, err := anypb.New(e)
		if err != nil {
			return nil, fmt.Errorf("pack %T: %w", e, err)
		}
		out.Events = append(out.Events, packed)
	}
	return out, nil
}
