package inventory_test

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/angzarr-mesh/angzarr/examples/go/inventory"
	"github.com/angzarr-mesh/angzarr/examples/go/roots"
	"github.com/angzarr-mesh/angzarr/proto/examples"
	"github.com/angzarr-mesh/angzarr/sdk/sdktest"
)

type msgs = []proto.Message

// stock returns the initialization of the mug with quantity on hand and
// low-stock threshold.
func stock(quantity, threshold int32) *examples.StockInitialized {
	return &examples.StockInitialized{ProductId: "mug", Quantity: quantity, LowStockThreshold: threshold}
}

func TestInventory(t *testing.T) {
	sdktest.Run(t, inventory.Logic(), []sdktest.Case{
		{Name: "initialize", Root: roots.Of("mug"), When: &examples.InitializeStock{ProductId: "mug", Quantity: 100, LowStockThreshold: 10}, Then: msgs{stock(100, 10)}},
		{Name: "initialize with zero", When: &examples.InitializeStock{ProductId: "mug"}, Then: msgs{stock(0, 0)}},
		{Name: "initialize twice", Given: msgs{stock(100, 0)}, When: &examples.InitializeStock{ProductId: "mug", Quantity: 1},
			Code: codes.FailedPrecondition, Phrase: "already initialized"},
		{Name: "initialize negative quantity", When: &examples.InitializeStock{ProductId: "mug", Quantity: -1}, Code: codes.InvalidArgument, Phrase: "quantity"},

		{Name: "receive 50 then 25", Given: msgs{stock(0, 0), &examples.StockReceived{Quantity: 50, NewOnHand: 50}},
			When: &examples.ReceiveStock{Quantity: 25, Reference: "po-2"},
			Then: msgs{&examples.StockReceived{Quantity: 25, Reference: "po-2", NewOnHand: 75}}},
		{Name: "receive before initialization", When: &examples.ReceiveStock{Quantity: 5}, Code: codes.FailedPrecondition, Phrase: "not initialized"},
		{Name: "receive zero", Given: msgs{stock(0, 0)}, When: &examples.ReceiveStock{Quantity: 0}, Code: codes.InvalidArgument, Phrase: "quantity"},
		{Name: "receive negative", Given: msgs{stock(0, 0)}, When: &examples.ReceiveStock{Quantity: -3}, Code: codes.InvalidArgument, Phrase: "quantity"},

		{Name: "reserve 10 of 100", Given: msgs{stock(100, 0)}, When: &examples.ReserveStock{Quantity: 10, OrderId: "o-1"},
			Then: msgs{&examples.StockReserved{Quantity: 10, OrderId: "o-1", NewAvailable: 90, NewReserved: 10}}},
		{Name: "reserve more than available", Given: msgs{stock(50, 0), &examples.StockReserved{Quantity: 40, OrderId: "o-1", NewAvailable: 10, NewReserved: 40}},
			When: &examples.ReserveStock{Quantity: 20, OrderId: "o-2"}, Code: codes.FailedPrecondition, Phrase: "insufficient"},
		{Name: "a second reservation for the same order", Given: msgs{stock(100, 0), &examples.StockReserved{Quantity: 10, OrderId: "o-1", NewAvailable: 90, NewReserved: 10}},
			When: &examples.ReserveStock{Quantity: 5, OrderId: "o-1"}, Code: codes.FailedPrecondition, Phrase: "already reserved"},
		{Name: "reserve before initialization", When: &examples.ReserveStock{Quantity: 1, OrderId: "o-1"}, Code: codes.FailedPrecondition, Phrase: "not initialized"},
		{Name: "reserve zero", Given: msgs{stock(100, 0)}, When: &examples.ReserveStock{Quantity: 0, OrderId: "o-1"}, Code: codes.InvalidArgument, Phrase: "quantity"},

		{Name: "release restores availability", Given: msgs{stock(100, 0), &examples.StockReserved{Quantity: 10, OrderId: "o-1", NewAvailable: 90, NewReserved: 10}},
			When: &examples.ReleaseReservation{OrderId: "o-1"},
			Then: msgs{&examples.ReservationReleased{OrderId: "o-1", Quantity: 10, NewAvailable: 100}}},
		{Name: "released stock can be reserved again",
			Given: msgs{stock(10, 0), &examples.StockReserved{Quantity: 10, OrderId: "o-1", NewAvailable: 0, NewReserved: 10}, &examples.ReservationReleased{OrderId: "o-1", Quantity: 10, NewAvailable: 10}},
			When:  &examples.ReserveStock{Quantity: 10, OrderId: "o-2"},
			Then:  msgs{&examples.StockReserved{Quantity: 10, OrderId: "o-2", NewAvailable: 0, NewReserved: 10}}},
		{Name: "release an unknown order", Given: msgs{stock(100, 0)}, When: &examples.ReleaseReservation{OrderId: "o-9"}, Code: codes.NotFound, Phrase: "not found"},

		{Name: "commit lowers on hand 100 to 85", Given: msgs{stock(100, 0), &examples.StockReserved{Quantity: 15, OrderId: "o-1", NewAvailable: 85, NewReserved: 15}},
			When: &examples.CommitReservation{OrderId: "o-1"},
			Then: msgs{&examples.ReservationCommitted{OrderId: "o-1", Quantity: 15, NewOnHand: 85}}},
		{Name: "after a commit nothing is reserved",
			Given: msgs{stock(100, 0), &examples.StockReserved{Quantity: 15, OrderId: "o-1", NewAvailable: 85, NewReserved: 15}, &examples.ReservationCommitted{OrderId: "o-1", Quantity: 15, NewOnHand: 85}},
			When:  &examples.ReserveStock{Quantity: 85, OrderId: "o-2"},
			Then:  msgs{&examples.StockReserved{Quantity: 85, OrderId: "o-2", NewAvailable: 0, NewReserved: 85}}},
		{Name: "commit an unknown order", Given: msgs{stock(100, 0)}, When: &examples.CommitReservation{OrderId: "o-9"}, Code: codes.NotFound, Phrase: "not found"},

		{Name: "low stock alert when availability crosses the threshold", Given: msgs{stock(20, 10)},
			When: &examples.ReserveStock{Quantity: 15, OrderId: "o-1"},
			Then: msgs{
				&examples.StockReserved{Quantity: 15, OrderId: "o-1", NewAvailable: 5, NewReserved: 15},
				&examples.LowStockAlert{ProductId: "mug", Available: 5, Threshold: 10},
			}},
		{Name: "no alert while above the threshold", Given: msgs{stock(20, 10)}, When: &examples.ReserveStock{Quantity: 5, OrderId: "o-1"},
			Then: msgs{&examples.StockReserved{Quantity: 5, OrderId: "o-1", NewAvailable: 15, NewReserved: 5}}},
		{Name: "no second alert once below", Given: msgs{stock(20, 10), &examples.StockReserved{Quantity: 15, OrderId: "o-1", NewAvailable: 5, NewReserved: 15}},
			When: &examples.ReserveStock{Quantity: 2, OrderId: "o-2"},
			Then: msgs{&examples.StockReserved{Quantity: 2, OrderId: "o-2", NewAvailable: 3, NewReserved: 17}}},
	})
}
