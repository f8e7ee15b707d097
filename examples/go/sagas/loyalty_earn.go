package sagas

import (
	"fmt"

	"github.com/angzarr-mesh/angzarr/examples/go/customer"
	"github.com/angzarr-mesh/angzarr/examples/go/roots"
	"github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/proto/examples"
	"github.com/angzarr-mesh/angzarr/sdk"
)

// LoyaltyEarnName is the loyalty-earn saga's name.
const LoyaltyEarnName = "loyalty-earn"

// LoyaltyEarn is the shop's loyalty saga: it credits the points a
// completed order earned to its customer, and takes from the customer the
// points an order's loyalty discount uses (RedeemLoyaltyPoints under the
// order's id as reference, so that a cancellation gives back exactly
// those). A refused redemption comes back to the order as a
// SagaCompensation, and the order revokes the discount.
func LoyaltyEarn() *sdk.Saga {
	s := sdk.NewSaga(LoyaltyEarnName)
	sdk.React(s, func(order *angzarr.Cover, e *examples.OrderCompleted) ([]*angzarr.CommandBook, error) {
		if e.LoyaltyPointsEarned <= 0 {
			return nil, nil
		}
		cmd, err := sdk.Command(customer.Domain, roots.Parse(e.CustomerId), order.GetCorrelationId(), &examples.AddLoyaltyPoints{
			Points: e.LoyaltyPointsEarned,
			Reason: fmt.Sprintf("earned by order %s", orderID(order)),
		})
		return []*angzarr.CommandBook{cmd}, err
	})
	sdk.React(s, func(order *angzarr.Cover, e *examples.LoyaltyDiscountApplied) ([]*angzarr.CommandBook, error) {
		id := orderID(order)
		if id == "" {
			return nil, sdk.Invalid("order event has no root")
		}
		cmd, err := sdk.Command(customer.Domain, roots.Parse(e.CustomerId), order.GetCorrelationId(), &examples.RedeemLoyaltyPoints{
			Points: e.PointsUsed, RedemptionType: "discount", Reference: id,
		})
		return []*angzarr.CommandBook{cmd}, err
	})
	return s
}

// orderID is an order's id: its root in canonical string form.
func orderID(order *angzarr.Cover) string {
	id, err := sdk.RootID(order.GetRoot())
	if err != nil {
		return ""
	}
	return id.String()
}
