// Package roots derives the aggregate roots of the example shop. An
// aggregate addressed by another's business id (the inventory of a product,
// the shipment of an order) has as root the UUIDv5 of that id in Namespace,
// so a saga, a client or a test computes it without a lookup.
package roots

import "github.com/google/uuid"

// NamespaceID is the examples' fixed UUIDv5 namespace, as text: the UUIDv5
// of "https://github.com/angzarr-mesh/angzarr/examples" in the URL
// namespace. Changing it orphans every derived aggregate.
const NamespaceID = "dee184a4-1d1b-5ff7-9e24-cb32b5def5f7"

// Namespace is NamespaceID as a UUID.
var Namespace = uuid.MustParse(NamespaceID)

// Of is the root of the aggregate addressed by business id id: the
// inventory of product id, or the shipment of order id (the order's root in
// canonical string form).
func Of(id string) uuid.UUID { return uuid.NewSHA1(Namespace, []byte(id)) }

// Parse is the root a reference names: the UUID itself when id is one (a
// customer_id holding the customer's root), else Of(id).
func Parse(id string) uuid.UUID {
	if root, err := uuid.Parse(id); err == nil {
		return root
	}
	return Of(id)
}
