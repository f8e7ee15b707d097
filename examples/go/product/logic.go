// Package product is the product domain's business logic: the catalogue.
package product

import (
	"google.golang.org/protobuf/proto"

	"github.com/angzarr-mesh/angzarr/proto/examples"
	"github.com/angzarr-mesh/angzarr/sdk"
)

// Domain is the domain this logic serves.
const Domain = "product"

// Currency is the catalogue's currency: every price is in it, and events
// stored before prices had a currency (ProductCreated) were in it.
const Currency = "USD"

// Product statuses.
const (
	Active       = "active"
	Discontinued = "discontinued"
)

// Logic returns the product domain's business logic.
func Logic() *sdk.Aggregate[*examples.ProductState] {
	a := sdk.NewAggregate(Domain, func() *examples.ProductState { return &examples.ProductState{} })
	sdk.On(a, create)
	sdk.On(a, update)
	sdk.On(a, setPrice)
	sdk.On(a, discontinue)
	sdk.Apply(a, func(s *examples.ProductState, e *examples.ProductListed) {
		s.Sku, s.Name, s.Description, s.PriceCents, s.Status = e.Sku, e.Name, e.Description, e.GetPrice().GetCents(), Active
	})
	sdk.Apply(a, func(s *examples.ProductState, e *examples.ProductUpdated) {
		s.Name, s.Description = e.Name, e.Description
	})
	sdk.Apply(a, func(s *examples.ProductState, e *examples.PriceSet) { s.PriceCents = e.PriceCents })
	sdk.Apply(a, func(s *examples.ProductState, e *examples.ProductDiscontinued) { s.Status = Discontinued })
	return a
}

// mutable refuses changes to a missing or discontinued product.
func mutable(s *examples.ProductState) error {
	switch s.Status {
	case "":
		return sdk.Precondition("product does not exist")
	case Discontinued:
		return sdk.Precondition("product is discontinued")
	}
	return nil
}

func create(s *examples.ProductState, c *examples.CreateProduct) ([]proto.Message, error) {
	switch {
	case s.Status != "":
		return nil, sdk.Precondition("product already exists")
	case c.Sku == "":
		return nil, sdk.Invalid("product sku is required")
	case c.Name == "":
		return nil, sdk.Invalid("product name is required")
	case c.PriceCents <= 0:
		return nil, sdk.Invalid("price must be positive, got %d", c.PriceCents)
	}
	return []proto.Message{&examples.ProductListed{Sku: c.Sku, Name: c.Name, Description: c.Description,
		Price: &examples.Money{Cents: c.PriceCents, Currency: Currency}}}, nil
}

func update(s *examples.ProductState, c *examples.UpdateProduct) ([]proto.Message, error) {
	if err := mutable(s); err != nil {
		return nil, err
	}
	if c.Name == "" {
		return nil, sdk.Invalid("product name is required")
	}
	return []proto.Message{&examples.ProductUpdated{Name: c.Name, Description: c.Description}}, nil
}

func setPrice(s *examples.ProductState, c *examples.SetPrice) ([]proto.Message, error) {
	if err := mutable(s); err != nil {
		return nil, err
	}
	if c.PriceCents <= 0 {
		return nil, sdk.Invalid("price must be positive, got %d", c.PriceCents)
	}
	return []proto.Message{&examples.PriceSet{PriceCents: c.PriceCents, PreviousPriceCents: s.PriceCents}}, nil
}

func discontinue(s *examples.ProductState, c *examples.Discontinue) ([]proto.Message, error) {
	switch s.Status {
	case "":
		return nil, sdk.Precondition("product does not exist")
	case Discontinued:
		return nil, sdk.Precondition("product already discontinued")
	}
	return []proto.Message{&examples.ProductDiscontinued{Reason: c.Reason}}, nil
}
