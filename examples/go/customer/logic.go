// Package customer is the customer domain's business logic: customers and
// their loyalty points.
package customer

import (
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
	sdk.Apply(a, func(s *examples.CustomerState, e *examples.CustomerCreated) {
		s.Name, s.Email = e.Name, e.Email
	})
	sdk.Apply(a, func(s *examples.CustomerState, e *examples.LoyaltyPointsAdded) {
		s.LoyaltyPoints, s.LifetimePoints = e.NewBalance, e.NewLifetimePoints
	})
	sdk.Apply(a, func(s *examples.CustomerState, e *examples.LoyaltyPointsRedeemed) {
		s.LoyaltyPoints = e.NewBalance
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

func redeemPoints(s *examples.CustomerState, c *examples.RedeemLoyaltyPoints) ([]proto.Message, error) {
	switch {
	case !exists(s):
		return nil, sdk.Precondition("customer does not exist")
	case c.Points <= 0:
		return nil, sdk.Invalid("points must be positive, got %d", c.Points)
	case c.Points > s.LoyaltyPoints:
		return nil, sdk.Precondition("insufficient points: balance %d, asked %d", s.LoyaltyPoints, c.Points)
	}
	return []proto.Message{&examples.LoyaltyPointsRedeemed{
		Points:         c.Points,
		NewBalance:     s.LoyaltyPoints - c.Points,
		RedemptionType: c.RedemptionType,
	}}, nil
}
