// Package customertest holds the customer domain's rules as test cases
// that every implementation of the domain must pass.
package customertest

import (
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/angzarr-mesh/angzarr/examples/go/customer"
	"github.com/angzarr-mesh/angzarr/proto/examples"
	"github.com/angzarr-mesh/angzarr/sdk/sdktest"
)

type msgs = []proto.Message

// Created is the CustomerCreated the cases start from.
var Created = created

var (
	created     = &examples.CustomerCreated{Name: "Ann", Email: "ann@example.com"}
	hundred     = &examples.LoyaltyPointsAdded{Points: 100, NewBalance: 100, NewLifetimePoints: 100}
	redeemed30  = &examples.LoyaltyPointsRedeemed{Points: 30, NewBalance: 70, RedemptionType: "discount", Reference: "order-1"}
	nothingBack = &examples.LoyaltyPointsRefunded{Reference: "order-1", Points: 0, NewBalance: 100}
)

// Cases are DOMAINS.md's customer rules and the shop's loyalty rules
// (redemption by reference, refunds of exactly what was taken) as
// given / when / then cases: the Go customer's tests run them, and so do
// the Python customer's, over gRPC (examples/go/shop).
func Cases() []sdktest.Case {
	return []sdktest.Case{
		{Name: "create", When: &examples.CreateCustomer{Name: "Ann", Email: "ann@example.com"}, Then: msgs{created}},
		{Name: "create when it exists", Given: msgs{created}, When: &examples.CreateCustomer{Name: "Bob", Email: "bob@example.com"},
			Code: codes.FailedPrecondition, Phrase: "already exists"},
		{Name: "create with empty name", When: &examples.CreateCustomer{Email: "ann@example.com"}, Code: codes.InvalidArgument, Phrase: "name"},
		{Name: "create with empty email", When: &examples.CreateCustomer{Name: "Ann"}, Code: codes.InvalidArgument, Phrase: "email"},

		{Name: "add points", Given: msgs{created}, When: &examples.AddLoyaltyPoints{Points: 50, Reason: "welcome"},
			Then: msgs{&examples.LoyaltyPointsAdded{Points: 50, NewBalance: 50, Reason: "welcome", NewLifetimePoints: 50}}},
		{Name: "add accumulates 50 then 30 to 80",
			Given: msgs{created, &examples.LoyaltyPointsAdded{Points: 50, NewBalance: 50, NewLifetimePoints: 50}},
			When:  &examples.AddLoyaltyPoints{Points: 30},
			Then:  msgs{&examples.LoyaltyPointsAdded{Points: 30, NewBalance: 80, NewLifetimePoints: 80}}},
		{Name: "add to a missing customer", When: &examples.AddLoyaltyPoints{Points: 10}, Code: codes.FailedPrecondition, Phrase: "does not exist"},
		{Name: "add zero points", Given: msgs{created}, When: &examples.AddLoyaltyPoints{Points: 0}, Code: codes.InvalidArgument, Phrase: "positive"},
		{Name: "add negative points", Given: msgs{created}, When: &examples.AddLoyaltyPoints{Points: -5}, Code: codes.InvalidArgument, Phrase: "positive"},

		{Name: "redeem", Given: msgs{created, &examples.LoyaltyPointsAdded{Points: 100, NewBalance: 100, NewLifetimePoints: 100}},
			When: &examples.RedeemLoyaltyPoints{Points: 30, RedemptionType: "discount"},
			Then: msgs{&examples.LoyaltyPointsRedeemed{Points: 30, NewBalance: 70, RedemptionType: "discount"}}},
		{Name: "redeem more than the balance", Given: msgs{created, &examples.LoyaltyPointsAdded{Points: 20, NewBalance: 20, NewLifetimePoints: 20}},
			When: &examples.RedeemLoyaltyPoints{Points: 21}, Code: codes.FailedPrecondition, Phrase: "insufficient points"},
		{Name: "redeem on a missing customer", When: &examples.RedeemLoyaltyPoints{Points: 1}, Code: codes.FailedPrecondition, Phrase: "does not exist"},
		{Name: "redeem zero points", Given: msgs{created}, When: &examples.RedeemLoyaltyPoints{Points: 0}, Code: codes.InvalidArgument, Phrase: "positive"},
		{Name: "redeem negative points", Given: msgs{created}, When: &examples.RedeemLoyaltyPoints{Points: -1}, Code: codes.InvalidArgument, Phrase: "positive"},
		// Redemptions by reference and their refunds.
		{Name: "redeem under a reference", Given: msgs{created, hundred},
			When: &examples.RedeemLoyaltyPoints{Points: 30, RedemptionType: "discount", Reference: "order-1"},
			Then: msgs{&examples.LoyaltyPointsRedeemed{Points: 30, NewBalance: 70, RedemptionType: "discount", Reference: "order-1"}}},
		{Name: "redeem twice under one reference", Given: msgs{created, hundred, redeemed30},
			When: &examples.RedeemLoyaltyPoints{Points: 10, Reference: "order-1"}, Code: codes.FailedPrecondition, Phrase: "already redeemed"},
		{Name: "redeem under a refunded reference", Given: msgs{created, hundred, nothingBack},
			When: &examples.RedeemLoyaltyPoints{Points: 10, Reference: "order-1"}, Code: codes.FailedPrecondition, Phrase: "already refunded"},
		{Name: "redeem under a reference too long", Given: msgs{created, hundred},
			When: &examples.RedeemLoyaltyPoints{Points: 10, Reference: strings.Repeat("r", customer.MaxReference+1)}, Code: codes.InvalidArgument, Phrase: "reference"},
		{Name: "refund gives back exactly what was taken", Given: msgs{created, hundred, redeemed30},
			When: &examples.RefundLoyaltyPoints{Reference: "order-1", Reason: "order cancelled"},
			Then: msgs{&examples.LoyaltyPointsRefunded{Reference: "order-1", Points: 30, NewBalance: 100, Reason: "order cancelled"}}},
		{Name: "refund of another reference gives nothing", Given: msgs{created, hundred, redeemed30},
			When: &examples.RefundLoyaltyPoints{Reference: "order-2"},
			Then: msgs{&examples.LoyaltyPointsRefunded{Reference: "order-2", Points: 0, NewBalance: 70}}},
		{Name: "refund to a customer with 0 points mints none", Given: msgs{created},
			When: &examples.RefundLoyaltyPoints{Reference: "order-1"},
			Then: msgs{&examples.LoyaltyPointsRefunded{Reference: "order-1", Points: 0, NewBalance: 0}}},
		{Name: "a second refund changes nothing",
			Given: msgs{created, hundred, redeemed30, &examples.LoyaltyPointsRefunded{Reference: "order-1", Points: 30, NewBalance: 100}},
			When:  &examples.RefundLoyaltyPoints{Reference: "order-1"}, Then: nil},
		{Name: "a redemption without reference is not refundable", Given: msgs{created, hundred, &examples.LoyaltyPointsRedeemed{Points: 30, NewBalance: 70}},
			When: &examples.RefundLoyaltyPoints{Reference: "order-1"},
			Then: msgs{&examples.LoyaltyPointsRefunded{Reference: "order-1", Points: 0, NewBalance: 70}}},
		{Name: "refund without reference", Given: msgs{created, hundred, redeemed30},
			When: &examples.RefundLoyaltyPoints{}, Code: codes.InvalidArgument, Phrase: "reference"},
		{Name: "refund to a missing customer", When: &examples.RefundLoyaltyPoints{Reference: "order-1"}, Code: codes.FailedPrecondition, Phrase: "does not exist"},
		{Name: "refunds never raise lifetime points",
			Given: msgs{created, hundred, redeemed30, &examples.LoyaltyPointsRefunded{Reference: "order-1", Points: 30, NewBalance: 100}},
			When:  &examples.AddLoyaltyPoints{Points: 1},
			Then:  msgs{&examples.LoyaltyPointsAdded{Points: 1, NewBalance: 101, NewLifetimePoints: 101}}},
		{Name: "redemptions never lower lifetime points",
			Given: msgs{created,
				&examples.LoyaltyPointsAdded{Points: 100, NewBalance: 100, NewLifetimePoints: 100},
				&examples.LoyaltyPointsAdded{Points: 50, NewBalance: 150, NewLifetimePoints: 150},
				&examples.LoyaltyPointsRedeemed{Points: 30, NewBalance: 120},
			},
			When: &examples.AddLoyaltyPoints{Points: 1},
			Then: msgs{&examples.LoyaltyPointsAdded{Points: 1, NewBalance: 121, NewLifetimePoints: 151}}},
	}
}
