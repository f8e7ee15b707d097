// Package ordersummary is the order-summary projector: a read model per
// order (status, totals, items, shipment status) kept in memory from order
// and fulfillment events.
package ordersummary

import (
	"context"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/angzarr-mesh/angzarr/examples/go/fulfillment"
	"github.com/angzarr-mesh/angzarr/examples/go/order"
	"github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/proto/examples"
	"github.com/angzarr-mesh/angzarr/sdk"
)

// Name is the projector's name.
const Name = "order-summary"

// Projector keeps one OrderSummary per order. Delivery is at least once: it
// remembers, per source aggregate, the next event sequence it expects and
// skips pages below it, so a redelivery changes nothing.
type Projector struct {
	angzarr.UnimplementedProjectorServer

	mu     sync.Mutex
	orders map[string]*examples.OrderSummary // by order id
	next   map[string]uint32                 // by source "domain/root"
}

var _ angzarr.ProjectorServer = (*Projector)(nil)

// New returns a projector with an empty read model.
func New() *Projector {
	return &Projector{orders: map[string]*examples.OrderSummary{}, next: map[string]uint32{}}
}

// Handle projects book's events.
func (p *Projector) Handle(_ context.Context, book *angzarr.EventBook) (*emptypb.Empty, error) {
	if _, err := p.project(book); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// HandleSync projects book's events and returns the summary of the order
// they concern.
func (p *Projector) HandleSync(_ context.Context, book *angzarr.EventBook) (*angzarr.Projection, error) {
	summary, err := p.project(book)
	if err != nil {
		return nil, err
	}
	out := &angzarr.Projection{Cover: book.GetCover(), Projector: Name, Sequence: sdk.NextSequence(book)}
	if out.Sequence > 0 {
		out.Sequence-- // the last event processed
	}
	if summary != nil {
		if out.Projection, err = anypb.New(summary); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Summary returns a copy of an order's summary.
func (p *Projector) Summary(orderID string) (*examples.OrderSummary, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.orders[orderID]
	if !ok {
		return nil, false
	}
	return proto.Clone(s).(*examples.OrderSummary), true
}

// project applies book's new pages and returns a copy of the last summary
// they concern (nil when none).
func (p *Projector) project(book *angzarr.EventBook) (*examples.OrderSummary, error) {
	root, err := sdk.RootID(book.GetCover().GetRoot())
	if err != nil {
		return nil, err
	}
	source := book.GetCover().GetDomain() + "/" + root.String()
	p.mu.Lock()
	defer p.mu.Unlock()
	var last *examples.OrderSummary
	for _, page := range book.GetPages() {
		event, err := page.GetEvent().UnmarshalNew()
		if err != nil {
			continue // not an event this projector knows
		}
		id := root.String() // order events: the order's root
		if e, ok := event.(interface{ GetOrderId() string }); ok {
			id = e.GetOrderId() // fulfillment events name their order
		}
		s := p.orders[id]
		if s == nil {
			s = &examples.OrderSummary{OrderId: id}
		}
		if num, ok := page.GetSequence().(*angzarr.EventPage_Num); ok {
			if num.Num < p.next[source] {
				if p.orders[id] != nil {
					last = s // a redelivery: already projected
				}
				continue
			}
			p.next[source] = num.Num + 1
		}
		if apply(s, event) {
			p.orders[id], last = s, s
		}
	}
	if last == nil {
		return nil, nil
	}
	return proto.Clone(last).(*examples.OrderSummary), nil
}

// apply folds one event into s and says whether the event concerns it.
func apply(s *examples.OrderSummary, event proto.Message) bool {
	switch e := event.(type) {
	case *examples.OrderCreated:
		s.CustomerId, s.Items, s.Status = e.CustomerId, e.Items, order.Pending
		s.SubtotalCents, s.TotalCents = e.SubtotalCents, e.SubtotalCents
	case *examples.LoyaltyDiscountApplied:
		s.DiscountCents, s.TotalCents = e.DiscountCents, s.SubtotalCents-e.DiscountCents
	case *examples.LoyaltyDiscountRevoked:
		s.DiscountCents, s.TotalCents = 0, s.SubtotalCents
		if s.Status == order.PaymentSubmitted { // the discounted payment is void
			s.Status = order.Pending
		}
	case *examples.PaymentSubmitted:
		s.Status = order.PaymentSubmitted
	case *examples.OrderCompleted:
		s.Status, s.TotalCents, s.LoyaltyPointsEarned = order.Completed, e.FinalTotalCents, e.LoyaltyPointsEarned
	case *examples.OrderCancelled:
		s.Status, s.CancelReason = order.Cancelled, e.Reason
	case *examples.ShipmentCreated:
		s.ShipmentStatus = fulfillment.Pending
	case *examples.ItemsPicked:
		s.ShipmentStatus = fulfillment.Picking
	case *examples.ItemsPacked:
		s.ShipmentStatus = fulfillment.Packing
	case *examples.Shipped:
		s.ShipmentStatus, s.Carrier, s.TrackingNumber = fulfillment.Shipped, e.Carrier, e.TrackingNumber
	case *examples.Delivered:
		s.ShipmentStatus = fulfillment.Delivered
	default:
		return false
	}
	return true
}
