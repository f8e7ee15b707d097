package shope2e_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	"github.com/angzarr-mesh/angzarr/eventsvc/fanout"
	"github.com/angzarr-mesh/angzarr/examples/go/checkout"
	"github.com/angzarr-mesh/angzarr/examples/go/roots"
	"github.com/angzarr-mesh/angzarr/internal/testutil"
	ex "github.com/angzarr-mesh/angzarr/proto/examples"
)

// checkoutCart fills a cart of customer with one line per product (2 of
// each at 1000) and checks it out under correlation id corr. It returns
// the order the checkout process manager will create.
func (m *mesh) checkoutCart(ctx context.Context, cart, customer uuid.UUID, corr string, products ...string) uuid.UUID {
	m.t.Helper()
	m.send(ctx, "cart", cart, corr, 0, &ex.CreateCart{CustomerId: customer.String()})
	for i, p := range products {
		m.send(ctx, "cart", cart, corr, uint32(1+i), &ex.AddItem{ProductId: p, Name: p, Quantity: 2, UnitPriceCents: 1000})
	}
	m.send(ctx, "cart", cart, corr, uint32(1+len(products)), &ex.Checkout{})
	return roots.Parse(checkout.OrderRoot(cart.String()))
}

// checkoutSteps is the checkout workflow's stream of corr, without the
// framework's ProcessManagerStep events.
func (m *mesh) checkoutSteps(ctx context.Context, corr string) []event {
	var out []event
	for _, e := range m.history(ctx, checkout.Domain, fanout.ProcessManagerRoot(corr)) {
		if e.typeName() != "ProcessManagerStep" {
			out = append(out, e)
		}
	}
	return out
}

// TestCheckoutProcessManagerRunsTheWorkflowOnce runs the shop's checkout
// process manager on the local mesh (real proxies and filter, the event
// service's dispatcher): a checked-out cart becomes an order, each product
// is reserved once, payment completes the order and the reservations are
// committed once; a checkout with a product whose stock was never
// initialized has its reservation refused, the refusal comes back to the
// process manager, and the order is cancelled with the reason and its
// other reservation released exactly once.
func TestCheckoutProcessManagerRunsTheWorkflowOnce(t *testing.T) {
	m := startMesh(t)
	ctx := ctxT(t, 2*time.Minute)
	customer := uuid.New()
	m.send(ctx, "customer", customer, "", 0, &ex.CreateCustomer{Name: "Cy", Email: "cy@example.com"})
	suffix := customer.String()[:8]
	mug, pot, ghost := "mug-"+suffix, "pot-"+suffix, "ghost-"+suffix
	for _, p := range []string{mug, pot} {
		m.send(ctx, "inventory", roots.Of(p), "", 0, &ex.InitializeStock{ProductId: p, Quantity: 10, LowStockThreshold: 1})
	}

	t.Run("completed", func(t *testing.T) {
		m.t = t
		corr := "checkout-" + uuid.NewString()
		order := m.checkoutCart(ctx, uuid.New(), customer, corr, mug, pot)
		testutil.EventuallyWhy(t, func() (bool, string) {
			f := m.checkoutSteps(ctx, corr)
			return len(ofType(f, "ItemReserved")) == 2, "workflow " + describe(f)
		})
		if o := m.history(ctx, "order", order); len(o) != 1 || o[0].msg.(*ex.OrderCreated).GetSubtotalCents() != 4000 {
			t.Fatalf("order %s: %v, want one OrderCreated of 4000", order, o)
		}
		if o := ofType(m.workflow(ctx, corr), "OrderCreated"); len(o) != 1 || o[0].root != order {
			t.Fatalf("workflow %s: %v, want the order created in it", corr, o)
		}
		m.send(ctx, "order", order, corr, 1, &ex.SubmitPayment{PaymentMethod: "card", AmountCents: 4000})
		m.send(ctx, "order", order, corr, 2, &ex.ConfirmPayment{PaymentReference: "ref-1"})
		for _, p := range []string{mug, pot} {
			testutil.EventuallyWhy(t, func() (bool, string) {
				inv := m.history(ctx, "inventory", roots.Of(p))
				return len(ofType(inv, "ReservationCommitted")) > 0, p + " " + describe(inv)
			})
		}
		m.caughtUp(ctx, "checkout")
		for _, p := range []string{mug, pot} {
			var mine []string
			for _, e := range m.workflow(ctx, corr) {
				if e.domain == "inventory" && e.root == roots.Of(p) {
					mine = append(mine, e.typeName())
				}
			}
			if !equal(mine, []string{"StockReserved", "ReservationCommitted"}) {
				t.Errorf("%s: the workflow's inventory events %v, want one reservation committed once", p, mine)
			}
		}
		if got := types(m.checkoutSteps(ctx, corr)); !equal(got, []string{"CheckoutStarted", "ReservationsRequested", "ItemReserved", "ItemReserved", "CheckoutCompleted"}) &&
			!equal(got, []string{"CheckoutStarted", "ReservationsRequested", "ItemReserved", "CheckoutCompleted", "ItemReserved"}) {
			t.Errorf("workflow %v", got)
		}
	})

	t.Run("refused reservation", func(t *testing.T) {
		m.t = t
		corr := "checkout-" + uuid.NewString()
		order := m.checkoutCart(ctx, uuid.New(), customer, corr, mug, ghost)
		testutil.EventuallyWhy(t, func() (bool, string) {
			o := m.history(ctx, "order", order)
			return len(ofType(o, "OrderCancelled")) == 1, "order " + describe(o)
		})
		c := ofType(m.history(ctx, "order", order), "OrderCancelled")[0].msg.(*ex.OrderCancelled)
		if !strings.Contains(c.GetReason(), "stock of "+ghost) || !strings.Contains(c.GetReason(), "not initialized") {
			t.Errorf("cancellation reason %q: want the refused reservation of %s", c.GetReason(), ghost)
		}
		testutil.EventuallyWhy(t, func() (bool, string) {
			inv := m.history(ctx, "inventory", roots.Of(mug))
			return len(ofType(inv, "ReservationReleased")) > 0, "mug " + describe(inv)
		})
		m.caughtUp(ctx, "checkout", "cancellation")
		var mine []string
		for _, e := range m.history(ctx, "inventory", roots.Of(mug)) {
			if (e.typeName() == "StockReserved" && e.msg.(*ex.StockReserved).GetOrderId() == order.String()) ||
				(e.typeName() == "ReservationReleased" && e.msg.(*ex.ReservationReleased).GetOrderId() == order.String()) {
				mine = append(mine, e.typeName())
			}
		}
		if !equal(mine, []string{"StockReserved", "ReservationReleased"}) {
			t.Errorf("mug: the order's reservation events %v, want it reserved and released once", mine)
		}
		f := m.checkoutSteps(ctx, corr)
		if r := ofType(f, "ReservationRefused"); len(r) != 1 || r[0].msg.(*ex.ReservationRefused).GetProductId() != ghost {
			t.Errorf("workflow %v: want the refusal of %s remembered once", describe(f), ghost)
		}
		if len(ofType(f, "CheckoutCancelled")) != 1 {
			t.Errorf("workflow %v: want it cancelled once", describe(f))
		}
	})
}

// TestCheckoutSurvivesKillOfTheEventService checks out 60 carts on
// `angzarr dev` run as a subprocess, kills it with SIGKILL (kill -9) while
// the checkout process manager is mid-way through the workflows (some
// orders created, others not), restarts it on the same data, and checks
// that every checkout led to exactly one order and exactly one reservation
// per product: no PM command was lost or applied twice.
func TestCheckoutSurvivesKillOfTheEventService(t *testing.T) {
	const carts = 60
	data := filepath.Join(t.TempDir(), "data")
	dev, base := startDevFreePorts(t, data)
	m := newMesh(t, data)
	m.ep = dev.ep
	ctx := ctxT(t, 3*time.Minute)

	customer, product := uuid.New(), "kettle-"+uuid.NewString()[:8]
	m.send(ctx, "customer", customer, "", 0, &ex.CreateCustomer{Name: "Di", Email: "di@example.com"})
	m.send(ctx, "inventory", roots.Of(product), "", 0, &ex.InitializeStock{ProductId: product, Quantity: 1000, LowStockThreshold: 1})
	type flow struct {
		corr  string
		order uuid.UUID
	}
	flows := make([]flow, carts)
	for i := range flows {
		flows[i].corr = fmt.Sprintf("crash-checkout-%d-%s", i, customer)
	}
	// The carts are checked out by 8 clients at once, so that the process
	// manager is still busy when the last checkout is stored; then kill.
	work := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range work {
				cart := uuid.New()
				flows[i].order = roots.Parse(checkout.OrderRoot(cart.String()))
				bc := m.coordinator("cart")
				for seq, msg := range []proto.Message{&ex.CreateCart{CustomerId: customer.String()},
					&ex.AddItem{ProductId: product, Name: "Kettle", Quantity: 2, UnitPriceCents: 1000}, &ex.Checkout{}} {
					if _, err := bc.Handle(ctx, newCommand("cart", cart, flows[i].corr, uint32(seq), msg)); err != nil {
						t.Errorf("cart %d: %v", i, err)
					}
				}
			}
		})
	}
	for i := range flows {
		work <- i
	}
	close(work)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	atKill := len(ofType(m.history(ctx, "inventory", roots.Of(product)), "StockReserved"))
	dev.kill()
	t.Logf("killed angzarr dev with %d of %d checkouts reserved", atKill, carts)
	if atKill == carts {
		t.Fatal("every workflow was done before the kill")
	}
	m.closeConns()
	dev = startDev(t, data, base)
	m.ep = dev.ep

	testutil.EventuallyWhy(t, func() (bool, string) {
		inv := m.history(ctx, "inventory", roots.Of(product))
		n := len(ofType(inv, "StockReserved"))
		return n >= carts, fmt.Sprintf("%d of %d reservations", n, carts)
	})
	m.caughtUp(ctx, "checkout")
	reserved := map[string]int{}
	for _, e := range ofType(m.history(ctx, "inventory", roots.Of(product)), "StockReserved") {
		reserved[e.msg.(*ex.StockReserved).GetOrderId()]++
	}
	for _, f := range flows {
		o := m.history(ctx, "order", f.order)
		if len(o) != 1 || o[0].typeName() != "OrderCreated" {
			t.Errorf("workflow %s: order %v, want one OrderCreated", f.corr, describe(o))
		}
		if reserved[f.order.String()] != 1 {
			t.Errorf("workflow %s: %d reservations for its order, want 1", f.corr, reserved[f.order.String()])
		}
		if got := types(m.checkoutSteps(ctx, f.corr)); !equal(got, []string{"CheckoutStarted", "ReservationsRequested", "ItemReserved"}) {
			t.Errorf("workflow %s: %v", f.corr, got)
		}
	}
	if len(reserved) != carts {
		t.Errorf("reservations for %d orders, want %d", len(reserved), carts)
	}
}
