// Package fulfillment is the fulfillment domain's business logic: the
// shipment of one order, whose root is roots.Of(order id), from picking to
// delivery.
package fulfillment

import (
	"google.golang.org/protobuf/proto"

	"github.com/angzarr-mesh/angzarr/proto/examples"
	"github.com/angzarr-mesh/angzarr/sdk"
)

// Domain is the domain this logic serves.
const Domain = "fulfillment"

// Shipment statuses, in order.
const (
	Pending   = "pending"
	Picking   = "picking"
	Packing   = "packing"
	Shipped   = "shipped"
	Delivered = "delivered"
)

// Logic returns the fulfillment domain's business logic.
func Logic() *sdk.Aggregate[*examples.ShipmentState] {
	a := sdk.NewAggregate(Domain, func() *examples.ShipmentState { return &examples.ShipmentState{} })
	sdk.On(a, create)
	sdk.On(a, pick)
	sdk.On(a, pack)
	sdk.On(a, ship)
	sdk.On(a, deliver)
	sdk.Apply(a, func(s *examples.ShipmentState, e *examples.ShipmentCreated) { s.OrderId, s.Status = e.OrderId, Pending })
	sdk.Apply(a, func(s *examples.ShipmentState, e *examples.ItemsPicked) { s.Status = Picking })
	sdk.Apply(a, func(s *examples.ShipmentState, e *examples.ItemsPacked) { s.Status = Packing })
	sdk.Apply(a, func(s *examples.ShipmentState, e *examples.Shipped) { s.Status = Shipped })
	sdk.Apply(a, func(s *examples.ShipmentState, e *examples.Delivered) { s.Status = Delivered })
	return a
}

// step refuses a command unless the shipment exists and is in status from;
// notReady names the missing step ("not picked").
func step(s *examples.ShipmentState, from, notReady string) error {
	switch s.Status {
	case "":
		return sdk.Precondition("shipment does not exist")
	case from:
		return nil
	}
	return sdk.Precondition("shipment %s (it is %s)", notReady, s.Status)
}

func create(s *examples.ShipmentState, c *examples.CreateShipment) ([]proto.Message, error) {
	switch {
	case s.Status != "":
		return nil, sdk.Precondition("shipment already exists")
	case c.OrderId == "":
		return nil, sdk.Invalid("order_id is required")
	}
	return []proto.Message{&examples.ShipmentCreated{OrderId: c.OrderId}}, nil
}

func pick(s *examples.ShipmentState, c *examples.MarkPicked) ([]proto.Message, error) {
	if err := step(s, Pending, "not pending"); err != nil {
		return nil, err
	}
	return []proto.Message{&examples.ItemsPicked{OrderId: s.OrderId, PickerId: c.PickerId}}, nil
}

func pack(s *examples.ShipmentState, c *examples.MarkPacked) ([]proto.Message, error) {
	if err := step(s, Picking, "not picked"); err != nil {
		return nil, err
	}
	return []proto.Message{&examples.ItemsPacked{OrderId: s.OrderId, PackerId: c.PackerId}}, nil
}

func ship(s *examples.ShipmentState, c *examples.Ship) ([]proto.Message, error) {
	if err := step(s, Packing, "not packed"); err != nil {
		return nil, err
	}
	return []proto.Message{&examples.Shipped{OrderId: s.OrderId, Carrier: c.Carrier, TrackingNumber: c.TrackingNumber}}, nil
}

func deliver(s *examples.ShipmentState, c *examples.RecordDelivery) ([]proto.Message, error) {
	if s.Status == Delivered {
		return nil, sdk.Precondition("shipment already delivered")
	}
	if err := step(s, Shipped, "not shipped"); err != nil {
		return nil, err
	}
	return []proto.Message{&examples.Delivered{OrderId: s.OrderId, Signature: c.Signature}}, nil
}
