package shope2e_test

import (
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/angzarr-mesh/angzarr/eventsvc/server"
	"github.com/angzarr-mesh/angzarr/examples/go/roots"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	ex "github.com/angzarr-mesh/angzarr/proto/examples"
)

// bookStream is a CommandGateway stream.
type bookStream interface {
	Recv() (*pb.EventBook, error)
	grpc.ClientStream
}

// receiveAll reads the stream until the server ends it.
func receiveAll(t *testing.T, s bookStream) []*pb.EventBook {
	t.Helper()
	var out []*pb.EventBook
	for {
		b, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("stream after %d books %v: %v", len(out), flatten(t, out), err)
		}
		out = append(out, b)
	}
}

// aggregate is a book's domain and root, e.g. "customer/<uuid>".
func aggregate(t *testing.T, b *pb.EventBook) string {
	t.Helper()
	root, err := uuid.FromBytes(b.GetCover().GetRoot().GetValue())
	if err != nil {
		t.Fatal(err)
	}
	return b.GetCover().GetDomain() + "/" + root.String()
}

// checkCompletedOrderStream checks that books are the completion of order
// (its OrderCompleted first), the loyalty credit of customer and the
// shipment, each once, after the order's earlier books (prefix), all with
// correlation corr.
func checkCompletedOrderStream(t *testing.T, books []*pb.EventBook, prefix []string, order, customer uuid.UUID, corr string) {
	t.Helper()
	var got []string
	for _, b := range books {
		if b.GetCover().GetCorrelationId() != corr {
			t.Errorf("book of %s has correlation %q, want %q", aggregate(t, b), b.GetCover().GetCorrelationId(), corr)
		}
		for _, e := range flatten(t, []*pb.EventBook{b}) {
			got = append(got, b.GetCover().GetDomain()+":"+e.typeName())
		}
	}
	want := append(slices.Clone(prefix), "order:OrderCompleted")
	effects := []string{"customer:LoyaltyPointsAdded", "fulfillment:ShipmentCreated"}
	if len(got) != len(want)+len(effects) || !equal(got[:len(want)], want) ||
		!equal(slices.Sorted(slices.Values(got[len(want):])), effects) {
		t.Fatalf("stream %v, want %v then %v in any order", got, want, effects)
	}
	for _, b := range books {
		switch b.GetCover().GetDomain() {
		case "order":
			if aggregate(t, b) != "order/"+order.String() {
				t.Errorf("order book of %s, want order %s", aggregate(t, b), order)
			}
		case "customer":
			if aggregate(t, b) != "customer/"+customer.String() {
				t.Errorf("loyalty credit to %s, want customer %s", aggregate(t, b), customer)
			}
		case "fulfillment":
			if aggregate(t, b) != "fulfillment/"+roots.Of(order.String()).String() {
				t.Errorf("shipment %s, want the one of order %s", aggregate(t, b), order)
			}
		}
	}
}

func TestGatewayStreamsOrderAndSagaEventsUnderOneCorrelationID(t *testing.T) {
	m := startMesh(t)
	ctx := ctxT(t, 2*time.Minute)
	customer := uuid.New()
	m.send(ctx, "customer", customer, "", 0, &ex.CreateCustomer{Name: "Cy", Email: "cy@example.com"})
	items := []*ex.LineItem{{ProductId: "lamp", Name: "Lamp", Quantity: 1, UnitPriceCents: 4200}}

	// ExecuteStreamResponseCount of a ConfirmPayment without a correlation
	// id: the gateway makes one, and three books carry it, the completion
	// and the two saga effects (one event each, on three aggregates).
	order := uuid.New()
	m.send(ctx, "order", order, "", 0, &ex.CreateOrder{CustomerId: customer.String(), Items: items})
	m.send(ctx, "order", order, "", 1, &ex.SubmitPayment{PaymentMethod: "card", AmountCents: 4200})
	const count = 3
	s, err := m.gateway().ExecuteStreamResponseCount(ctx, &pb.ExecuteStreamCountRequest{Count: count,
		Command: command(t, "order", order, "", 2, &ex.ConfirmPayment{PaymentReference: "pay-count"})})
	if err != nil {
		t.Fatal(err)
	}
	books := receiveAll(t, s) // the server ends the stream at count
	h, err := s.Header()
	if err != nil {
		t.Fatal(err)
	}
	corrs := h.Get(server.CorrelationHeader)
	if len(corrs) != 1 || corrs[0] == "" {
		t.Fatalf("header %s: %v, want the generated correlation id", server.CorrelationHeader, corrs)
	}
	if len(books) != count {
		t.Errorf("%d books, want %d", len(books), count)
	}
	checkCompletedOrderStream(t, books, nil, order, customer, corrs[0])
	// The count was right: once the sagas have handled everything, the
	// workflow holds exactly what was streamed.
	m.caughtUp(ctx, shopSubscribers...)
	if flow := m.workflow(ctx, corrs[0]); len(flow) != count {
		t.Errorf("workflow %s holds %v, the stream ended after %d books", corrs[0], flow, count)
	}

	// ExecuteStreamResponseTime of a ConfirmPayment whose correlation id
	// the order already carries: the order's earlier events come first,
	// then the completion and the saga effects, until the window closes.
	// (Pages of one aggregate stored between two reads of the stream come
	// in one book, so the events are checked, not the books.)
	order = uuid.New()
	corr := "gateway-time-" + order.String()
	m.send(ctx, "order", order, corr, 0, &ex.CreateOrder{CustomerId: customer.String(), Items: items})
	m.send(ctx, "order", order, corr, 1, &ex.SubmitPayment{PaymentMethod: "card", AmountCents: 4200})
	const window = 6 * time.Second
	start := time.Now()
	var header metadata.MD
	ts, err := m.gateway().ExecuteStreamResponseTime(ctx, &pb.ExecuteStreamTimeRequest{Duration: durationpb.New(window),
		Command: command(t, "order", order, corr, 2, &ex.ConfirmPayment{PaymentReference: "pay-time"})}, grpc.Header(&header))
	if err != nil {
		t.Fatal(err)
	}
	books = receiveAll(t, ts)
	if elapsed := time.Since(start); elapsed < window {
		t.Errorf("the stream ended after %v, before its %v window", elapsed, window)
	}
	if got := header.Get(server.CorrelationHeader); !slices.Equal(got, []string{corr}) {
		t.Errorf("header %s: %v, want %q", server.CorrelationHeader, got, corr)
	}
	checkCompletedOrderStream(t, books, []string{"order:OrderCreated", "order:PaymentSubmitted"}, order, customer, corr)
	m.caughtUp(ctx, shopSubscribers...)
	if flow := m.workflow(ctx, corr); len(flow) != 5 {
		t.Errorf("workflow %s holds %v, the stream had 5 events", corr, flow)
	}
	m.noDeadLetters(ctx)
}
