package inventory_test

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/angzarr-mesh/angzarr/examples/go/inventory"
	"github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/proto/examples"
	"github.com/angzarr-mesh/angzarr/sdk/sdktest"
)

// snapshot is a stock of 100 with o-1 holding 10.
var snapshot = &examples.InventoryState{ProductId: "mug", OnHand: 100, Reserved: 10, Initialized: true, Reservations: map[string]int32{"o-1": 10}}

func TestFromSnapshot(t *testing.T) {
	sdktest.Run(t, inventory.Logic(), []sdktest.Case{
		{Name: "release a reservation held in the snapshot", Snapshot: snapshot, SnapshotSequence: 60,
			When: &examples.ReleaseReservation{OrderId: "o-1"},
			Then: msgs{&examples.ReservationReleased{OrderId: "o-1", Quantity: 10, NewAvailable: 100}}},
		{Name: "reserve on top of a snapshot and later events", Snapshot: snapshot, SnapshotSequence: 60,
			Given: msgs{&examples.StockReserved{Quantity: 5, OrderId: "o-2", NewAvailable: 85, NewReserved: 15}},
			When:  &examples.ReserveStock{Quantity: 1, OrderId: "o-2"}, Code: codes.FailedPrecondition, Phrase: "already reserved"},
		{Name: "initialized in the snapshot", Snapshot: snapshot, SnapshotSequence: 60,
			When: &examples.InitializeStock{Quantity: 1}, Code: codes.FailedPrecondition, Phrase: "already initialized"},
	})
}

// TestAsksForSnapshots checks that the command taking the history to 50
// events returns the state as snapshot_state, and the next one does not.
func TestAsksForSnapshots(t *testing.T) {
	history := msgs{&examples.StockInitialized{ProductId: "mug", Quantity: 1000}}
	for len(history) < inventory.SnapshotEvery-1 {
		history = append(history, &examples.StockReceived{Quantity: 1, NewOnHand: 1000 + int32(len(history))})
	}
	ask := func(history msgs) *angzarr.EventBook {
		book := sdktest.Book(t, inventory.Domain, sdktest.Root, 0, history...)
		out, err := inventory.Logic().Handle(context.Background(), &angzarr.ContextualCommand{Events: book, Command: &angzarr.CommandBook{
			Cover: book.GetCover(),
			Pages: []*angzarr.CommandPage{{Sequence: uint32(len(history)), Command: sdktest.Pack(t, &examples.ReceiveStock{Quantity: 1})}},
		}})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	out := ask(history)
	state := &examples.InventoryState{}
	if out.GetSnapshotState() == nil || out.GetSnapshotState().UnmarshalTo(state) != nil {
		t.Fatalf("want a snapshot at %d events, got %v", inventory.SnapshotEvery, out.GetSnapshotState())
	}
	if want := (&examples.InventoryState{ProductId: "mug", OnHand: 1049, Initialized: true}); !proto.Equal(state, want) {
		t.Fatalf("snapshot %v, want %v", state, want)
	}
	if out := ask(append(history, &examples.StockReceived{Quantity: 1, NewOnHand: 1049})); out.GetSnapshotState() != nil {
		t.Fatal("no snapshot expected at 51 events")
	}
}
