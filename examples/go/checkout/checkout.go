// Package checkout is the example shop's checkout process manager: one
// workflow per checkout (the correlation id of the Checkout command) that
// turns a checked-out cart into an order, reserves the stock of each of
// its products, commits the reservations when the order is completed, and
// cancels the order when a reservation is refused. It remembers what was
// reserved, so a reservation that lands after the cancellation is
// released. (Releasing the reservations made before a cancellation and
// refunding the loyalty points are the cancellation saga's.)
package checkout

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/angzarr-mesh/angzarr/examples/go/cart"
	"github.com/angzarr-mesh/angzarr/examples/go/inventory"
	"github.com/angzarr-mesh/angzarr/examples/go/order"
	"github.com/angzarr-mesh/angzarr/examples/go/roots"
	"github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/proto/examples"
	"github.com/angzarr-mesh/angzarr/sdk"
)

// Name is the process manager's name in the topology.
const Name = "checkout"

// Domain is the domain of its workflow streams.
const Domain = "checkout"

// Sources are the domains whose events it consumes; Targets those its
// commands go to.
var (
	Sources = []string{cart.Domain, inventory.Domain, order.Domain}
	Targets = []string{inventory.Domain, order.Domain}
)

// Workflow statuses.
const (
	Ordering   = "ordering"
	Reserving  = "reserving"
	Cancelling = "cancelling" // a reservation was refused, the order is being cancelled
	Cancelled  = "cancelled"
	Completed  = "completed"
)

// OrderRoot is the order's root of the cart with root cartID: the UUIDv5
// of the cart's root text, as the shipment's is of the order's.
func OrderRoot(cartID string) string { return roots.Of(cartID).String() }

// ProcessManager returns the checkout process manager.
func ProcessManager() *sdk.ProcessManager[*examples.CheckoutState] {
	pm := sdk.NewProcessManager(Name, func() *examples.CheckoutState { return &examples.CheckoutState{} })
	sdk.Remember(pm, func(s *examples.CheckoutState, e *examples.CheckoutStarted) {
		s.CartId, s.OrderId, s.CustomerId, s.Items, s.Status = e.CartId, e.OrderId, e.CustomerId, e.Items, Ordering
	})
	sdk.Remember(pm, func(s *examples.CheckoutState, e *examples.ReservationsRequested) {
		s.Requested, s.Status = e.ProductIds, Reserving
	})
	sdk.Remember(pm, func(s *examples.CheckoutState, e *examples.ItemReserved) {
		s.Reserved = append(s.Reserved, e.ProductId)
	})
	sdk.Remember(pm, func(s *examples.CheckoutState, e *examples.ReservationRefused) {
		if s.Status == Reserving {
			s.Status = Cancelling
		}
	})
	sdk.Remember(pm, func(s *examples.CheckoutState, e *examples.CheckoutCompleted) { s.Status = Completed })
	sdk.Remember(pm, func(s *examples.CheckoutState, e *examples.CheckoutCancelled) { s.Status = Cancelled })
	sdk.Orchestrate(pm, started)
	sdk.Orchestrate(pm, orderCreated)
	sdk.Orchestrate(pm, reserved)
	sdk.Orchestrate(pm, completed)
	sdk.Orchestrate(pm, cancelled)
	sdk.OnRefused(pm, refused)
	return pm
}

func events(m ...proto.Message) []proto.Message { return m }

// started: the cart was checked out → CreateOrder for its customer and
// items (the order's root derived from the cart's).
func started(s *examples.CheckoutState, src *angzarr.Cover, e *examples.CartCheckedOut) (sdk.Step, error) {
	if s.Status != "" {
		return sdk.Step{}, nil // one order per workflow
	}
	cartRoot, err := sdk.RootID(src.GetRoot())
	if err != nil {
		return sdk.Step{}, sdk.Invalid("cart root: %v", err)
	}
	cartID := cartRoot.String()
	orderID := OrderRoot(cartID)
	items := make([]*examples.LineItem, len(e.Items))
	for i, it := range e.Items {
		items[i] = &examples.LineItem{ProductId: it.ProductId, Name: it.Name, Quantity: it.Quantity, UnitPriceCents: it.UnitPriceCents}
	}
	create, err := sdk.Command(order.Domain, roots.Parse(orderID), src.GetCorrelationId(), &examples.CreateOrder{CustomerId: e.CustomerId, Items: items})
	return sdk.Step{
		Events:   events(&examples.CheckoutStarted{CartId: cartID, OrderId: orderID, CustomerId: e.CustomerId, Items: items}),
		Commands: []*angzarr.CommandBook{create},
	}, err
}

// orderCreated: the workflow's order exists → ReserveStock of each product
// (quantities of repeated lines added up).
func orderCreated(s *examples.CheckoutState, src *angzarr.Cover, e *examples.OrderCreated) (sdk.Step, error) {
	if s.Status != Ordering || rootText(src) != s.OrderId {
		return sdk.Step{}, nil
	}
	var products []string
	qty := map[string]int32{}
	for _, it := range e.Items {
		if _, ok := qty[it.ProductId]; !ok {
			products = append(products, it.ProductId)
		}
		qty[it.ProductId] += it.Quantity
	}
	step := sdk.Step{Events: events(&examples.ReservationsRequested{ProductIds: products})}
	for _, p := range products {
		cmd, err := sdk.Command(inventory.Domain, roots.Of(p), src.GetCorrelationId(), &examples.ReserveStock{Quantity: qty[p], OrderId: s.OrderId})
		if err != nil {
			return sdk.Step{}, err
		}
		step.Commands = append(step.Commands, cmd)
	}
	return step, nil
}

// reserved: a product's stock was reserved for the order. Remembered;
// committed at once when the order is already completed, released when
// it is cancelled (or being cancelled).
func reserved(s *examples.CheckoutState, src *angzarr.Cover, e *examples.StockReserved) (sdk.Step, error) {
	p, ok := product(s, src)
	if !ok || e.OrderId != s.OrderId || slices.Contains(s.Reserved, p) {
		return sdk.Step{}, nil
	}
	step := sdk.Step{Events: events(&examples.ItemReserved{ProductId: p})}
	var cmd proto.Message
	switch s.Status {
	case Completed:
		cmd = &examples.CommitReservation{OrderId: s.OrderId}
	case Cancelling, Cancelled:
		step.Events = append(step.Events, &examples.LateReservationReleased{ProductId: p})
		cmd = &examples.ReleaseReservation{OrderId: s.OrderId}
	}
	if cmd != nil {
		c, err := sdk.Command(inventory.Domain, roots.Of(p), src.GetCorrelationId(), cmd)
		if err != nil {
			return sdk.Step{}, err
		}
		step.Commands = append(step.Commands, c)
	}
	return step, nil
}

// completed: the order was paid → CommitReservation of every reservation
// made (later ones are committed as they arrive).
func completed(s *examples.CheckoutState, src *angzarr.Cover, _ *examples.OrderCompleted) (sdk.Step, error) {
	if rootText(src) != s.OrderId || s.Status == Completed || s.Status == Cancelled {
		return sdk.Step{}, nil
	}
	step := sdk.Step{Events: events(&examples.CheckoutCompleted{Committed: s.Reserved})}
	for _, p := range s.Reserved {
		cmd, err := sdk.Command(inventory.Domain, roots.Of(p), src.GetCorrelationId(), &examples.CommitReservation{OrderId: s.OrderId})
		if err != nil {
			return sdk.Step{}, err
		}
		step.Commands = append(step.Commands, cmd)
	}
	return step, nil
}

// cancelled: the order was cancelled (by the customer, or because a
// reservation was refused). Remembered: reservations that land later are
// released.
func cancelled(s *examples.CheckoutState, src *angzarr.Cover, e *examples.OrderCancelled) (sdk.Step, error) {
	if rootText(src) != s.OrderId || s.Status == Cancelled {
		return sdk.Step{}, nil
	}
	return sdk.Step{Events: events(&examples.CheckoutCancelled{Reason: e.Reason})}, nil
}

// refused: a command of the workflow was refused. A refused reservation
// cancels the order; a refused release or commit means there was nothing
// (left) to release or commit; a refused cancellation means the order was
// completed first. Anything else is recorded and escalated.
func refused(s *examples.CheckoutState, c *angzarr.SagaCompensation) (sdk.Step, error) {
	if _, ok := sdk.RefusedCommand[*examples.ReserveStock](c); ok {
		p, _ := product(s, c.GetRefusedCommand().GetCover())
		step := sdk.Step{Events: events(&examples.ReservationRefused{ProductId: p, Reason: c.GetReason()})}
		if s.Status == Reserving {
			cancel, err := sdk.Command(order.Domain, roots.Parse(s.OrderId), c.GetRefusedCommand().GetCover().GetCorrelationId(),
				&examples.CancelOrder{Reason: fmt.Sprintf("stock of %s: %s", p, c.GetReason())})
			if err != nil {
				return sdk.Step{}, err
			}
			step.Commands = append(step.Commands, cancel)
		}
		return step, nil
	}
	_, release := sdk.RefusedCommand[*examples.ReleaseReservation](c)
	_, cancel := sdk.RefusedCommand[*examples.CancelOrder](c)
	if release || cancel {
		return sdk.Step{}, sdk.RequestCompensation("nothing left to undo: "+c.GetReason(), angzarr.CompensationAction_COMPENSATION_ACTION_STOP)
	}
	return sdk.Step{}, sdk.RequestCompensation("checkout step refused: "+c.GetReason(),
		angzarr.CompensationAction_COMPENSATION_ACTION_RECORD_FAILURE, angzarr.CompensationAction_COMPENSATION_ACTION_ESCALATE)
}

// product is the requested product whose inventory aggregate cover names.
func product(s *examples.CheckoutState, cover *angzarr.Cover) (string, bool) {
	root := rootText(cover)
	for _, p := range s.Requested {
		if roots.Of(p).String() == root {
			return p, true
		}
	}
	return "", false
}

// rootText is cover's root as text ("" when it is no UUID).
func rootText(cover *angzarr.Cover) string {
	id, err := sdk.RootID(cover.GetRoot())
	if err != nil {
		return ""
	}
	return id.String()
}
