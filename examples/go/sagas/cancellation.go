package sagas

import (
	"github.com/angzarr-mesh/angzarr/examples/go/customer"
	"github.com/angzarr-mesh/angzarr/examples/go/inventory"
	"github.com/angzarr-mesh/angzarr/examples/go/roots"
	"github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/proto/examples"
	"github.com/angzarr-mesh/angzarr/sdk"
)

// CancellationName is the cancellation saga's name.
const CancellationName = "cancellation"

// Cancellation compensates a cancelled order: it releases the order's stock
// reservation of each product, and, when it had a loyalty discount, asks
// the customer to give back what was redeemed under the order's id:
// exactly the points taken, or none (RefundLoyaltyPoints carries no
// amount, so a cancellation can never credit points that were not taken).
func Cancellation() *sdk.Saga {
	s := sdk.NewSaga(CancellationName)
	sdk.React(s, func(order *angzarr.Cover, e *examples.OrderCancelled) ([]*angzarr.CommandBook, error) {
		id, corr := orderID(order), order.GetCorrelationId()
		var out []*angzarr.CommandBook
		released := map[string]bool{}
		for _, it := range e.Items {
			if released[it.ProductId] {
				continue // one reservation per product and order
			}
			released[it.ProductId] = true
			cmd, err := sdk.Command(inventory.Domain, roots.Of(it.ProductId), corr, &examples.ReleaseReservation{OrderId: id})
			if err != nil {
				return nil, err
			}
			out = append(out, cmd)
		}
		if e.LoyaltyPointsUsed > 0 {
			cmd, err := sdk.Command(customer.Domain, roots.Parse(e.CustomerId), corr, &examples.RefundLoyaltyPoints{
				Reference: id,
				Reason:    "refund for cancelled order " + id,
			})
			if err != nil {
				return nil, err
			}
			out = append(out, cmd)
		}
		return out, nil
	})
	return s
}
