package cart_test

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/angzarr-mesh/angzarr/examples/go/cart"
	"github.com/angzarr-mesh/angzarr/proto/examples"
	"github.com/angzarr-mesh/angzarr/sdk/sdktest"
)

type msgs = []proto.Message

var (
	created = &examples.CartCreated{CustomerId: "c-1"}
	// two mugs at 1000: subtotal 2000
	mugs       = &examples.ItemAdded{ProductId: "mug", Name: "Mug", Quantity: 2, UnitPriceCents: 1000, NewSubtotal: 2000}
	checkedOut = &examples.CartCheckedOut{FinalSubtotal: 2000, CustomerId: "c-1", Items: []*examples.CartItem{{ProductId: "mug", Name: "Mug", Quantity: 2, UnitPriceCents: 1000}}}
)

func TestCart(t *testing.T) {
	sdktest.Run(t, cart.Logic(), []sdktest.Case{
		{Name: "create", When: &examples.CreateCart{CustomerId: "c-1"}, Then: msgs{created}},
		{Name: "create twice", Given: msgs{created}, When: &examples.CreateCart{CustomerId: "c-1"}, Code: codes.FailedPrecondition, Phrase: "already exists"},

		{Name: "add item", Given: msgs{created}, When: &examples.AddItem{ProductId: "mug", Name: "Mug", Quantity: 2, UnitPriceCents: 1000}, Then: msgs{mugs}},
		{Name: "add to a missing cart", When: &examples.AddItem{ProductId: "mug", Quantity: 1, UnitPriceCents: 1}, Code: codes.FailedPrecondition, Phrase: "does not exist"},
		{Name: "adding a product already in the cart raises its quantity", Given: msgs{created, mugs},
			When: &examples.AddItem{ProductId: "mug", Name: "Mug", Quantity: 3, UnitPriceCents: 1000},
			Then: msgs{&examples.ItemAdded{ProductId: "mug", Name: "Mug", Quantity: 5, UnitPriceCents: 1000, NewSubtotal: 5000}}},
		{Name: "add a second product", Given: msgs{created, mugs},
			When: &examples.AddItem{ProductId: "tea", Name: "Tea", Quantity: 1, UnitPriceCents: 500},
			Then: msgs{&examples.ItemAdded{ProductId: "tea", Name: "Tea", Quantity: 1, UnitPriceCents: 500, NewSubtotal: 2500}}},
		{Name: "add zero quantity", Given: msgs{created}, When: &examples.AddItem{ProductId: "mug", Quantity: 0, UnitPriceCents: 1000},
			Code: codes.InvalidArgument, Phrase: "quantity"},
		{Name: "add negative quantity", Given: msgs{created}, When: &examples.AddItem{ProductId: "mug", Quantity: -1, UnitPriceCents: 1000},
			Code: codes.InvalidArgument, Phrase: "quantity"},
		{Name: "add after checkout", Given: msgs{created, mugs, checkedOut}, When: &examples.AddItem{ProductId: "mug", Quantity: 1, UnitPriceCents: 1000},
			Code: codes.FailedPrecondition, Phrase: "checked out"},

		{Name: "update quantity", Given: msgs{created, mugs}, When: &examples.UpdateQuantity{ProductId: "mug", NewQuantity: 4},
			Then: msgs{&examples.QuantityUpdated{ProductId: "mug", OldQuantity: 2, NewQuantity: 4, NewSubtotal: 4000}}},
		{Name: "update a product not in the cart", Given: msgs{created, mugs}, When: &examples.UpdateQuantity{ProductId: "tea", NewQuantity: 1},
			Code: codes.NotFound, Phrase: "not in cart"},
		{Name: "update to zero quantity", Given: msgs{created, mugs}, When: &examples.UpdateQuantity{ProductId: "mug", NewQuantity: 0},
			Code: codes.InvalidArgument, Phrase: "quantity"},
		{Name: "update on a missing cart", When: &examples.UpdateQuantity{ProductId: "mug", NewQuantity: 1}, Code: codes.FailedPrecondition, Phrase: "does not exist"},

		{Name: "remove", Given: msgs{created, mugs}, When: &examples.RemoveItem{ProductId: "mug"},
			Then: msgs{&examples.ItemRemoved{ProductId: "mug", Quantity: 2, NewSubtotal: 0}}},
		{Name: "remove a product not in the cart", Given: msgs{created, mugs}, When: &examples.RemoveItem{ProductId: "tea"},
			Code: codes.NotFound, Phrase: "not in cart"},
		{Name: "remove on a missing cart", When: &examples.RemoveItem{ProductId: "mug"}, Code: codes.FailedPrecondition, Phrase: "does not exist"},

		{Name: "percentage coupon 10 on 2000", Given: msgs{created, mugs}, When: &examples.ApplyCoupon{Code: "TEN", CouponType: "percentage", Value: 10},
			Then: msgs{&examples.CouponApplied{CouponCode: "TEN", CouponType: "percentage", DiscountCents: 200}}},
		{Name: "percentage above 100", Given: msgs{created, mugs}, When: &examples.ApplyCoupon{Code: "X", CouponType: "percentage", Value: 101},
			Code: codes.InvalidArgument, Phrase: "percentage"},
		{Name: "percentage below 0", Given: msgs{created, mugs}, When: &examples.ApplyCoupon{Code: "X", CouponType: "percentage", Value: -1},
			Code: codes.InvalidArgument, Phrase: "percentage"},
		{Name: "fixed coupon 500", Given: msgs{created, mugs}, When: &examples.ApplyCoupon{Code: "FIVE", CouponType: "fixed", Value: 500},
			Then: msgs{&examples.CouponApplied{CouponCode: "FIVE", CouponType: "fixed", DiscountCents: 500}}},
		{Name: "fixed coupon capped at the subtotal", Given: msgs{created, mugs}, When: &examples.ApplyCoupon{Code: "BIG", CouponType: "fixed", Value: 5000},
			Then: msgs{&examples.CouponApplied{CouponCode: "BIG", CouponType: "fixed", DiscountCents: 2000}}},
		{Name: "a second coupon", Given: msgs{created, mugs, &examples.CouponApplied{CouponCode: "TEN", CouponType: "percentage", DiscountCents: 200}},
			When: &examples.ApplyCoupon{Code: "FIVE", CouponType: "fixed", Value: 500}, Code: codes.FailedPrecondition, Phrase: "already applied"},
		{Name: "coupon on an empty cart", Given: msgs{created}, When: &examples.ApplyCoupon{Code: "TEN", CouponType: "percentage", Value: 10},
			Code: codes.FailedPrecondition, Phrase: "empty"},
		{Name: "unknown coupon type", Given: msgs{created, mugs}, When: &examples.ApplyCoupon{Code: "X", CouponType: "bogus", Value: 1},
			Code: codes.InvalidArgument, Phrase: "coupon type"},

		{Name: "clear", Given: msgs{created, mugs}, When: &examples.ClearCart{}, Then: msgs{&examples.CartCleared{NewSubtotal: 0}}},
		{Name: "clear removes the coupon", Given: msgs{created, mugs, &examples.CouponApplied{CouponCode: "TEN", DiscountCents: 200}, &examples.CartCleared{}, mugs},
			When: &examples.ApplyCoupon{Code: "FIVE", CouponType: "fixed", Value: 500},
			Then: msgs{&examples.CouponApplied{CouponCode: "FIVE", CouponType: "fixed", DiscountCents: 500}}},
		{Name: "clear empties the cart", Given: msgs{created, mugs, &examples.CartCleared{}}, When: &examples.Checkout{},
			Code: codes.FailedPrecondition, Phrase: "empty"},

		{Name: "checkout of 2000", Given: msgs{created, mugs}, When: &examples.Checkout{}, Then: msgs{checkedOut}},
		{Name: "checkout carries the discount", Given: msgs{created, mugs, &examples.CouponApplied{CouponCode: "TEN", CouponType: "percentage", DiscountCents: 200}},
			When: &examples.Checkout{},
			Then: msgs{&examples.CartCheckedOut{FinalSubtotal: 2000, DiscountCents: 200, Items: checkedOut.Items, CustomerId: "c-1"}}},
		{Name: "checkout an empty cart", Given: msgs{created}, When: &examples.Checkout{}, Code: codes.FailedPrecondition, Phrase: "empty"},
		{Name: "checkout twice", Given: msgs{created, mugs, checkedOut}, When: &examples.Checkout{}, Code: codes.FailedPrecondition, Phrase: "already checked out"},
		{Name: "checkout a missing cart", When: &examples.Checkout{}, Code: codes.FailedPrecondition, Phrase: "does not exist"},
	})
}
