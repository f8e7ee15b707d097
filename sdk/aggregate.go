package sdk

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Aggregate is a domain's business logic built from command handlers (On)
// and event appliers (Apply) over a state message S. It serves
// angzarr.BusinessLogic: for each call it rebuilds S from the snapshot and
// events, runs the handler of each command page in order (applying the
// events of one page before the next), and answers the new events, plus
// snapshot_state when its SnapshotPolicy asks for one.
type Aggregate[S proto.Message] struct {
	angzarr.UnimplementedBusinessLogicServer

	domain   string
	newState func() S
	appliers appliers[S]
	handlers map[protoreflect.FullName]func(S, *anypb.Any) ([]proto.Message, error)
	snapshot SnapshotPolicy
}

var _ angzarr.BusinessLogicServer = (*Aggregate[*anypb.Any])(nil)

// NewAggregate returns the business logic of domain, whose state starts as
// newState() before the first event.
func NewAggregate[S proto.Message](domain string, newState func() S) *Aggregate[S] {
	return &Aggregate[S]{
		domain:   domain,
		newState: newState,
		appliers: appliers[S]{},
		handlers: map[protoreflect.FullName]func(S, *anypb.Any) ([]proto.Message, error){},
	}
}

// Domain is the domain the aggregate serves.
func (a *Aggregate[S]) Domain() string { return a.domain }

// WithSnapshots makes the aggregate return its state as snapshot_state
// whenever policy says so; it returns a for chaining.
func (a *Aggregate[S]) WithSnapshots(policy SnapshotPolicy) *Aggregate[S] {
	a.snapshot = policy
	return a
}

// On registers the handler of commands of type C. A handler reads the
// current state (it must not change it), checks the business rules and
// returns the events to record, or a Rejection (Invalid, Precondition,
// NotFound) to refuse the command.
func On[S, C proto.Message](a *Aggregate[S], handle func(state S, cmd C) ([]proto.Message, error)) {
	a.handlers[nameOf[C]()] = func(s S, raw *anypb.Any) ([]proto.Message, error) {
		c, err := unpack[C](raw)
		if err != nil {
			return nil, err
		}
		return handle(s, c)
	}
}

// Handle decides on a ContextualCommand: it implements
// angzarr.BusinessLogicServer. A book without pages asks for no decision and
// gets an empty EventBook.
func (a *Aggregate[S]) Handle(_ context.Context, in *angzarr.ContextualCommand) (*angzarr.EventBook, error) {
	state, err := a.Rebuild(in.GetEvents())
	if err != nil {
		return nil, err
	}
	out := &angzarr.EventBook{Cover: in.GetCommand().GetCover()}
	if out.Cover == nil {
		out.Cover = in.GetEvents().GetCover()
	}
	for _, page := range in.GetCommand().GetPages() {
		events, err := a.decide(state, page.GetCommand())
		if req := (*CompensationRequest)(nil); errors.As(err, &req) {
			return req.decision(out.Cover)
		}
		if err != nil {
			return nil, err
		}
		for _, e := range events {
			packed, err := anypb.New(e)
			if err != nil {
				return nil, fmt.Errorf("pack %T: %w", e, err)
			}
			if err := a.appliers.apply(state, packed); err != nil {
				return nil, err
			}
			out.Pages = append(out.Pages, &angzarr.EventPage{Event: packed})
		}
	}
	before := NextSequence(in.GetEvents())
	if a.snapshot != nil && len(out.Pages) > 0 && a.snapshot(before, before+uint32(len(out.Pages))) {
		if out.SnapshotState, err = anypb.New(state); err != nil {
			return nil, fmt.Errorf("pack snapshot: %w", err)
		}
	}
	return out, nil
}

// decide runs the handler registered for cmd's type.
func (a *Aggregate[S]) decide(state S, cmd *anypb.Any) ([]proto.Message, error) {
	if cmd == nil {
		return nil, Invalid("command page has no command")
	}
	handle, ok := a.handlers[messageName(cmd.GetTypeUrl())]
	if !ok {
		return nil, Invalid("domain %s has no handler for command %s", a.domain, cmd.GetTypeUrl())
	}
	return handle(state, cmd)
}
