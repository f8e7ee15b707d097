package fulfillment_test

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/angzarr-mesh/angzarr/examples/go/fulfillment"
	"github.com/angzarr-mesh/angzarr/proto/examples"
	"github.com/angzarr-mesh/angzarr/sdk/sdktest"
)

type msgs = []proto.Message

const order = "o-1"

var (
	created   = &examples.ShipmentCreated{OrderId: order}
	picked    = &examples.ItemsPicked{OrderId: order, PickerId: "p"}
	packed    = &examples.ItemsPacked{OrderId: order, PackerId: "k"}
	shipped   = &examples.Shipped{OrderId: order, Carrier: "UPS", TrackingNumber: "1Z"}
	delivered = &examples.Delivered{OrderId: order, Signature: "Ann"}
)

func TestFulfillment(t *testing.T) {
	sdktest.Run(t, fulfillment.Logic(), []sdktest.Case{
		{Name: "create", When: &examples.CreateShipment{OrderId: order}, Then: msgs{created}},
		{Name: "create twice", Given: msgs{created}, When: &examples.CreateShipment{OrderId: order}, Code: codes.FailedPrecondition, Phrase: "already exists"},
		{Name: "create without order", When: &examples.CreateShipment{}, Code: codes.InvalidArgument, Phrase: "order_id"},

		{Name: "pick", Given: msgs{created}, When: &examples.MarkPicked{PickerId: "p"}, Then: msgs{picked}},
		{Name: "pick a missing shipment", When: &examples.MarkPicked{}, Code: codes.FailedPrecondition, Phrase: "does not exist"},
		{Name: "pick twice", Given: msgs{created, picked}, When: &examples.MarkPicked{}, Code: codes.FailedPrecondition, Phrase: "not pending"},

		{Name: "pack", Given: msgs{created, picked}, When: &examples.MarkPacked{PackerId: "k"}, Then: msgs{packed}},
		{Name: "pack before picking", Given: msgs{created}, When: &examples.MarkPacked{}, Code: codes.FailedPrecondition, Phrase: "not picked"},
		{Name: "pack a missing shipment", When: &examples.MarkPacked{}, Code: codes.FailedPrecondition, Phrase: "does not exist"},

		{Name: "ship", Given: msgs{created, picked, packed}, When: &examples.Ship{Carrier: "UPS", TrackingNumber: "1Z"}, Then: msgs{shipped}},
		{Name: "ship before packing", Given: msgs{created, picked}, When: &examples.Ship{}, Code: codes.FailedPrecondition, Phrase: "not packed"},
		{Name: "ship a missing shipment", When: &examples.Ship{}, Code: codes.FailedPrecondition, Phrase: "does not exist"},

		{Name: "deliver", Given: msgs{created, picked, packed, shipped}, When: &examples.RecordDelivery{Signature: "Ann"}, Then: msgs{delivered}},
		{Name: "deliver before shipping", Given: msgs{created, picked, packed}, When: &examples.RecordDelivery{}, Code: codes.FailedPrecondition, Phrase: "not shipped"},
		{Name: "deliver twice", Given: msgs{created, picked, packed, shipped, delivered}, When: &examples.RecordDelivery{},
			Code: codes.FailedPrecondition, Phrase: "already delivered"},
		{Name: "deliver a missing shipment", When: &examples.RecordDelivery{}, Code: codes.FailedPrecondition, Phrase: "does not exist"},
	})
}
