package order_test

import (
	"context"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/angzarr-mesh/angzarr/examples/go/order"
	"github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/proto/examples"
	"github.com/angzarr-mesh/angzarr/sdk"
	"github.com/angzarr-mesh/angzarr/sdk/sdktest"
)

type msgs = []proto.Message

var (
	// 2×1000 + 1×2500 = 4500
	items = []*examples.LineItem{
		{ProductId: "mug", Name: "Mug", Quantity: 2, UnitPriceCents: 1000},
		{ProductId: "pot", Name: "Pot", Quantity: 1, UnitPriceCents: 2500},
	}
	created = &examples.OrderCreated{CustomerId: "c-1", Items: items, SubtotalCents: 4500}
	// a 5000 order
	created5000 = &examples.OrderCreated{CustomerId: "c-1", Items: []*examples.LineItem{{ProductId: "tv", Quantity: 1, UnitPriceCents: 5000}}, SubtotalCents: 5000}
	discount    = &examples.LoyaltyDiscountApplied{PointsUsed: 50, DiscountCents: 500, CustomerId: "c-1"}
	submitted   = &examples.PaymentSubmitted{PaymentMethod: "card", AmountCents: 5000}
	completed   = &examples.OrderCompleted{FinalTotalCents: 5000, LoyaltyPointsEarned: 50, CustomerId: "c-1", PaymentReference: "ref"}
	cancelled   = &examples.OrderCancelled{Reason: "changed my mind", CustomerId: "c-1", Items: items}
	revoked     = &examples.LoyaltyDiscountRevoked{Points: 50, DiscountCents: 500, Reason: "insufficient points: balance 0, asked 50"}
)

func TestOrder(t *testing.T) {
	sdktest.Run(t, order.Logic(), []sdktest.Case{
		{Name: "create sums the lines", When: &examples.CreateOrder{CustomerId: "c-1", Items: items}, Then: msgs{created}},
		{Name: "create twice", Given: msgs{created}, When: &examples.CreateOrder{CustomerId: "c-1", Items: items}, Code: codes.FailedPrecondition, Phrase: "already exists"},
		{Name: "create without items", When: &examples.CreateOrder{CustomerId: "c-1"}, Code: codes.InvalidArgument, Phrase: "items"},
		{Name: "create with a zero quantity line", When: &examples.CreateOrder{CustomerId: "c-1", Items: []*examples.LineItem{{ProductId: "mug", Quantity: 0, UnitPriceCents: 1}}},
			Code: codes.InvalidArgument, Phrase: "quantity"},
		{Name: "create with a negative quantity line", When: &examples.CreateOrder{CustomerId: "c-1", Items: []*examples.LineItem{{ProductId: "mug", Quantity: -2, UnitPriceCents: 1}}},
			Code: codes.InvalidArgument, Phrase: "quantity"},

		{Name: "loyalty discount", Given: msgs{created5000}, When: &examples.ApplyLoyaltyDiscount{Points: 50, DiscountCents: 500}, Then: msgs{discount}},
		{Name: "loyalty discount twice", Given: msgs{created5000, discount}, When: &examples.ApplyLoyaltyDiscount{Points: 10, DiscountCents: 100},
			Code: codes.FailedPrecondition, Phrase: "already applied"},
		{Name: "loyalty discount after payment submitted", Given: msgs{created5000, submitted}, When: &examples.ApplyLoyaltyDiscount{Points: 10, DiscountCents: 100},
			Code: codes.FailedPrecondition, Phrase: "pending"},
		{Name: "loyalty discount on a cancelled order", Given: msgs{created, cancelled}, When: &examples.ApplyLoyaltyDiscount{Points: 10, DiscountCents: 100},
			Code: codes.FailedPrecondition, Phrase: "cancelled"},
		{Name: "loyalty discount of zero", Given: msgs{created5000}, When: &examples.ApplyLoyaltyDiscount{Points: 10, DiscountCents: 0},
			Code: codes.InvalidArgument, Phrase: "discount"},
		{Name: "loyalty discount above the subtotal", Given: msgs{created5000}, When: &examples.ApplyLoyaltyDiscount{Points: 10, DiscountCents: 5001},
			Code: codes.InvalidArgument, Phrase: "discount"},
		{Name: "loyalty discount of the whole subtotal", Given: msgs{created5000}, When: &examples.ApplyLoyaltyDiscount{Points: 500, DiscountCents: 5000},
			Then: msgs{&examples.LoyaltyDiscountApplied{PointsUsed: 500, DiscountCents: 5000, CustomerId: "c-1"}}},
		{Name: "loyalty discount without points", Given: msgs{created5000}, When: &examples.ApplyLoyaltyDiscount{Points: 0, DiscountCents: 100},
			Code: codes.InvalidArgument, Phrase: "positive"},
		{Name: "payment in full after the discount was revoked", Given: msgs{created5000, discount, revoked},
			When: &examples.SubmitPayment{PaymentMethod: "card", AmountCents: 5000}, Then: msgs{submitted}},
		{Name: "a revoked discount voids the discounted payment", Given: msgs{created5000, discount, &examples.PaymentSubmitted{AmountCents: 4500}, revoked},
			When: &examples.SubmitPayment{PaymentMethod: "card", AmountCents: 5000}, Then: msgs{submitted}},
		{Name: "cancel after the discount was revoked returns no points", Given: msgs{created5000, discount, revoked},
			When: &examples.CancelOrder{Reason: "r"},
			Then: msgs{&examples.OrderCancelled{Reason: "r", CustomerId: "c-1", Items: created5000.Items}}},

		{Name: "payment of subtotal minus discount", Given: msgs{created5000, discount}, When: &examples.SubmitPayment{PaymentMethod: "card", AmountCents: 4500},
			Then: msgs{&examples.PaymentSubmitted{PaymentMethod: "card", AmountCents: 4500}}},
		{Name: "payment of the wrong amount", Given: msgs{created5000, discount}, When: &examples.SubmitPayment{PaymentMethod: "card", AmountCents: 5000},
			Code: codes.InvalidArgument, Phrase: "amount"},
		{Name: "payment twice", Given: msgs{created5000, submitted}, When: &examples.SubmitPayment{PaymentMethod: "card", AmountCents: 5000},
			Code: codes.FailedPrecondition, Phrase: "already submitted"},
		{Name: "payment on a missing order", When: &examples.SubmitPayment{AmountCents: 1}, Code: codes.FailedPrecondition, Phrase: "does not exist"},

		{Name: "confirm 5000 earns 50 points", Given: msgs{created5000, submitted}, When: &examples.ConfirmPayment{PaymentReference: "ref"}, Then: msgs{completed}},
		{Name: "confirm earns per whole dollar", Given: msgs{created, &examples.PaymentSubmitted{AmountCents: 4599}}, When: &examples.ConfirmPayment{},
			Then: msgs{&examples.OrderCompleted{FinalTotalCents: 4599, LoyaltyPointsEarned: 45, CustomerId: "c-1"}}},
		{Name: "confirm without payment", Given: msgs{created5000}, When: &examples.ConfirmPayment{}, Code: codes.FailedPrecondition, Phrase: "payment not submitted"},
		{Name: "confirm twice", Given: msgs{created5000, submitted, completed}, When: &examples.ConfirmPayment{}, Code: codes.FailedPrecondition, Phrase: "already completed"},

		{Name: "cancel while pending", Given: msgs{created}, When: &examples.CancelOrder{Reason: "changed my mind"}, Then: msgs{cancelled}},
		{Name: "cancel with payment submitted returns the points used", Given: msgs{created5000, discount, &examples.PaymentSubmitted{AmountCents: 4500}},
			When: &examples.CancelOrder{Reason: "r"},
			Then: msgs{&examples.OrderCancelled{Reason: "r", LoyaltyPointsUsed: 50, CustomerId: "c-1", Items: created5000.Items}}},
		{Name: "cancel a completed order", Given: msgs{created5000, submitted, completed}, When: &examples.CancelOrder{}, Code: codes.FailedPrecondition, Phrase: "completed"},
		{Name: "cancel twice", Given: msgs{created, cancelled}, When: &examples.CancelOrder{}, Code: codes.FailedPrecondition, Phrase: "already cancelled"},
		{Name: "cancel a missing order", When: &examples.CancelOrder{}, Code: codes.FailedPrecondition, Phrase: "does not exist"},
	})
}

// compensation is the framework's SagaCompensation for a refused command.
func compensation(t *testing.T, cmd proto.Message, reason string) *angzarr.SagaCompensation {
	t.Helper()
	book, err := sdk.Command("customer", sdktest.Root, "corr", cmd)
	if err != nil {
		t.Fatal(err)
	}
	return &angzarr.SagaCompensation{RefusedCommand: book, Code: int32(codes.FailedPrecondition), Reason: reason}
}

// TestRefusedRedemption: the loyalty saga's RedeemLoyaltyPoints for the
// order's discount was refused; the order takes the discount back while it
// can, and otherwise asks the framework for what fits.
func TestRefusedRedemption(t *testing.T) {
	refused := compensation(t, &examples.RedeemLoyaltyPoints{Points: 50, RedemptionType: "discount", Reference: sdktest.Root.String()},
		"insufficient points: balance 0, asked 50")
	sdktest.Run(t, order.Logic(), []sdktest.Case{
		{Name: "pending: the discount is revoked", Given: msgs{created5000, discount}, When: refused, Then: msgs{revoked}},
		{Name: "payment submitted: revoked too", Given: msgs{created5000, discount, &examples.PaymentSubmitted{AmountCents: 4500}}, When: refused, Then: msgs{revoked}},
		{Name: "revoked already: nothing to do", Given: msgs{created5000, discount, revoked}, When: refused, Then: nil},
		{Name: "cancelled: nothing owed", Given: msgs{created5000, discount, cancelled}, When: refused, Then: nil},
		{Name: "completed: escalated", Given: msgs{created5000, discount, &examples.PaymentSubmitted{AmountCents: 4500}, completed}, When: refused,
			Code: codes.FailedPrecondition, Phrase: "did not cover"},
	})
	other := compensation(t, &examples.ReleaseReservation{OrderId: "o"}, "stock not initialized")
	for _, tc := range []struct {
		name    string
		c       *angzarr.SagaCompensation
		given   msgs
		actions []angzarr.CompensationAction
	}{
		{"completed", refused, msgs{created5000, discount, &examples.PaymentSubmitted{AmountCents: 4500}, completed},
			[]angzarr.CompensationAction{angzarr.CompensationAction_COMPENSATION_ACTION_RECORD_FAILURE, angzarr.CompensationAction_COMPENSATION_ACTION_ESCALATE}},
		{"another command: the saga's fallback", other, msgs{created5000, cancelled}, nil},
	} {
		t.Run("request "+tc.name, func(t *testing.T) {
			book, err := order.Logic().Handle(context.Background(), &angzarr.ContextualCommand{
				Events:  sdktest.Book(t, order.Domain, sdktest.Root, 0, tc.given...),
				Command: mustCommand(t, tc.c),
			})
			if err == nil {
				err = sdk.CompensationRequested(book)
			}
			st := status.Convert(err)
			if len(st.Details()) != 1 {
				t.Fatalf("answer %v, want a CompensationRequest", err)
			}
			req, ok := st.Details()[0].(*angzarr.CompensationRequest)
			if !ok || !slices.Equal(req.GetActions(), tc.actions) {
				t.Fatalf("requested %v, want %v", req.GetActions(), tc.actions)
			}
		})
	}
}

func mustCommand(t *testing.T, c *angzarr.SagaCompensation) *angzarr.CommandBook {
	t.Helper()
	book, err := sdk.Command(order.Domain, sdktest.Root, "corr", c)
	if err != nil {
		t.Fatal(err)
	}
	return book
}
