package sagas_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	"github.com/angzarr-mesh/angzarr/examples/go/roots"
	"github.com/angzarr-mesh/angzarr/examples/go/sagas"
	"github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/proto/examples"
	"github.com/angzarr-mesh/angzarr/sdk"
	"github.com/angzarr-mesh/angzarr/sdk/sdktest"
)

var (
	orderRoot = uuid.MustParse("7d0e2f4c-8a51-4b8e-9a53-0c4b6a1e2f10")
	customer  = uuid.MustParse("0b6c7a5e-3f0d-4a8b-8c1e-5d2f9e7a6b41")
)

// want is one expected command.
type want struct {
	domain string
	root   uuid.UUID
	cmd    proto.Message
}

// check runs saga on events (of the order, from sequence 3) and compares the
// commands it returns with wants.
func check(t *testing.T, saga *sdk.Saga, events []proto.Message, wants []want) {
	t.Helper()
	resp, err := saga.HandleSync(context.Background(), sdktest.Book(t, "order", orderRoot, 3, events...))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Commands) != len(wants) {
		t.Fatalf("got %d commands, want %d: %v", len(resp.Commands), len(wants), resp.Commands)
	}
	for i, w := range wants {
		book := resp.Commands[i]
		root, err := sdk.RootID(book.GetCover().GetRoot())
		if err != nil {
			t.Fatal(err)
		}
		if book.GetCover().GetDomain() != w.domain || root != w.root {
			t.Errorf("command %d goes to %s/%v, want %s/%v", i, book.GetCover().GetDomain(), root, w.domain, w.root)
		}
		if book.GetCover().GetCorrelationId() != sdktest.CorrelationID {
			t.Errorf("command %d correlation %q, want the trigger's %q", i, book.GetCover().GetCorrelationId(), sdktest.CorrelationID)
		}
		if book.GetSagaOrigin() != nil || book.GetAutoResequence() || book.GetIdempotencyKey() != "" {
			t.Errorf("command %d sets fields the framework sets: %v", i, book)
		}
		if len(book.GetPages()) != 1 || book.GetPages()[0].GetSequence() != 0 {
			t.Fatalf("command %d: want one page at sequence 0, got %v", i, book.GetPages())
		}
		if got := sdktest.Unpack(t, book.GetPages()[0].GetCommand()); !proto.Equal(got, w.cmd) {
			t.Errorf("command %d is %v, want %v", i, got, w.cmd)
		}
	}
}

func TestLoyaltyEarn(t *testing.T) {
	t.Run("points earned go to the customer", func(t *testing.T) {
		check(t, sagas.LoyaltyEarn(),
			[]proto.Message{&examples.OrderCompleted{FinalTotalCents: 5000, LoyaltyPointsEarned: 50, CustomerId: customer.String()}},
			[]want{{"customer", customer, &examples.AddLoyaltyPoints{Points: 50, Reason: "earned by order " + orderRoot.String()}}})
	})
	t.Run("zero points issue nothing", func(t *testing.T) {
		check(t, sagas.LoyaltyEarn(), []proto.Message{&examples.OrderCompleted{FinalTotalCents: 99, CustomerId: customer.String()}}, nil)
	})
	t.Run("a customer id that is not a UUID is derived", func(t *testing.T) {
		check(t, sagas.LoyaltyEarn(),
			[]proto.Message{&examples.OrderCompleted{LoyaltyPointsEarned: 5, CustomerId: "cust-1"}},
			[]want{{"customer", roots.Of("cust-1"), &examples.AddLoyaltyPoints{Points: 5, Reason: "earned by order " + orderRoot.String()}}})
	})
	t.Run("other events issue nothing", func(t *testing.T) {
		check(t, sagas.LoyaltyEarn(), []proto.Message{&examples.OrderCreated{CustomerId: customer.String()}, &examples.PaymentSubmitted{}}, nil)
	})
	t.Run("a loyalty discount takes its points under the order's id", func(t *testing.T) {
		check(t, sagas.LoyaltyEarn(),
			[]proto.Message{&examples.LoyaltyDiscountApplied{PointsUsed: 300, DiscountCents: 300, CustomerId: customer.String()}},
			[]want{{"customer", customer, &examples.RedeemLoyaltyPoints{Points: 300, RedemptionType: "discount", Reference: orderRoot.String()}}})
	})
}

func TestFulfillment(t *testing.T) {
	t.Run("a completed order gets a shipment at the derived root", func(t *testing.T) {
		check(t, sagas.Fulfillment(),
			[]proto.Message{&examples.PaymentSubmitted{}, &examples.OrderCompleted{LoyaltyPointsEarned: 0, CustomerId: customer.String()}},
			[]want{{"fulfillment", roots.Of(orderRoot.String()), &examples.CreateShipment{OrderId: orderRoot.String()}}})
	})
	t.Run("a cancelled order gets none", func(t *testing.T) {
		check(t, sagas.Fulfillment(), []proto.Message{&examples.OrderCancelled{}}, nil)
	})
}

func TestCancellation(t *testing.T) {
	items := []*examples.LineItem{{ProductId: "mug", Quantity: 2}, {ProductId: "pot", Quantity: 1}, {ProductId: "mug", Quantity: 1}}
	release := &examples.ReleaseReservation{OrderId: orderRoot.String()}
	t.Run("releases each product's reservation", func(t *testing.T) {
		check(t, sagas.Cancellation(),
			[]proto.Message{&examples.OrderCancelled{Reason: "r", CustomerId: customer.String(), Items: items}},
			[]want{{"inventory", roots.Of("mug"), release}, {"inventory", roots.Of("pot"), release}})
	})
	t.Run("refunds the loyalty points used", func(t *testing.T) {
		check(t, sagas.Cancellation(),
			[]proto.Message{&examples.OrderCancelled{Reason: "r", LoyaltyPointsUsed: 70, CustomerId: customer.String(), Items: items[:1]}},
			[]want{
				{"inventory", roots.Of("mug"), release},
				{"customer", customer, &examples.RefundLoyaltyPoints{Reference: orderRoot.String(), Reason: "refund for cancelled order " + orderRoot.String()}},
			})
	})
	t.Run("completed orders issue nothing", func(t *testing.T) {
		check(t, sagas.Cancellation(), []proto.Message{&examples.OrderCompleted{LoyaltyPointsEarned: 9}}, nil)
	})
}

// TestHandleAcknowledges checks the asynchronous entry point.
func TestHandleAcknowledges(t *testing.T) {
	book := sdktest.Book(t, "order", orderRoot, 0, &examples.OrderCompleted{LoyaltyPointsEarned: 5, CustomerId: customer.String()})
	for _, s := range []angzarr.SagaServer{sagas.LoyaltyEarn(), sagas.Fulfillment(), sagas.Cancellation()} {
		if _, err := s.Handle(context.Background(), book); err != nil {
			t.Fatal(err)
		}
	}
}
