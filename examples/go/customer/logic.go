// Package customer is the customer domain's business logic: customers and
// their loyalty points.
package customer

import (
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/angzarr-mesh/angzarr/proto/examples"
	"github.com/angzarr-mesh/angzarr/sdk"
)

// Domain is the domain this logic serves.
const Domain = "customer"

// Logic returns the customer domain's business logic.
func Logic() *sdk.Aggregate[*examples.CustomerState] {
	a := sdk.NewAggregate(Domain, func() *examples.CustomerState { return &examples.CustomerState{} })
	sdk.On(a, create)
	sdk.On(a, addPoints)
	sdk.On(a, redeemPoints)
	sdk.On(a, refundPoints)
	sdk.Apply(a, func(s *examples.CustomerState, e *examples.CustomerCreated) {
		s.Name, s.Email = e.Name, e.Email
	})
	sdk.Apply(a, func(s *examples.CustomerState, e *examples.LoyaltyPointsAdded) {
		s.LoyaltyPoints, s.LifetimePoints = e.NewBalance, e.NewLifetimePoints
	})
	sdk.Apply(a, func(s *examples.CustomerState, e *examples.LoyaltyPointsRedeemed) {
		s.LoyaltyPoints = e.NewBalance
		if e.Reference != "" {
			if s.Redeemed == nil {
				s.Redeemed = map[string]int32{}
			}
			s.Redeemed[e.Reference] = e.Points
		}
	})
	sdk.Apply(a, func(s *examples.CustomerState, e *examples.LoyaltyPointsRefunded) {
		s.LoyaltyPoints = e.NewBalance
		delete(s.Redeemed, e.Reference)
		s.Refunded = append(s.Refunded, e.Reference)
	})
	return a
}

func exists(s *examples.CustomerState) bool { return s.Name != "" }

func create(s *examples.CustomerState, c *examples.CreateCustomer) ([]proto.Message, error) {
	switch {
	case exists(s):
		return nil, sdk.Precondition("customer already exists")
	case c.Name == "":
		return nil, sdk.Invalid("customer name is required")
	case c.Email == "":
		return nil, sdk.Invalid("customer email is required")
	}
	return []proto.Message{&examples.CustomerCreated{Name: c.Name, Email: c.Email}}, nil
}

func addPoints(s *examples.CustomerState, c *examples.AddLoyaltyPoints) ([]proto.Message, error) {
	switch {
	case !exists(s):
		return nil, sdk.Precondition("customer does not exist")
	case c.Points <= 0:
		return nil, sdk.Invalid("points must be positive, got %d", c.Points)
	}
	return []proto.Message{&examples.LoyaltyPointsAdded{
		Points:            c.Points,
		NewBalance:        s.LoyaltyPoints + c.Points,
		Reason:            c.Reason,
		NewLifetimePoints: s.LifetimePoints + c.Points,
	}}, nil
}

// MaxReference is the longest redemption reference accepted, in bytes.
const MaxReference = 200

func redeemPoints(s *examples.CustomerState, c *examples.RedeemLoyaltyPoints) ([]proto.Message, error) {
	_, redeemed := s.Redeemed[c.Reference]
	switch {
	case !exists(s):
		return nil, sdk.Precondition("customer does not exist")
	case c.Points <= 0:
		return nil, sdk.Invalid("points must be positive, got %d", c.Points)
	case len(c.Reference) > MaxReference:
		return nil, sdk.Invalid("reference is longer than %d bytes", MaxReference)
	case c.Reference != "" && redeemed:
		return nil, sdk.Precondition("points already redeemed under reference %q", c.Reference)
	case c.Reference != "" && slices.Contains(s.Refunded, c.Reference):
		return nil, sdk.Precondition("reference %q was already refunded", c.Reference)
	case c.Points > s.LoyaltyPoints:
		return nil, sdk.Precondition("insufficient points: balance %d, asked %d", s.LoyaltyPoints, c.Points)
	}
	return []proto.Message{&examples.LoyaltyPointsRedeemed{
		Points:         c.Points,
		NewBalance:     s.LoyaltyPoints - c.Points,
		RedemptionType: c.RedemptionType,
		Reference:      c.Reference,
	}}, nil
}

// refundPoints gives back exactly what was redeemed under the reference,
// or nothing, and closes it (a later redemption under it is refused, so a
// redemption that arrives after its refund cannot keep the points). A
// second refund finds it closed and changes nothing.
func refundPoints(s *examples.CustomerState, c *examples.RefundLoyaltyPoints) ([]proto.Message, error) {
	switch {
	case !exists(s):
		return nil, sdk.Precondition("customer does not exist")
	case c.Reference == "":
		return nil, sdk.Invalid("a refund needs the reference of the redemption")
	case len(c.Reference) > MaxReference:
		return nil, sdk.Invalid("reference is longer than %d bytes", MaxReference)
	case slices.Contains(s.Refunded, c.Reference):
		return nil, nil // already given back
	}
	points := s.Redeemed[c.Reference]
	return []proto.Message{&examples.LoyaltyPointsRefunded{
		Reference:  c.Reference,
		Points:     points,
		NewBalance: s.LoyaltyPoints + points,
		Reason:     c.Reason,
	}}, nil
}
