package client

import (
	"github.com/google/uuid"

	"github.com/angzarr-mesh/angzarr/examples/go/roots"
)

// ParseRoot is the aggregate root ROOT names: the UUID itself when it is
// one, else the UUIDv5 of the text in the examples' namespace
// (examples/go/roots, dee184a4-1d1b-5ff7-9e24-cb32b5def5f7), the same
// mapping the shop's sagas use (the inventory of product "sku-1" is
// ParseRoot("sku-1"), the shipment of an order is the order's root text).
func ParseRoot(s string) uuid.UUID { return roots.Parse(s) }
