package product_test

import (
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/angzarr-mesh/angzarr/examples/go/product"
	"github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/proto/examples"
	"github.com/angzarr-mesh/angzarr/sdk/sdktest"
)

type msgs = []proto.Message

var (
	created      = &examples.ProductListed{Sku: "SKU-1", Name: "Mug", Description: "A mug", Price: &examples.Money{Cents: 1000, Currency: product.Currency}}
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

// The logic knows version 2 only: a history of version 1 must reach it
// through the upcaster, which gives the same decisions.
func TestUpcasterGivesTheLogicVersion2(t *testing.T) {
	//lint:ignore SA1019 the stored v1
	v1 := &examples.ProductCreated{Sku: "SKU-1", Name: "Mug", Description: "A mug", PriceCents: 1000}
	old, err := anypb.New(v1)
	if err != nil {
		t.Fatal(err)
	}
	u := product.Upcaster()
	if got, want := u.Types(), []string{"examples.ProductCreated"}; !slices.Equal(got, want) {
		t.Fatalf("Types() = %v, want %v", got, want)
	}
	resp, err := u.Upcast(t.Context(), &angzarr.UpcastRequest{Domain: product.Domain, Events: []*anypb.Any{old}})
	if err != nil {
		t.Fatal(err)
	}
	got := &examples.ProductListed{}
	if err := resp.GetEvents()[0].UnmarshalTo(got); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, created) {
		t.Fatalf("upcast = %v, want %v", got, created)
	}
	sdktest.Run(t, product.Logic(), []sdktest.Case{
		{Name: "set price after an upcast creation", Given: msgs{got}, When: &examples.SetPrice{PriceCents: 1200},
			Then: msgs{&examples.PriceSet{PriceCents: 1200, PreviousPriceCents: 1000}}},
	})
	if _, err := u.Upcast(t.Context(), &angzarr.UpcastRequest{Domain: "order", Events: []*anypb.Any{old}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("another domain: %v, want INVALID_ARGUMENT", err)
	}
	cur, _ := anypb.New(created)
	if _, err := u.Upcast(t.Context(), &angzarr.UpcastRequest{Domain: product.Domain, Events: []*anypb.Any{cur}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a type it does not take: %v, want INVALID_ARGUMENT", err)
	}
}
