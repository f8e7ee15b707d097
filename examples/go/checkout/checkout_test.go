package checkout_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/angzarr-mesh/angzarr/examples/go/checkout"
	"github.com/angzarr-mesh/angzarr/examples/go/roots"
	"github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/proto/examples"
	"github.com/angzarr-mesh/angzarr/sdk"
)

// flow drives the checkout process manager step by step, keeping its
// stream as the framework would (each step's events appended).
type flow struct {
	t     *testing.T
	pm    *sdk.ProcessManager[*examples.CheckoutState]
	state *angzarr.EventBook
}

func (f *flow) page(m proto.Message) *angzarr.EventPage {
	a, err := anypb.New(m)
	if err != nil {
		f.t.Fatal(err)
	}
	return &angzarr.EventPage{Event: a}
}

// on feeds an event of domain/root and returns the step's events and
// commands (decoded).
func (f *flow) on(domain string, root uuid.UUID, e proto.Message) ([]proto.Message, []proto.Message) {
	f.t.Helper()
	trigger := &angzarr.EventBook{Cover: &angzarr.Cover{Domain: domain, Root: sdk.RootOf(root), CorrelationId: "co"}, Pages: []*angzarr.EventPage{f.page(e)}}
	return f.step(&angzarr.ProcessManagerRequest{State: f.state, Trigger: trigger})
}

func (f *flow) step(req *angzarr.ProcessManagerRequest) ([]proto.Message, []proto.Message) {
	f.t.Helper()
	resp, err := f.pm.Handle(context.Background(), req)
	if err != nil {
		f.t.Fatal(err)
	}
	var evs, cmds []proto.Message
	for _, e := range resp.GetEvents() {
		m, err := e.UnmarshalNew()
		if err != nil {
			f.t.Fatal(err)
		}
		evs = append(evs, m)
		f.state.Pages = append(f.state.Pages, &angzarr.EventPage{Event: e})
	}
	for _, c := range resp.GetCommands() {
		if c.GetCover().GetCorrelationId() != "co" {
			f.t.Fatalf("command %v lost the workflow's correlation id", c)
		}
		m, err := c.GetPages()[0].GetCommand().UnmarshalNew()
		if err != nil {
			f.t.Fatal(err)
		}
		cmds = append(cmds, m)
	}
	return evs, cmds
}

// TestCheckout walks the workflow: checkout → CreateOrder (root derived
// from the cart's) → one ReserveStock per product (repeated lines added)
// → completion commits what was reserved, a late reservation is
// committed as it lands; a refused reservation cancels the order, and a
// reservation landing after that is released.
func TestCheckout(t *testing.T) {
	cart := uuid.New()
	orderRoot := roots.Of(cart.String())
	items := []*examples.CartItem{{ProductId: "mug", Quantity: 2, UnitPriceCents: 500}, {ProductId: "pot", Quantity: 1, UnitPriceCents: 900}, {ProductId: "mug", Quantity: 1, UnitPriceCents: 500}}
	start := func() *flow {
		f := &flow{t: t, pm: checkout.ProcessManager(), state: &angzarr.EventBook{}}
		_, cmds := f.on("cart", cart, &examples.CartCheckedOut{CustomerId: "ann", Items: items})
		if c, ok := cmds[0].(*examples.CreateOrder); len(cmds) != 1 || !ok || c.CustomerId != "ann" || len(c.Items) != 3 {
			t.Fatalf("checkout: %v, want CreateOrder for ann's 3 lines", cmds)
		}
		if _, again := f.on("cart", cart, &examples.CartCheckedOut{CustomerId: "ann", Items: items}); len(again) != 0 {
			t.Fatalf("a second checkout event: %v, want nothing", again)
		}
		_, cmds = f.on("order", orderRoot, &examples.OrderCreated{CustomerId: "ann", Items: []*examples.LineItem{
			{ProductId: "mug", Quantity: 2}, {ProductId: "pot", Quantity: 1}, {ProductId: "mug", Quantity: 1}}})
		if len(cmds) != 2 || cmds[0].(*examples.ReserveStock).Quantity != 3 || cmds[1].(*examples.ReserveStock).Quantity != 1 ||
			cmds[0].(*examples.ReserveStock).OrderId != orderRoot.String() {
			t.Fatalf("order created: %v, want 3 mugs and 1 pot reserved for %s", cmds, orderRoot)
		}
		return f
	}
	reserved := &examples.StockReserved{OrderId: orderRoot.String()}

	t.Run("completed", func(t *testing.T) {
		f := start()
		f.on("inventory", roots.Of("mug"), reserved)
		_, cmds := f.on("order", orderRoot, &examples.OrderCompleted{})
		if len(cmds) != 1 || cmds[0].(*examples.CommitReservation).OrderId != orderRoot.String() {
			t.Fatalf("completion: %v, want the mug's reservation committed", cmds)
		}
		if _, cmds := f.on("inventory", roots.Of("pot"), reserved); len(cmds) != 1 {
			t.Fatalf("a reservation after completion: %v, want it committed", cmds)
		}
		if _, cmds := f.on("inventory", roots.Of("pot"), reserved); len(cmds) != 0 {
			t.Fatalf("the same reservation again: %v, want nothing", cmds)
		}
	})
	t.Run("refused reservation", func(t *testing.T) {
		f := start()
		f.on("inventory", roots.Of("mug"), reserved)
		reserve, _ := sdk.Command("inventory", roots.Of("pot"), "co", &examples.ReserveStock{Quantity: 1, OrderId: orderRoot.String()})
		evs, cmds := f.step(&angzarr.ProcessManagerRequest{State: f.state, Compensation: &angzarr.SagaCompensation{
			RefusedCommand: reserve, Code: int32(codes.FailedPrecondition), Reason: "insufficient stock"}})
		if len(evs) != 1 || evs[0].(*examples.ReservationRefused).ProductId != "pot" || len(cmds) != 1 {
			t.Fatalf("refusal: %v %v, want the pot's refusal remembered and the order cancelled", evs, cmds)
		}
		if c := cmds[0].(*examples.CancelOrder); c.Reason != "stock of pot: insufficient stock" {
			t.Fatalf("cancel reason %q", c.Reason)
		}
		f.on("order", orderRoot, &examples.OrderCancelled{Reason: "stock"})
		// A reservation landing after the cancellation is released.
		late := &flow{t: t, pm: f.pm, state: f.state}
		if _, cmds := late.on("inventory", roots.Of("mug"), reserved); len(cmds) != 0 {
			t.Fatalf("the mug's reservation again: %v, want nothing", cmds)
		}
		release, _ := sdk.Command("inventory", roots.Of("mug"), "co", &examples.ReleaseReservation{OrderId: orderRoot.String()})
		_, err := f.pm.Handle(context.Background(), &angzarr.ProcessManagerRequest{State: f.state, Compensation: &angzarr.SagaCompensation{RefusedCommand: release}})
		if st := status.Convert(err); st.Code() != codes.FailedPrecondition || len(st.Details()) != 1 {
			t.Fatalf("a refused release: %v, want a STOP request", err)
		}
	})
	t.Run("late reservation after cancellation", func(t *testing.T) {
		f := start()
		f.on("order", orderRoot, &examples.OrderCancelled{Reason: "changed my mind"})
		evs, cmds := f.on("inventory", roots.Of("pot"), reserved)
		if len(cmds) != 1 || cmds[0].(*examples.ReleaseReservation).OrderId != orderRoot.String() || len(evs) != 2 {
			t.Fatalf("late reservation: %v %v, want it released", evs, cmds)
		}
	})
}
