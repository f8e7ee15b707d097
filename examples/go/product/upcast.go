package product

import (
	"github.com/angzarr-mesh/angzarr/proto/examples"
	"github.com/angzarr-mesh/angzarr/sdk"
)

// UpcasterName is the upcaster's component name in the shop.
const UpcasterName = "product-upcaster"

// Upcaster returns the product domain's upcaster: stored ProductCreated
// (version 1, a bare price_cents) become ProductListed (version 2, the
// price as an amount and a currency), so the logic only knows version 2.
func Upcaster() *sdk.Upcaster {
	u := sdk.NewUpcaster(Domain)
	//lint:ignore SA1019 the deprecated v1 is what it reads
	sdk.UpcastFrom(u, func(e *examples.ProductCreated) *examples.ProductListed {
		return &examples.ProductListed{Sku: e.Sku, Name: e.Name, Description: e.Description,
			Price: &examples.Money{Cents: e.PriceCents, Currency: Currency}}
	})
	return u
}
