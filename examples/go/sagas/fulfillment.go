package sagas

import (
	"github.com/angzarr-mesh/angzarr/examples/go/fulfillment"
	"github.com/angzarr-mesh/angzarr/examples/go/roots"
	"github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/proto/examples"
	"github.com/angzarr-mesh/angzarr/sdk"
)

// FulfillmentName is the fulfillment saga's name.
const FulfillmentName = "fulfillment"

// Fulfillment opens the shipment of every completed order; the shipment's
// root is roots.Of(order id).
func Fulfillment() *sdk.Saga {
	s := sdk.NewSaga(FulfillmentName)
	sdk.React(s, func(order *angzarr.Cover, _ *examples.OrderCompleted) ([]*angzarr.CommandBook, error) {
		id := orderID(order)
		if id == "" {
			return nil, sdk.Invalid("order event has no root")
		}
		cmd, err := sdk.Command(fulfillment.Domain, roots.Of(id), order.GetCorrelationId(), &examples.CreateShipment{OrderId: id})
		return []*angzarr.CommandBook{cmd}, err
	})
	return s
}
