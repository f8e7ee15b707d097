// Package cart is the cart domain's business logic: a shopping cart up to
// checkout, with one coupon at most.
package cart

import (
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/angzarr-mesh/angzarr/proto/examples"
	"github.com/angzarr-mesh/angzarr/sdk"
)

// Domain is the domain this logic serves.
const Domain = "cart"

// Cart statuses.
const (
	Active     = "active"
	CheckedOut = "checked_out"
)

// Coupon types.
const (
	Percentage = "percentage"
	Fixed      = "fixed"
)

// Logic returns the cart domain's business logic.
func Logic() *sdk.Aggregate[*examples.CartState] {
	a := sdk.NewAggregate(Domain, func() *examples.CartState { return &examples.CartState{} })
	sdk.On(a, create)
	sdk.On(a, addItem)
	sdk.On(a, updateQuantity)
	sdk.On(a, removeItem)
	sdk.On(a, applyCoupon)
	sdk.On(a, clearCart)
	sdk.On(a, checkout)
	sdk.Apply(a, func(s *examples.CartState, e *examples.CartCreated) {
		s.CustomerId, s.Status = e.CustomerId, Active
	})
	sdk.Apply(a, func(s *examples.CartState, e *examples.ItemAdded) {
		if i := find(s, e.ProductId); i >= 0 {
			s.Items[i].Quantity, s.Items[i].UnitPriceCents = e.Quantity, e.UnitPriceCents
		} else {
			s.Items = append(s.Items, &examples.CartItem{ProductId: e.ProductId, Name: e.Name, Quantity: e.Quantity, UnitPriceCents: e.UnitPriceCents})
		}
		s.SubtotalCents = e.NewSubtotal
	})
	sdk.Apply(a, func(s *examples.CartState, e *examples.QuantityUpdated) {
		s.Items[find(s, e.ProductId)].Quantity, s.SubtotalCents = e.NewQuantity, e.NewSubtotal
	})
	sdk.Apply(a, func(s *examples.CartState, e *examples.ItemRemoved) {
		i := find(s, e.ProductId)
		s.Items, s.SubtotalCents = slices.Delete(s.Items, i, i+1), e.NewSubtotal
	})
	sdk.Apply(a, func(s *examples.CartState, e *examples.CouponApplied) {
		s.CouponCode, s.DiscountCents = e.CouponCode, e.DiscountCents
	})
	sdk.Apply(a, func(s *examples.CartState, e *examples.CartCleared) {
		s.Items, s.SubtotalCents, s.CouponCode, s.DiscountCents = nil, 0, "", 0
	})
	sdk.Apply(a, func(s *examples.CartState, e *examples.CartCheckedOut) { s.Status = CheckedOut })
	return a
}

// find is the index of product's line in the cart, or -1.
func find(s *examples.CartState, product string) int {
	return slices.IndexFunc(s.Items, func(it *examples.CartItem) bool { return it.ProductId == product })
}

// subtotal is the cart's subtotal with product's line at quantity (0 removes
// it; a product not in the cart at unitPrice).
func subtotal(s *examples.CartState, product string, quantity int32, unitPrice int64) int64 {
	total := int64(quantity) * unitPrice
	for _, it := range s.Items {
		if it.ProductId != product {
			total += int64(it.Quantity) * it.UnitPriceCents
		}
	}
	return total
}

// open refuses commands to a missing or checked-out cart.
func open(s *examples.CartState) error {
	switch s.Status {
	case "":
		return sdk.Precondition("cart does not exist")
	case CheckedOut:
		return sdk.Precondition("cart is already checked out")
	}
	return nil
}

func create(s *examples.CartState, c *examples.CreateCart) ([]proto.Message, error) {
	if s.Status != "" {
		return nil, sdk.Precondition("cart already exists")
	}
	return []proto.Message{&examples.CartCreated{CustomerId: c.CustomerId}}, nil
}

func addItem(s *examples.CartState, c *examples.AddItem) ([]proto.Message, error) {
	if err := open(s); err != nil {
		return nil, err
	}
	if c.Quantity <= 0 {
		return nil, sdk.Invalid("quantity must be positive, got %d", c.Quantity)
	}
	quantity := c.Quantity
	if i := find(s, c.ProductId); i >= 0 {
		quantity += s.Items[i].Quantity
	}
	return []proto.Message{&examples.ItemAdded{
		ProductId: c.ProductId, Name: c.Name, Quantity: quantity, UnitPriceCents: c.UnitPriceCents,
		NewSubtotal: subtotal(s, c.ProductId, quantity, c.UnitPriceCents),
	}}, nil
}

func updateQuantity(s *examples.CartState, c *examples.UpdateQuantity) ([]proto.Message, error) {
	if err := open(s); err != nil {
		return nil, err
	}
	i := find(s, c.ProductId)
	switch {
	case i < 0:
		return nil, sdk.NotFound("product %s not in cart", c.ProductId)
	case c.NewQuantity <= 0:
		return nil, sdk.Invalid("quantity must be positive, got %d", c.NewQuantity)
	}
	return []proto.Message{&examples.QuantityUpdated{
		ProductId: c.ProductId, OldQuantity: s.Items[i].Quantity, NewQuantity: c.NewQuantity,
		NewSubtotal: subtotal(s, c.ProductId, c.NewQuantity, s.Items[i].UnitPriceCents),
	}}, nil
}

func removeItem(s *examples.CartState, c *examples.RemoveItem) ([]proto.Message, error) {
	if err := open(s); err != nil {
		return nil, err
	}
	i := find(s, c.ProductId)
	if i < 0 {
		return nil, sdk.NotFound("product %s not in cart", c.ProductId)
	}
	return []proto.Message{&examples.ItemRemoved{
		ProductId: c.ProductId, Quantity: s.Items[i].Quantity, NewSubtotal: subtotal(s, c.ProductId, 0, 0),
	}}, nil
}

func applyCoupon(s *examples.CartState, c *examples.ApplyCoupon) ([]proto.Message, error) {
	if err := open(s); err != nil {
		return nil, err
	}
	switch {
	case c.Code == "":
		return nil, sdk.Invalid("coupon code is required")
	case s.CouponCode != "":
		return nil, sdk.Precondition("a coupon is already applied")
	case len(s.Items) == 0:
		return nil, sdk.Precondition("cart is empty")
	}
	var discount int64
	switch c.CouponType {
	case Percentage:
		if c.Value < 0 || c.Value > 100 {
			return nil, sdk.Invalid("percentage value must be 0-100, got %d", c.Value)
		}
		discount = s.SubtotalCents * c.Value / 100
	case Fixed:
		if c.Value < 0 {
			return nil, sdk.Invalid("fixed value must not be negative, got %d", c.Value)
		}
		discount = min(c.Value, s.SubtotalCents)
	default:
		return nil, sdk.Invalid("unknown coupon type %q (want percentage or fixed)", c.CouponType)
	}
	return []proto.Message{&examples.CouponApplied{CouponCode: c.Code, CouponType: c.CouponType, DiscountCents: discount}}, nil
}

func clearCart(s *examples.CartState, _ *examples.ClearCart) ([]proto.Message, error) {
	if err := open(s); err != nil {
		return nil, err
	}
	return []proto.Message{&examples.CartCleared{NewSubtotal: 0}}, nil
}

func checkout(s *examples.CartState, _ *examples.Checkout) ([]proto.Message, error) {
	if err := open(s); err != nil {
		return nil, err
	}
	if len(s.Items) == 0 {
		return nil, sdk.Precondition("cart is empty")
	}
	return []proto.Message{&examples.CartCheckedOut{
		FinalSubtotal: s.SubtotalCents,
		DiscountCents: min(s.DiscountCents, s.SubtotalCents),
		Items:         s.Items,
		CustomerId:    s.CustomerId,
	}}, nil
}
