package ordersummary_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	"github.com/angzarr-mesh/angzarr/examples/go/ordersummary"
	"github.com/angzarr-mesh/angzarr/examples/go/roots"
	"github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/proto/examples"
	"github.com/angzarr-mesh/angzarr/sdk/sdktest"
)

var (
	orderRoot = uuid.MustParse("7d0e2f4c-8a51-4b8e-9a53-0c4b6a1e2f10")
	orderID   = orderRoot.String()
	items     = []*examples.LineItem{{ProductId: "tv", Name: "TV", Quantity: 1, UnitPriceCents: 5000}}
)

// project sends events of aggregate root in domain, numbered from first, to
// HandleSync and returns the projection.
func project(t *testing.T, p *ordersummary.Projector, domain string, root uuid.UUID, first uint32, events ...proto.Message) *angzarr.Projection {
	t.Helper()
	out, err := p.HandleSync(context.Background(), sdktest.Book(t, domain, root, first, events...))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func summaryOf(t *testing.T, proj *angzarr.Projection) *examples.OrderSummary {
	t.Helper()
	s := &examples.OrderSummary{}
	if err := proj.GetProjection().UnmarshalTo(s); err != nil {
		t.Fatalf("projection: %v", err)
	}
	return s
}

func TestOrderLifecycle(t *testing.T) {
	p := ordersummary.New()
	proj := project(t, p, "order", orderRoot, 0,
		&examples.OrderCreated{CustomerId: "c-1", Items: items, SubtotalCents: 5000},
		&examples.LoyaltyDiscountApplied{PointsUsed: 50, DiscountCents: 500},
	)
	if proj.GetProjector() != ordersummary.Name || proj.GetSequence() != 1 || proj.GetCover().GetDomain() != "order" {
		t.Fatalf("projection header: %v", proj)
	}
	want := &examples.OrderSummary{OrderId: orderID, CustomerId: "c-1", Status: "pending", Items: items, SubtotalCents: 5000, DiscountCents: 500, TotalCents: 4500}
	if got := summaryOf(t, proj); !proto.Equal(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}

	proj = project(t, p, "order", orderRoot, 2,
		&examples.PaymentSubmitted{PaymentMethod: "card", AmountCents: 4500},
		&examples.OrderCompleted{FinalTotalCents: 4500, LoyaltyPointsEarned: 45, CustomerId: "c-1"},
	)
	want.Status, want.LoyaltyPointsEarned = "completed", 45
	if got := summaryOf(t, proj); !proto.Equal(got, want) || proj.GetSequence() != 3 {
		t.Fatalf("got %v (seq %d)\nwant %v", got, proj.GetSequence(), want)
	}

	shipment := roots.Of(orderID)
	project(t, p, "fulfillment", shipment, 0, &examples.ShipmentCreated{OrderId: orderID}, &examples.ItemsPicked{OrderId: orderID})
	proj = project(t, p, "fulfillment", shipment, 2, &examples.ItemsPacked{OrderId: orderID}, &examples.Shipped{OrderId: orderID, Carrier: "UPS", TrackingNumber: "1Z"})
	want.ShipmentStatus, want.Carrier, want.TrackingNumber = "shipped", "UPS", "1Z"
	if got := summaryOf(t, proj); !proto.Equal(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	if _, err := p.Handle(context.Background(), sdktest.Book(t, "fulfillment", shipment, 4, &examples.Delivered{OrderId: orderID})); err != nil {
		t.Fatal(err)
	}
	want.ShipmentStatus = "delivered"
	if got, ok := p.Summary(orderID); !ok || !proto.Equal(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
}

func TestCancelled(t *testing.T) {
	p := ordersummary.New()
	proj := project(t, p, "order", orderRoot, 0,
		&examples.OrderCreated{CustomerId: "c-1", Items: items, SubtotalCents: 5000},
		&examples.OrderCancelled{Reason: "too late", CustomerId: "c-1", Items: items},
	)
	if got := summaryOf(t, proj); got.Status != "cancelled" || got.CancelReason != "too late" {
		t.Fatalf("got %v", got)
	}
}

// TestRedeliveryIsIdempotent delivers books again (whole and overlapping):
// pages below the sequence already projected change nothing.
func TestRedeliveryIsIdempotent(t *testing.T) {
	p := ordersummary.New()
	created := &examples.OrderCreated{CustomerId: "c-1", Items: items, SubtotalCents: 5000}
	discount := &examples.LoyaltyDiscountApplied{PointsUsed: 50, DiscountCents: 500}
	first := summaryOf(t, project(t, p, "order", orderRoot, 0, created, discount))

	again := project(t, p, "order", orderRoot, 0, created, discount)
	if got := summaryOf(t, again); !proto.Equal(got, first) {
		t.Fatalf("redelivery changed the summary:\n got %v\nwant %v", got, first)
	}
	// An overlapping book: page 1 again, then page 2 is new.
	proj := project(t, p, "order", orderRoot, 1, discount, &examples.PaymentSubmitted{AmountCents: 4500})
	if got := summaryOf(t, proj); got.Status != "payment_submitted" || got.TotalCents != 4500 || got.DiscountCents != 500 {
		t.Fatalf("got %v", got)
	}
	// Redelivering the creation after later events must not reset them.
	if got := summaryOf(t, project(t, p, "order", orderRoot, 0, created)); got.Status != "payment_submitted" || got.DiscountCents != 500 {
		t.Fatalf("redelivered creation reset the summary: %v", got)
	}
}

// TestRevokedDiscount: a discount the customer's points did not cover is
// taken back; the order is due in full and a discounted payment is void.
func TestRevokedDiscount(t *testing.T) {
	p := ordersummary.New()
	proj := project(t, p, "order", orderRoot, 0,
		&examples.OrderCreated{CustomerId: "c-1", Items: items, SubtotalCents: 5000},
		&examples.LoyaltyDiscountApplied{PointsUsed: 50, DiscountCents: 500},
		&examples.PaymentSubmitted{AmountCents: 4500},
		&examples.LoyaltyDiscountRevoked{Points: 50, DiscountCents: 500, Reason: "insufficient points"},
	)
	if got := summaryOf(t, proj); got.Status != "pending" || got.TotalCents != 5000 || got.DiscountCents != 0 {
		t.Fatalf("got %v, want a pending order due in full", got)
	}
}

func TestUnknownOrderHasNoSummary(t *testing.T) {
	p := ordersummary.New()
	proj := project(t, p, "inventory", roots.Of("mug"), 0, &examples.StockReserved{OrderId: "o-1", Quantity: 1})
	if proj.GetProjection() != nil {
		t.Fatalf("inventory events must not make a summary: %v", proj)
	}
	if _, ok := p.Summary("o-1"); ok {
		t.Fatal("summary for an order never seen")
	}
}
