// Package order is the order domain's business logic: an order from
// creation through loyalty discount and payment to completion, or its
// cancellation.
package order

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/proto/examples"
	"github.com/angzarr-mesh/angzarr/sdk"
)

// Domain is the domain this logic serves.
const Domain = "order"

// Order statuses.
const (
	Pending          = "pending"
	PaymentSubmitted = "payment_submitted"
	Completed        = "completed"
	Cancelled        = "cancelled"
)

// Logic returns the order domain's business logic.
func Logic() *sdk.Aggregate[*examples.OrderState] {
	a := sdk.NewAggregate(Domain, func() *examples.OrderState { return &examples.OrderState{} })
	sdk.On(a, create)
	sdk.On(a, applyDiscount)
	sdk.On(a, submitPayment)
	sdk.On(a, confirmPayment)
	sdk.On(a, cancel)
	sdk.OnCompensation(a, compensate)
	sdk.Apply(a, func(s *examples.OrderState, e *examples.OrderCreated) {
		s.CustomerId, s.Items, s.SubtotalCents, s.Status = e.CustomerId, e.Items, e.SubtotalCents, Pending
	})
	sdk.Apply(a, func(s *examples.OrderState, e *examples.LoyaltyDiscountApplied) {
		s.LoyaltyPointsUsed, s.DiscountCents = e.PointsUsed, e.DiscountCents
	})
	sdk.Apply(a, func(s *examples.OrderState, e *examples.LoyaltyDiscountRevoked) {
		s.LoyaltyPointsUsed, s.DiscountCents = 0, 0
		if s.Status == PaymentSubmitted { // the discounted payment is void
			s.Status, s.PaymentAmountCents = Pending, 0
		}
	})
	sdk.Apply(a, func(s *examples.OrderState, e *examples.PaymentSubmitted) {
		s.PaymentAmountCents, s.Status = e.AmountCents, PaymentSubmitted
	})
	sdk.Apply(a, func(s *examples.OrderState, e *examples.OrderCompleted) { s.Status = Completed })
	sdk.Apply(a, func(s *examples.OrderState, e *examples.OrderCancelled) { s.Status = Cancelled })
	return a
}

// live refuses commands to a missing, completed or cancelled order.
func live(s *examples.OrderState) error {
	switch s.Status {
	case "":
		return sdk.Precondition("order does not exist")
	case Completed:
		return sdk.Precondition("order already completed")
	case Cancelled:
		return sdk.Precondition("order already cancelled")
	}
	return nil
}

func create(s *examples.OrderState, c *examples.CreateOrder) ([]proto.Message, error) {
	if s.Status != "" {
		return nil, sdk.Precondition("order already exists")
	}
	if len(c.Items) == 0 {
		return nil, sdk.Invalid("an order needs items")
	}
	var subtotal int64
	for _, it := range c.Items {
		if it.Quantity <= 0 {
			return nil, sdk.Invalid("quantity of %s must be positive, got %d", it.ProductId, it.Quantity)
		}
		subtotal += int64(it.Quantity) * it.UnitPriceCents
	}
	return []proto.Message{&examples.OrderCreated{CustomerId: c.CustomerId, Items: c.Items, SubtotalCents: subtotal}}, nil
}

func applyDiscount(s *examples.OrderState, c *examples.ApplyLoyaltyDiscount) ([]proto.Message, error) {
	if err := live(s); err != nil {
		return nil, err
	}
	switch {
	case s.DiscountCents > 0:
		return nil, sdk.Precondition("loyalty discount already applied")
	case s.Status != Pending:
		return nil, sdk.Precondition("loyalty discount only applies while the order is pending")
	case c.DiscountCents <= 0 || c.DiscountCents > s.SubtotalCents:
		return nil, sdk.Invalid("discount must be positive and at most the subtotal %d, got %d", s.SubtotalCents, c.DiscountCents)
	case c.Points <= 0: // a discount is paid with points: no points, no discount
		return nil, sdk.Invalid("points must be positive, got %d", c.Points)
	}
	return []proto.Message{&examples.LoyaltyDiscountApplied{PointsUsed: c.Points, DiscountCents: c.DiscountCents, CustomerId: s.CustomerId}}, nil
}

func submitPayment(s *examples.OrderState, c *examples.SubmitPayment) ([]proto.Message, error) {
	if err := live(s); err != nil {
		return nil, err
	}
	due := s.SubtotalCents - s.DiscountCents
	switch {
	case s.Status == PaymentSubmitted:
		return nil, sdk.Precondition("payment already submitted")
	case c.AmountCents != due:
		return nil, sdk.Invalid("payment amount must be %d, got %d", due, c.AmountCents)
	}
	return []proto.Message{&examples.PaymentSubmitted{PaymentMethod: c.PaymentMethod, AmountCents: c.AmountCents}}, nil
}

func confirmPayment(s *examples.OrderState, c *examples.ConfirmPayment) ([]proto.Message, error) {
	if err := live(s); err != nil {
		return nil, err
	}
	if s.Status != PaymentSubmitted {
		return nil, sdk.Precondition("payment not submitted")
	}
	return []proto.Message{&examples.OrderCompleted{
		FinalTotalCents:     s.PaymentAmountCents,
		LoyaltyPointsEarned: int32(s.PaymentAmountCents / 100), // 1 point per whole dollar
		CustomerId:          s.CustomerId,
		PaymentReference:    c.PaymentReference,
	}}, nil
}

func cancel(s *examples.OrderState, c *examples.CancelOrder) ([]proto.Message, error) {
	switch s.Status {
	case "":
		return nil, sdk.Precondition("order does not exist")
	case Completed:
		return nil, sdk.Precondition("cannot cancel a completed order")
	case Cancelled:
		return nil, sdk.Precondition("order already cancelled")
	}
	return []proto.Message{&examples.OrderCancelled{
		Reason: c.Reason, LoyaltyPointsUsed: s.LoyaltyPointsUsed, CustomerId: s.CustomerId, Items: s.Items,
	}}, nil
}

// compensate answers the framework's SagaCompensation for the saga
// commands the order's events caused. A refused RedeemLoyaltyPoints (the
// customer lacks the points, or the order was refunded first) takes the
// discount back while the order can still be paid in full; a cancelled
// order, or one whose discount is already revoked, took nothing and owes
// nothing (no events: acknowledged); a completed one was paid at the
// discounted price, which only an operator can settle. Other refusals (a
// release of stock never reserved, ...) are not the order's to undo: the
// saga's fallback applies.
func compensate(s *examples.OrderState, c *angzarr.SagaCompensation) ([]proto.Message, error) {
	redeem, ok := sdk.RefusedCommand[*examples.RedeemLoyaltyPoints](c)
	if !ok {
		return nil, sdk.RequestCompensation("nothing for the order to undo: " + c.GetReason())
	}
	switch {
	case s.Status == Cancelled || s.LoyaltyPointsUsed == 0:
		return nil, nil
	case s.Status == Completed:
		return nil, sdk.RequestCompensation(fmt.Sprintf("order paid with a %d-point discount the customer's points did not cover: %s",
			redeem.Points, c.GetReason()),
			angzarr.CompensationAction_COMPENSATION_ACTION_RECORD_FAILURE, angzarr.CompensationAction_COMPENSATION_ACTION_ESCALATE)
	}
	return []proto.Message{&examples.LoyaltyDiscountRevoked{
		Points: s.LoyaltyPointsUsed, DiscountCents: s.DiscountCents, Reason: c.GetReason(),
	}}, nil
}
