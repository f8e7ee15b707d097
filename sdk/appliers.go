package sdk

import (
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// appliers folds events into a state S, by event type.
type appliers[S any] map[protoreflect.FullName]func(S, *anypb.Any) error

// apply folds one event into s; events without an applier change nothing
// (an alert, say), so old histories stay readable as types are added.
func (a appliers[S]) apply(s S, event *anypb.Any) error {
	fn, ok := a[messageName(event.GetTypeUrl())]
	if !ok {
		return nil
	}
	return fn(s, event)
}

// Apply registers how an event of type E changes the aggregate's state.
// Appliers mutate the state they are given and never fail: an event is a
// fact that already happened.
func Apply[S, E proto.Message](a *Aggregate[S], fn func(state S, event E)) {
	a.appliers[nameOf[E]()] = func(s S, raw *anypb.Any) error {
		e, err := unpack[E](raw)
		if err != nil {
			return err
		}
		fn(s, e)
		return nil
	}
}

// Rebuild returns the state of the aggregate whose history is book: the
// snapshot's state (when there is one), then every event page at or after
// the snapshot's sequence, in order.
func (a *Aggregate[S]) Rebuild(book *angzarr.EventBook) (S, error) {
	state := a.newState()
	var from uint32
	if snap := book.GetSnapshot(); snap.GetState() != nil {
		raw := snap.GetState()
		if got, want := messageName(raw.GetTypeUrl()), state.ProtoReflect().Descriptor().FullName(); got != want {
			return state, Invalid("snapshot state is %s, want %s", got, want)
		}
		// Merge into newState() so its defaults (an empty map, say) survive.
		if err := (proto.UnmarshalOptions{Merge: true}).Unmarshal(raw.GetValue(), state); err != nil {
			return state, Invalid("cannot decode snapshot state: %v", err)
		}
		from = snap.GetSequence()
	}
	for _, page := range book.GetPages() {
		if num, ok := page.GetSequence().(*angzarr.EventPage_Num); ok && num.Num < from {
			continue // already in the snapshot
		}
		if err := a.appliers.apply(state, page.GetEvent()); err != nil {
			return state, err
		}
	}
	return state, nil
}
