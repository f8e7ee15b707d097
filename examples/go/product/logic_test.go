package product_test

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/angzarr-mesh/angzarr/examples/go/product"
	"github.com/angzarr-mesh/angzarr/proto/examples"
	"github.com/angzarr-mesh/angzarr/sdk/sdktest"
)

type msgs = []proto.Message

var (
	created      = &examples.ProductCreated{Sku: "SKU-1", Name: "Mug", Description: "A mug", PriceCents: 1000}
	discontinued = &examples.ProductDiscontinued{Reason: "old"}
)

func TestProduct(t *testing.T) {
	sdktest.Run(t, product.Logic(), []sdktest.Case{
		{Name: "create", When: &examples.CreateProduct{Sku: "SKU-1", Name: "Mug", Description: "A mug", PriceCents: 1000}, Then: msgs{created}},
		{Name: "create twice", Given: msgs{created}, When: &examples.CreateProduct{Sku: "SKU-1", Name: "Mug", PriceCents: 1000},
			Code: codes.FailedPrecondition, Phrase: "already exists"},
		{Name: "create without sku", When: &examples.CreateProduct{Name: "Mug", PriceCents: 1000}, Code: codes.InvalidArgument, Phrase: "sku"},
		{Name: "create without name", When: &examples.CreateProduct{Sku: "SKU-1", PriceCents: 1000}, Code: codes.InvalidArgument, Phrase: "name"},
		{Name: "create with zero price", When: &examples.CreateProduct{Sku: "SKU-1", Name: "Mug"}, Code: codes.InvalidArgument, Phrase: "price"},
		{Name: "create with negative price", When: &examples.CreateProduct{Sku: "SKU-1", Name: "Mug", PriceCents: -1}, Code: codes.InvalidArgument, Phrase: "price"},

		{Name: "update", Given: msgs{created}, When: &examples.UpdateProduct{Name: "Big mug", Description: "Bigger"},
			Then: msgs{&examples.ProductUpdated{Name: "Big mug", Description: "Bigger"}}},
		{Name: "update a missing product", When: &examples.UpdateProduct{Name: "x"}, Code: codes.FailedPrecondition, Phrase: "does not exist"},
		{Name: "update a discontinued product", Given: msgs{created, discontinued}, When: &examples.UpdateProduct{Name: "x"},
			Code: codes.FailedPrecondition, Phrase: "discontinued"},

		{Name: "set price", Given: msgs{created}, When: &examples.SetPrice{PriceCents: 1200},
			Then: msgs{&examples.PriceSet{PriceCents: 1200, PreviousPriceCents: 1000}}},
		{Name: "set price twice keeps the previous", Given: msgs{created, &examples.PriceSet{PriceCents: 1200, PreviousPriceCents: 1000}},
			When: &examples.SetPrice{PriceCents: 900}, Then: msgs{&examples.PriceSet{PriceCents: 900, PreviousPriceCents: 1200}}},
		{Name: "set price on a missing product", When: &examples.SetPrice{PriceCents: 100}, Code: codes.FailedPrecondition, Phrase: "does not exist"},
		{Name: "set zero price", Given: msgs{created}, When: &examples.SetPrice{PriceCents: 0}, Code: codes.InvalidArgument, Phrase: "price"},
		{Name: "set negative price", Given: msgs{created}, When: &examples.SetPrice{PriceCents: -5}, Code: codes.InvalidArgument, Phrase: "price"},
		{Name: "set price on a discontinued product", Given: msgs{created, discontinued}, When: &examples.SetPrice{PriceCents: 100},
			Code: codes.FailedPrecondition, Phrase: "discontinued"},

		{Name: "discontinue", Given: msgs{created}, When: &examples.Discontinue{Reason: "old"}, Then: msgs{discontinued}},
		{Name: "discontinue a missing product", When: &examples.Discontinue{}, Code: codes.FailedPrecondition, Phrase: "does not exist"},
		{Name: "discontinue twice", Given: msgs{created, discontinued}, When: &examples.Discontinue{},
			Code: codes.FailedPrecondition, Phrase: "already discontinued"},
	})
}
