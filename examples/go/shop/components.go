// Package shop assembles the example shop: its six domains, three sagas,
// the order-summary projector and the checkout process manager, as components that can each be registered on
// a gRPC server (the local mesh does this in-process) or served on their own
// address (Run, the shop binary).
package shop

import (
	"fmt"
	"strings"

	"google.golang.org/grpc"

	"github.com/angzarr-mesh/angzarr/examples/go/cart"
	"github.com/angzarr-mesh/angzarr/examples/go/checkout"
	"github.com/angzarr-mesh/angzarr/examples/go/customer"
	"github.com/angzarr-mesh/angzarr/examples/go/fulfillment"
	"github.com/angzarr-mesh/angzarr/examples/go/inventory"
	"github.com/angzarr-mesh/angzarr/examples/go/order"
	"github.com/angzarr-mesh/angzarr/examples/go/ordersummary"
	"github.com/angzarr-mesh/angzarr/examples/go/product"
	"github.com/angzarr-mesh/angzarr/examples/go/sagas"
	"github.com/angzarr-mesh/angzarr/sdk"
)

// Kind is what a component is to the framework.
type Kind string

// Component kinds.
const (
	// Logic serves angzarr.BusinessLogic for one domain.
	Logic Kind = "logic"
	// Saga serves angzarr.Saga.
	Saga Kind = "saga"
	// Projector serves angzarr.Projector.
	Projector Kind = "projector"
	// Upcaster serves angzarr.Upcaster for one domain: the event service
	// calls it, not the domain's filter.
	Upcaster Kind = "upcaster"
	// ProcessManager serves angzarr.ProcessManager.
	ProcessManager Kind = "process-manager"
)

// Component is one gRPC service of the shop.
type Component struct {
	// Name is the name the topology knows it by: the domain for logic, the
	// saga's or projector's name otherwise. Names are unique per kind only
	// (there is a fulfillment domain and a fulfillment saga).
	Name string
	// Kind says which Angzarr service it serves.
	Kind Kind
	// Domain is the domain a Logic or Upcaster component serves ("" otherwise).
	Domain string
	// Subscribes lists the domains whose events a saga, process manager or
	// projector consumes.
	Subscribes []string
	// Targets lists the domains a saga or process manager sends commands to.
	Targets []string
	// Upcasts lists the stored event types an Upcaster takes.
	Upcasts []string
	// New returns a fresh handler: an angzarr.BusinessLogicServer,
	// SagaServer, ProjectorServer, UpcasterServer or ProcessManagerServer.
	New func() any
}

// Ref is the component's unique reference, "kind:name" (e.g.
// "saga:fulfillment"); Lookup also accepts the bare name.
func (c Component) Ref() string { return string(c.Kind) + ":" + c.Name }

// Register registers a fresh handler of the component on s and returns the
// full name of the service it serves.
func (c Component) Register(s grpc.ServiceRegistrar) (string, error) {
	return sdk.Register(s, c.New())
}

// All lists every component in a fixed order: domains, sagas, projector,
// upcaster, process manager.
// Run with Everything ("all") gives them consecutive ports in this order.
func All() []Component {
	logic := func(domain string, newLogic func() any) Component {
		return Component{Name: domain, Kind: Logic, Domain: domain, New: newLogic}
	}
	saga := func(name string, targets []string, newSaga func() any) Component {
		return Component{Name: name, Kind: Saga, Subscribes: []string{order.Domain}, Targets: targets, New: newSaga}
	}
	return []Component{
		logic(customer.Domain, func() any { return customer.Logic() }),
		logic(product.Domain, func() any { return product.Logic() }),
		logic(cart.Domain, func() any { return cart.Logic() }),
		logic(inventory.Domain, func() any { return inventory.Logic() }),
		logic(order.Domain, func() any { return order.Logic() }),
		logic(fulfillment.Domain, func() any { return fulfillment.Logic() }),
		saga(sagas.LoyaltyEarnName, []string{customer.Domain}, func() any { return sagas.LoyaltyEarn() }),
		saga(sagas.FulfillmentName, []string{fulfillment.Domain}, func() any { return sagas.Fulfillment() }),
		saga(sagas.CancellationName, []string{inventory.Domain, customer.Domain}, func() any { return sagas.Cancellation() }),
		{
			Name: ordersummary.Name, Kind: Projector, Subscribes: []string{order.Domain, fulfillment.Domain},
			New: func() any { return ordersummary.New() },
		},
		{
			Name: product.UpcasterName, Kind: Upcaster, Domain: product.Domain, Upcasts: product.Upcaster().Types(),
			New: func() any { return product.Upcaster() },
		},
		{
			Name: checkout.Name, Kind: ProcessManager, Subscribes: checkout.Sources, Targets: checkout.Targets,
			New: func() any { return checkout.ProcessManager() },
		},
	}
}

// Components returns every component by name, then kind:
// Components()["fulfillment"][shop.Saga] is the fulfillment saga.
func Components() map[string]map[Kind]Component {
	out := map[string]map[Kind]Component{}
	for _, c := range All() {
		if out[c.Name] == nil {
			out[c.Name] = map[Kind]Component{}
		}
		out[c.Name][c.Kind] = c
	}
	return out
}

// Lookup returns the component ref names: "kind:name", or a bare name, which
// means the domain's logic when there is one ("fulfillment" is the domain,
// "saga:fulfillment" the saga).
func Lookup(ref string) (Component, error) {
	name, kind := ref, Kind("")
	if k, n, ok := strings.Cut(ref, ":"); ok {
		name, kind = n, Kind(k)
	}
	byKind := Components()[name]
	if c, ok := byKind[kind]; ok {
		return c, nil
	}
	if kind == "" {
		if c, ok := byKind[Logic]; ok {
			return c, nil
		}
		for _, c := range byKind {
			return c, nil // the only one (names repeat only with a domain)
		}
	}
	var refs []string
	for _, c := range All() {
		refs = append(refs, c.Ref())
	}
	return Component{}, fmt.Errorf("%w %q (want all, a name or one of %v)", ErrUnknownComponent, ref, refs)
}
