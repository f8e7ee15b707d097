package shope2e_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/angzarr-mesh/angzarr/eventsvc/fanout"
	"github.com/angzarr-mesh/angzarr/examples/go/roots"
	"github.com/angzarr-mesh/angzarr/internal/testutil"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	ex "github.com/angzarr-mesh/angzarr/proto/examples"
)

// balance is the customer's loyalty balance after its events: the last
// new_balance, 0 without any.
func balance(events []event) int32 {
	var b int32
	for _, e := range events {
		switch m := e.msg.(type) {
		case *ex.LoyaltyPointsAdded:
			b = m.GetNewBalance()
		case *ex.LoyaltyPointsRedeemed:
			b = m.GetNewBalance()
		case *ex.LoyaltyPointsRefunded:
			b = m.GetNewBalance()
		}
	}
	return b
}

// eachCustomer runs test on a local mesh with the Go customer, then on one
// with the Python customer: both must keep the loyalty rules.
func eachCustomer(t *testing.T, test func(t *testing.T, m *mesh)) {
	for _, lang := range []string{"go", "python"} {
		t.Run(lang, func(t *testing.T) {
			m := startMeshWith(t, lang == "go")
			if got := m.ep.Domains["customer"].Language; got != lang {
				t.Fatalf("the mesh serves the %s customer, want %s", got, lang)
			}
			test(t, m)
		})
	}
}

// TestDiscountedCancellationRefundsExactlyThePointsTaken is issue 19's
// case on the local mesh: a customer with 500 points takes a 300-point
// discount on an order of a product whose stock was never initialized;
// the loyalty saga takes the 300 points (under the order's id); the order
// is cancelled: the cancellation saga's ReleaseReservation is refused and
// recorded, and its RefundLoyaltyPoints gives back exactly the 300 taken,
// once.
func TestDiscountedCancellationRefundsExactlyThePointsTaken(t *testing.T) {
	eachCustomer(t, func(t *testing.T, m *mesh) {
		ctx := ctxT(t, 2*time.Minute)
		customer, order := uuid.New(), uuid.New()
		corr := "discount-" + order.String()
		m.send(ctx, "customer", customer, "", 0, &ex.CreateCustomer{Name: "Ada", Email: "ada@example.com"})
		m.send(ctx, "customer", customer, "", 1, &ex.AddLoyaltyPoints{Points: 500, Reason: "welcome"})
		m.send(ctx, "order", order, corr, 0, &ex.CreateOrder{CustomerId: customer.String(), Items: []*ex.LineItem{
			{ProductId: "never-stocked-" + order.String()[:8], Name: "Pen", Quantity: 1, UnitPriceCents: 5000},
		}})
		m.send(ctx, "order", order, corr, 1, &ex.ApplyLoyaltyDiscount{Points: 300, DiscountCents: 300})
		testutil.EventuallyWhy(t, func() (bool, string) {
			c := m.history(ctx, "customer", customer)
			return len(ofType(c, "LoyaltyPointsRedeemed")) > 0, "customer " + describe(c)
		})
		m.send(ctx, "order", order, corr, 2, &ex.CancelOrder{Reason: "changed my mind"})
		testutil.EventuallyWhy(t, func() (bool, string) {
			c, f := m.history(ctx, "customer", customer), m.history(ctx, fanout.DefaultFailureDomain, order)
			return len(ofType(c, "LoyaltyPointsRefunded")) > 0 && len(f) > 0, "customer " + describe(c) + "; failures " + describe(f)
		})
		m.caughtUp(ctx, shopSubscribers...)

		c := m.history(ctx, "customer", customer)
		if got := types(c); !equal(got, []string{"CustomerCreated", "LoyaltyPointsAdded", "LoyaltyPointsRedeemed", "LoyaltyPointsRefunded"}) {
			t.Fatalf("customer history %v, want the 300 points taken and given back once", c)
		}
		if r := c[2].msg.(*ex.LoyaltyPointsRedeemed); r.GetPoints() != 300 || r.GetNewBalance() != 200 || r.GetReference() != order.String() {
			t.Errorf("redemption %v: want 300 of 500 taken under order %s", r, order)
		}
		if r := c[3].msg.(*ex.LoyaltyPointsRefunded); r.GetPoints() != 300 || r.GetNewBalance() != 500 || r.GetReference() != order.String() ||
			!strings.Contains(r.GetReason(), order.String()) {
			t.Errorf("refund %v: want exactly the 300 points back, balance 500", r)
		}
		if o := types(m.history(ctx, "order", order)); !equal(o, []string{"OrderCreated", "LoyaltyDiscountApplied", "OrderCancelled"}) {
			t.Errorf("order history %v: the discount was covered, nothing to revoke", o)
		}
		// The refused release is recorded (the order has nothing to undo
		// for it: the saga's fallback) and parked alone.
		f := m.history(ctx, fanout.DefaultFailureDomain, order)
		if len(f) != 1 || f[0].msg.(*pb.SagaFailed).GetCompensation().GetReason() != "stock not initialized" {
			t.Errorf("failure domain %v, want the refused ReleaseReservation recorded once", f)
		}
		dl, err := m.admin().ListDeadLetters(ctx, &pb.ListDeadLettersRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if d := dl.GetDeadLetters(); len(d) != 1 || d[0].GetSubscriber() != "cancellation" || d[0].GetCommand().GetCover().GetDomain() != "inventory" {
			t.Errorf("dead letters %v, want the refused release alone", d)
		}
	})
}

// TestCustomerWithoutPointsGetsNoDiscountAndGainsNothing: a customer with
// 0 points asks for a 300-point discount. The redemption is refused, the
// refusal comes back to the order, which revokes the discount: the order
// is due in full. Cancelled, it gives back nothing. A second order is
// cancelled right after its discount, before or after the redemption is
// tried: either way the customer gains nothing (before this rule, each
// cancellation credited the 300 points).
func TestCustomerWithoutPointsGetsNoDiscountAndGainsNothing(t *testing.T) {
	eachCustomer(t, func(t *testing.T, m *mesh) {
		ctx := ctxT(t, 2*time.Minute)
		customer, first, second := uuid.New(), uuid.New(), uuid.New()
		m.send(ctx, "customer", customer, "", 0, &ex.CreateCustomer{Name: "Zed", Email: "zed@example.com"})
		// Each order's pen is reserved, so that the cancellation's release
		// succeeds and any refusal left is the loyalty rule's.
		items := map[uuid.UUID][]*ex.LineItem{}
		for _, o := range []uuid.UUID{first, second} {
			pen := "pen-" + o.String()[:8]
			m.send(ctx, "inventory", roots.Of(pen), "", 0, &ex.InitializeStock{ProductId: pen, Quantity: 10, LowStockThreshold: 1})
			m.send(ctx, "inventory", roots.Of(pen), "", 1, &ex.ReserveStock{Quantity: 1, OrderId: o.String()})
			items[o] = []*ex.LineItem{{ProductId: pen, Name: "Pen", Quantity: 1, UnitPriceCents: 5000}}
		}

		corr := "no-points-" + first.String()
		m.send(ctx, "order", first, corr, 0, &ex.CreateOrder{CustomerId: customer.String(), Items: items[first]})
		m.send(ctx, "order", first, corr, 1, &ex.ApplyLoyaltyDiscount{Points: 300, DiscountCents: 300})
		testutil.EventuallyWhy(t, func() (bool, string) {
			o := m.history(ctx, "order", first)
			return len(ofType(o, "LoyaltyDiscountRevoked")) > 0, "order " + describe(o)
		})
		rev := ofType(m.history(ctx, "order", first), "LoyaltyDiscountRevoked")[0].msg.(*ex.LoyaltyDiscountRevoked)
		if rev.GetPoints() != 300 || rev.GetDiscountCents() != 300 || !strings.Contains(rev.GetReason(), "insufficient points") {
			t.Errorf("revocation %v: want the 300-point discount taken back for insufficient points", rev)
		}
		_, err := m.coordinator("order").Handle(ctx, command(t, "order", first, corr, 3, &ex.SubmitPayment{PaymentMethod: "card", AmountCents: 4700}))
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "amount") {
			t.Fatalf("payment of the discounted amount after the revocation: %v, want INVALID_ARGUMENT about the amount", err)
		}
		cancelled := m.send(ctx, "order", first, corr, 3, &ex.CancelOrder{Reason: "too dear"})
		if got := flatten(t, []*pb.EventBook{cancelled.GetEvents()}); len(got) != 1 || got[0].msg.(*ex.OrderCancelled).GetLoyaltyPointsUsed() != 0 {
			t.Fatalf("CancelOrder answered %v, want OrderCancelled with no points used", got)
		}

		corr = "no-points-" + second.String()
		m.send(ctx, "order", second, corr, 0, &ex.CreateOrder{CustomerId: customer.String(), Items: items[second]})
		m.send(ctx, "order", second, corr, 1, &ex.ApplyLoyaltyDiscount{Points: 300, DiscountCents: 300})
		m.send(ctx, "order", second, corr, 2, &ex.CancelOrder{Reason: "too dear"})

		m.caughtUp(ctx, shopSubscribers...)
		c := m.history(ctx, "customer", customer)
		if b := balance(c); b != 0 || len(ofType(c, "LoyaltyPointsAdded")) != 0 || len(ofType(c, "LoyaltyPointsRedeemed")) != 0 {
			t.Fatalf("customer history %v: balance %d, want nothing taken and nothing gained", c, b)
		}
		for _, r := range ofType(c, "LoyaltyPointsRefunded") {
			if r.msg.(*ex.LoyaltyPointsRefunded).GetPoints() != 0 {
				t.Errorf("refund %v of points never taken", r)
			}
		}
		// Nothing the order must see was dropped: the first order's
		// refusal was compensated, the second's (when the redemption came
		// after the refund) needed nothing.
		for _, o := range []uuid.UUID{first, second} {
			if f := m.history(ctx, fanout.DefaultFailureDomain, o); len(f) != 0 {
				t.Errorf("failures recorded for order %s: %v", o, f)
			}
		}
		m.noDeadLetters(ctx)
	})
}
