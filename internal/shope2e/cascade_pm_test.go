package shope2e_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/angzarr-mesh/angzarr/eventsvc/fanout"
	"github.com/angzarr-mesh/angzarr/examples/go/checkout"
	"github.com/angzarr-mesh/angzarr/examples/go/roots"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	ex "github.com/angzarr-mesh/angzarr/proto/examples"
)

// TestCascadeRunsProcessManagerSteps: a cart checked out with
// SYNC_MODE_CASCADE on the local mesh (real proxies and filter, the event
// service's dispatcher) answers with the checkout process manager's
// effects: the cart's filter has the event service run the PM's step for
// CartCheckedOut and executes its CreateOrder with CASCADE, whose filter
// runs the step for OrderCreated and its ReserveStock, and so on. The
// dispatcher's later delivery of the same events finds each step stored
// and sends the same commands under the same keys: once it has caught up,
// the order was created once, the stock reserved once and every step of
// the workflow stored once.
func TestCascadeRunsProcessManagerSteps(t *testing.T) {
	m := startMesh(t)
	ctx := ctxT(t, 2*time.Minute)
	customer, cart := uuid.New(), uuid.New()
	lamp := "lamp-" + cart.String()[:8]
	corr := "cascade-checkout-" + cart.String()
	order := roots.Parse(checkout.OrderRoot(cart.String()))
	m.send(ctx, "customer", customer, "", 0, &ex.CreateCustomer{Name: "Ed", Email: "ed@example.com"})
	m.send(ctx, "inventory", roots.Of(lamp), "", 0, &ex.InitializeStock{ProductId: lamp, Quantity: 10, LowStockThreshold: 1})
	m.send(ctx, "cart", cart, corr, 0, &ex.CreateCart{CustomerId: customer.String()})
	m.send(ctx, "cart", cart, corr, 1, &ex.AddItem{ProductId: lamp, Name: "Lamp", Quantity: 3, UnitPriceCents: 2000})

	resp, err := m.coordinator("cart").HandleSync(ctx, &pb.SyncCommandBook{SyncMode: pb.SyncMode_SYNC_MODE_CASCADE,
		Command: command(t, "cart", cart, corr, 2, &ex.Checkout{})})
	if err != nil {
		t.Fatal(err)
	}
	if got := flatten(t, []*pb.EventBook{resp.GetEvents()}); len(got) != 1 || got[0].typeName() != "CartCheckedOut" {
		t.Fatalf("Checkout stored %v", got)
	}
	cascade := flatten(t, resp.GetCascade())
	created, reserved := ofType(cascade, "OrderCreated"), ofType(cascade, "StockReserved")
	if len(created) != 1 || created[0].root != order || len(reserved) != 1 || reserved[0].root != roots.Of(lamp) ||
		reserved[0].msg.(*ex.StockReserved).GetQuantity() != 3 {
		t.Fatalf("the CASCADE answer's cascade %v: want the process manager's order created and the lamps reserved", cascade)
	}
	// The process manager's own steps ran in the cascade too (before the
	// answer): the workflow already holds them.
	if f := m.checkoutSteps(ctx, corr); len(ofType(f, "CheckoutStarted")) != 1 || len(ofType(f, "ItemReserved")) != 1 {
		t.Fatalf("workflow after the CASCADE answer: %s", describe(f))
	}

	// The dispatcher delivers the same events later: every step is found
	// stored and its commands are idempotent repeats.
	m.caughtUp(ctx, append(shopSubscribers, "checkout")...)
	if o := m.history(ctx, "order", order); len(o) != 1 || o[0].typeName() != "OrderCreated" {
		t.Errorf("order %s: %v, want one OrderCreated", order, o)
	}
	var mine []string
	for _, e := range m.history(ctx, "inventory", roots.Of(lamp)) {
		if e.typeName() != "StockInitialized" {
			mine = append(mine, e.typeName())
		}
	}
	if !equal(mine, []string{"StockReserved"}) {
		t.Errorf("lamp: %v, want one reservation", mine)
	}
	if got := types(m.checkoutSteps(ctx, corr)); !equal(got, []string{"CheckoutStarted", "ReservationsRequested", "ItemReserved"}) {
		t.Errorf("workflow %v, want each step once", got)
	}
	steps := 0
	for _, e := range m.history(ctx, checkout.Domain, fanout.ProcessManagerRoot(corr)) {
		if e.typeName() == "ProcessManagerStep" {
			steps++
		}
	}
	if steps != 3 {
		t.Errorf("%d ProcessManagerStep events, want 3: one per triggering event (CartCheckedOut, OrderCreated, StockReserved)", steps)
	}
	m.noDeadLetters(ctx)
}
