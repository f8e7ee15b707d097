package customer_test

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/angzarr-mesh/angzarr/examples/go/customer"
	"github.com/angzarr-mesh/angzarr/examples/go/customer/customertest"
	"github.com/angzarr-mesh/angzarr/proto/examples"
	"github.com/angzarr-mesh/angzarr/sdk/sdktest"
)

type msgs = []proto.Message

var created = customertest.Created

// TestCustomer runs the customer rules (customertest.Cases, which the
// Python customer passes too) against the Go logic.
func TestCustomer(t *testing.T) {
	sdktest.Run(t, customer.Logic(), customertest.Cases())
}

// TestLifetimeSurvivesRedemption runs +100, +50, -30 as commands and checks
// the rebuilt state: balance 120, lifetime 150.
func TestLifetimeSurvivesRedemption(t *testing.T) {
	logic := customer.Logic()
	history := msgs{created}
	commands := msgs{
		&examples.AddLoyaltyPoints{Points: 100},
		&examples.AddLoyaltyPoints{Points: 50},
		&examples.RedeemLoyaltyPoints{Points: 30},
	}
	for _, cmd := range commands {
		history = append(history, sdktest.Decide(t, logic, history, cmd)...)
	}
	state, err := logic.Rebuild(sdktest.Book(t, customer.Domain, sdktest.Root, 0, history...))
	if err != nil {
		t.Fatal(err)
	}
	if state.LoyaltyPoints != 120 || state.LifetimePoints != 150 {
		t.Fatalf("balance %d lifetime %d, want 120 and 150", state.LoyaltyPoints, state.LifetimePoints)
	}
}
