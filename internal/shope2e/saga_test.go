package shope2e_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/angzarr-mesh/angzarr/examples/go/roots"
	"github.com/angzarr-mesh/angzarr/internal/testutil"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	ex "github.com/angzarr-mesh/angzarr/proto/examples"
)

// effectTimeout bounds how long an asynchronous saga effect may take to be
// stored on two busy cores under -race.
const effectTimeout = 30 * time.Second

// TestCompletedOrderEarnsLoyaltyPointsAndShipsExactlyOnce runs the order
// path (customer, order, payment, confirmation; the sagas' loyalty credit
// and shipment) through each proxy (eachLane).
func TestCompletedOrderEarnsLoyaltyPointsAndShipsExactlyOnce(t *testing.T) {
	eachLane(t, completedOrderEarnsLoyaltyPointsAndShipsExactlyOnce)
}

func completedOrderEarnsLoyaltyPointsAndShipsExactlyOnce(t *testing.T, m *mesh) {
	ctx := ctxT(t, 2*time.Minute)
	customer, order := uuid.New(), uuid.New()
	corr := "completed-" + order.String()
	shipment := roots.Of(order.String())

	m.send(ctx, "customer", customer, "", 0, &ex.CreateCustomer{Name: "Ada", Email: "ada@example.com"})
	m.send(ctx, "order", order, corr, 0, &ex.CreateOrder{CustomerId: customer.String(), Items: []*ex.LineItem{
		{ProductId: "teapot", Name: "Teapot", Quantity: 2, UnitPriceCents: 1500},
		{ProductId: "cup", Name: "Cup", Quantity: 4, UnitPriceCents: 500},
	}})
	m.send(ctx, "order", order, corr, 1, &ex.SubmitPayment{PaymentMethod: "card", AmountCents: 5000})
	// SYNC NONE: the filter stores OrderCompleted and answers; the sagas
	// run later, from the order domain's log.
	resp, err := m.coordinator("order").HandleSync(ctx, &pb.SyncCommandBook{SyncMode: pb.SyncMode_SYNC_MODE_NONE,
		Command: command(t, "order", order, corr, 2, &ex.ConfirmPayment{PaymentReference: "pay-1"})})
	if err != nil {
		t.Fatal(err)
	}
	if got := flatten(t, []*pb.EventBook{resp.GetEvents()}); len(got) != 1 || got[0].typeName() != "OrderCompleted" ||
		len(resp.GetCascade()) != 0 || len(resp.GetProjections()) != 0 {
		t.Fatalf("ConfirmPayment with SYNC NONE answered %v", resp)
	}

	// The effects appear, asynchronously.
	testutil.EventuallyWhy(t, func() (bool, string) {
		c, s := m.history(ctx, "customer", customer), m.history(ctx, "fulfillment", shipment)
		return len(ofType(c, "LoyaltyPointsAdded")) > 0 && len(ofType(s, "ShipmentCreated")) > 0,
			"customer " + describe(c) + "; shipment " + describe(s)
	})
	// Every saga has now handled every order event: a duplicate would be
	// stored by now.
	m.caughtUp(ctx, shopSubscribers...)

	c := m.history(ctx, "customer", customer)
	if len(c) != 2 || c[0].typeName() != "CustomerCreated" {
		t.Fatalf("customer history %v, want CustomerCreated and one LoyaltyPointsAdded", c)
	}
	added := c[1].msg.(*ex.LoyaltyPointsAdded)
	if added.GetPoints() != 50 || added.GetNewBalance() != 50 || added.GetNewLifetimePoints() != 50 ||
		!strings.Contains(added.GetReason(), order.String()) {
		t.Errorf("LoyaltyPointsAdded %v: want 50 points (1 per dollar of 5000 cents) for order %s", added, order)
	}
	s := m.history(ctx, "fulfillment", shipment)
	if len(s) != 1 || s[0].typeName() != "ShipmentCreated" {
		t.Fatalf("shipment history %v, want one ShipmentCreated", s)
	}
	if got := s[0].msg.(*ex.ShipmentCreated).GetOrderId(); got != order.String() {
		t.Errorf("shipment of order %q, want %s", got, order)
	}
	if o := m.history(ctx, "order", order); len(o) != 3 {
		t.Errorf("order history %v: the sagas must not write to the order", o)
	}
	// The saga commands kept the order's correlation id.
	if got := types(m.workflow(ctx, corr)); !equal(got, []string{"OrderCreated", "PaymentSubmitted", "OrderCompleted", "LoyaltyPointsAdded", "ShipmentCreated"}) &&
		!equal(got, []string{"OrderCreated", "PaymentSubmitted", "OrderCompleted", "ShipmentCreated", "LoyaltyPointsAdded"}) {
		t.Errorf("workflow %s: %v, want the order's three events, then the loyalty credit and the shipment", corr, got)
	}
	m.noDeadLetters(ctx)
}

func TestCancelledOrderReleasesReservationAndRefundsPointsExactlyOnce(t *testing.T) {
	m := startMesh(t)
	ctx := ctxT(t, 2*time.Minute)
	customer, order := uuid.New(), uuid.New()
	product := "kettle-" + order.String()[:8]
	stock := roots.Of(product)
	corr := "cancelled-" + order.String()

	// A customer with 100 points takes a 70-point discount on an order of
	// two kettles, whose stock is reserved for the order; the loyalty saga
	// takes the 70 points.
	m.send(ctx, "customer", customer, "", 0, &ex.CreateCustomer{Name: "Bo", Email: "bo@example.com"})
	m.send(ctx, "customer", customer, "", 1, &ex.AddLoyaltyPoints{Points: 100, Reason: "welcome"})
	m.send(ctx, "inventory", stock, "", 0, &ex.InitializeStock{ProductId: product, Quantity: 10, LowStockThreshold: 1})
	m.send(ctx, "order", order, corr, 0, &ex.CreateOrder{CustomerId: customer.String(), Items: []*ex.LineItem{
		{ProductId: product, Name: "Kettle", Quantity: 2, UnitPriceCents: 3000},
	}})
	m.send(ctx, "inventory", stock, corr, 1, &ex.ReserveStock{Quantity: 2, OrderId: order.String()})
	m.send(ctx, "order", order, corr, 1, &ex.ApplyLoyaltyDiscount{Points: 70, DiscountCents: 700})
	testutil.EventuallyWhy(t, func() (bool, string) {
		c := m.history(ctx, "customer", customer)
		return len(ofType(c, "LoyaltyPointsRedeemed")) > 0, "customer " + describe(c)
	})
	cancelled := m.send(ctx, "order", order, corr, 2, &ex.CancelOrder{Reason: "changed my mind"})
	if got := flatten(t, []*pb.EventBook{cancelled.GetEvents()}); len(got) != 1 || got[0].msg.(*ex.OrderCancelled).GetLoyaltyPointsUsed() != 70 {
		t.Fatalf("CancelOrder answered %v, want OrderCancelled with 70 points used", got)
	}

	testutil.EventuallyWhy(t, func() (bool, string) {
		c, i := m.history(ctx, "customer", customer), m.history(ctx, "inventory", stock)
		return len(c) >= 4 && len(ofType(i, "ReservationReleased")) > 0, "customer " + describe(c) + "; inventory " + describe(i)
	})
	m.caughtUp(ctx, shopSubscribers...)

	inv := m.history(ctx, "inventory", stock)
	if got := types(inv); !equal(got, []string{"StockInitialized", "StockReserved", "ReservationReleased"}) {
		t.Fatalf("inventory history %v, want the reservation released once", inv)
	}
	rel := inv[2].msg.(*ex.ReservationReleased)
	if rel.GetOrderId() != order.String() || rel.GetQuantity() != 2 || rel.GetNewAvailable() != 10 {
		t.Errorf("ReservationReleased %v: want 2 kettles of order %s back, 10 available", rel, order)
	}
	c := m.history(ctx, "customer", customer)
	if got := types(c); !equal(got, []string{"CustomerCreated", "LoyaltyPointsAdded", "LoyaltyPointsRedeemed", "LoyaltyPointsRefunded"}) {
		t.Fatalf("customer history %v, want the 70 points taken and given back once", c)
	}
	refund := c[3].msg.(*ex.LoyaltyPointsRefunded)
	if refund.GetPoints() != 70 || refund.GetNewBalance() != 100 || refund.GetReference() != order.String() ||
		!strings.Contains(refund.GetReason(), "refund") || !strings.Contains(refund.GetReason(), order.String()) {
		t.Errorf("refund %v: want 70 points back to a balance of 100, for order %s", refund, order)
	}
	// The saga's commands kept the order's correlation id.
	flow := m.workflow(ctx, corr)
	for _, name := range []string{"ReservationReleased", "LoyaltyPointsRedeemed", "LoyaltyPointsRefunded"} {
		if n := len(ofType(flow, name)); n != 1 {
			t.Errorf("workflow %s has %d %s, want 1: %v", corr, n, name, types(flow))
		}
	}
	// A cancelled order ships nothing and earns nothing.
	if s := m.history(ctx, "fulfillment", roots.Of(order.String())); len(s) != 0 {
		t.Errorf("a cancelled order got a shipment: %v", s)
	}
	m.noDeadLetters(ctx)
}

// types lists the events' type names.
func types(events []event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.typeName()
	}
	return out
}

func equal(a, b []string) bool { return slices.Equal(a, b) }

// describe is a short account of events for a failure message.
func describe(events []event) string {
	return "[" + strings.Join(types(events), " ") + "]"
}
