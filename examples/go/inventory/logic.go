// Package inventory is the inventory domain's business logic: the stock of
// one product per aggregate, and reservations of it by order. The
// aggregate's root is roots.Of(product id).
package inventory

import (
	"google.golang.org/protobuf/proto"

	"github.com/angzarr-mesh/angzarr/proto/examples"
	"github.com/angzarr-mesh/angzarr/sdk"
)

// Domain is the domain this logic serves.
const Domain = "inventory"

// SnapshotEvery is how many events apart the inventory asks for snapshots:
// stock moves often and lives long.
const SnapshotEvery = 50

// Logic returns the inventory domain's business logic.
func Logic() *sdk.Aggregate[*examples.InventoryState] {
	a := sdk.NewAggregate(Domain, func() *examples.InventoryState {
		return &examples.InventoryState{Reservations: map[string]int32{}}
	})
	sdk.On(a, initialize)
	sdk.On(a, receive)
	sdk.On(a, reserve)
	sdk.On(a, release)
	sdk.On(a, commit)
	sdk.Apply(a, func(s *examples.InventoryState, e *examples.StockInitialized) {
		s.ProductId, s.OnHand, s.LowStockThreshold, s.Initialized = e.ProductId, e.Quantity, e.LowStockThreshold, true
	})
	sdk.Apply(a, func(s *examples.InventoryState, e *examples.StockReceived) { s.OnHand = e.NewOnHand })
	sdk.Apply(a, func(s *examples.InventoryState, e *examples.StockReserved) {
		s.Reserved, s.Reservations[e.OrderId] = e.NewReserved, e.Quantity
	})
	sdk.Apply(a, func(s *examples.InventoryState, e *examples.ReservationReleased) {
		s.Reserved -= s.Reservations[e.OrderId]
		delete(s.Reservations, e.OrderId)
	})
	sdk.Apply(a, func(s *examples.InventoryState, e *examples.ReservationCommitted) {
		s.Reserved -= s.Reservations[e.OrderId]
		s.OnHand = e.NewOnHand
		delete(s.Reservations, e.OrderId)
	})
	return a.WithSnapshots(sdk.EveryN(SnapshotEvery))
}

func available(s *examples.InventoryState) int32 { return s.OnHand - s.Reserved }

func initialize(s *examples.InventoryState, c *examples.InitializeStock) ([]proto.Message, error) {
	switch {
	case s.Initialized:
		return nil, sdk.Precondition("stock already initialized")
	case c.Quantity < 0:
		return nil, sdk.Invalid("quantity must not be negative, got %d", c.Quantity)
	case c.LowStockThreshold < 0:
		return nil, sdk.Invalid("low stock threshold must not be negative, got %d", c.LowStockThreshold)
	}
	return []proto.Message{&examples.StockInitialized{ProductId: c.ProductId, Quantity: c.Quantity, LowStockThreshold: c.LowStockThreshold}}, nil
}

func receive(s *examples.InventoryState, c *examples.ReceiveStock) ([]proto.Message, error) {
	switch {
	case !s.Initialized:
		return nil, sdk.Precondition("stock not initialized")
	case c.Quantity <= 0:
		return nil, sdk.Invalid("quantity must be positive, got %d", c.Quantity)
	}
	return []proto.Message{&examples.StockReceived{Quantity: c.Quantity, Reference: c.Reference, NewOnHand: s.OnHand + c.Quantity}}, nil
}

func reserve(s *examples.InventoryState, c *examples.ReserveStock) ([]proto.Message, error) {
	_, held := s.Reservations[c.OrderId]
	switch {
	case !s.Initialized:
		return nil, sdk.Precondition("stock not initialized")
	case c.Quantity <= 0:
		return nil, sdk.Invalid("quantity must be positive, got %d", c.Quantity)
	case c.OrderId == "":
		return nil, sdk.Invalid("order_id is required")
	case held:
		return nil, sdk.Precondition("stock already reserved for order %s", c.OrderId)
	case c.Quantity > available(s):
		return nil, sdk.Precondition("insufficient stock: %d available, %d asked", available(s), c.Quantity)
	}
	before, after := available(s), available(s)-c.Quantity
	events := []proto.Message{&examples.StockReserved{
		Quantity: c.Quantity, OrderId: c.OrderId, NewAvailable: after, NewReserved: s.Reserved + c.Quantity,
	}}
	if before >= s.LowStockThreshold && after < s.LowStockThreshold {
		events = append(events, &examples.LowStockAlert{ProductId: s.ProductId, Available: after, Threshold: s.LowStockThreshold})
	}
	return events, nil
}

// reservation is the quantity held for order, or NOT_FOUND.
func reservation(s *examples.InventoryState, order string) (int32, error) {
	if !s.Initialized {
		return 0, sdk.Precondition("stock not initialized")
	}
	quantity, ok := s.Reservations[order]
	if !ok {
		return 0, sdk.NotFound("reservation for order %q not found", order)
	}
	return quantity, nil
}

func release(s *examples.InventoryState, c *examples.ReleaseReservation) ([]proto.Message, error) {
	quantity, err := reservation(s, c.OrderId)
	if err != nil {
		return nil, err
	}
	return []proto.Message{&examples.ReservationReleased{OrderId: c.OrderId, Quantity: quantity, NewAvailable: available(s) + quantity}}, nil
}

func commit(s *examples.InventoryState, c *examples.CommitReservation) ([]proto.Message, error) {
	quantity, err := reservation(s, c.OrderId)
	if err != nil {
		return nil, err
	}
	return []proto.Message{&examples.ReservationCommitted{OrderId: c.OrderId, Quantity: quantity, NewOnHand: s.OnHand - quantity}}, nil
}
