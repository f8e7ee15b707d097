package order_test

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/angzarr-mesh/angzarr/examples/go/order"
	"github.com/angzarr-mesh/angzarr/proto/examples"
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
	discount    = &examples.LoyaltyDiscountApplied{PointsUsed: 50, DiscountCents: 500}
	submitted   = &examples.PaymentSubmitted{PaymentMethod: "card", AmountCents: 5000}
	completed   = &examples.OrderCompleted{FinalTotalCents: 5000, LoyaltyPointsEarned: 50, CustomerId: "c-1", PaymentReference: "ref"}
	cancelled   = &examples.OrderCancelled{Reason: "changed my mind", CustomerId: "c-1", Items: items}
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
			Then: msgs{&examples.LoyaltyDiscountApplied{PointsUsed: 500, DiscountCents: 5000}}},

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
