//go:build !wasip1

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	"github.com/angzarr-mesh/angzarr/eventsvc"
	"github.com/angzarr-mesh/angzarr/eventsvc/eventsvctest"
	"github.com/angzarr-mesh/angzarr/eventsvc/fanout"
	"github.com/angzarr-mesh/angzarr/examples/go/roots"
	"github.com/angzarr-mesh/angzarr/examples/go/shop"
	"github.com/angzarr-mesh/angzarr/filter/config"
	"github.com/angzarr-mesh/angzarr/internal/testredis"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/proto/examples"
	"github.com/angzarr-mesh/angzarr/wasmhost"
)

// TestRefusedSagaCommandThroughTheMesh is issue 19's case through real
// parts: the order, customer and inventory domains each behind a wasmhost
// proxy running the real filter, the shop's cancellation saga, and an
// event service on Redis whose dispatcher executes saga commands through
// those proxies. A customer with 500 points has 300 of them taken for the
// loyalty discount of an order of a product whose stock was never
// initialized, and the order is cancelled: the saga's ReleaseReservation
// is refused (FAILED_PRECONDITION) by inventory's filter and logic, the
// refund of the 300 points taken runs anyway, and the refusal goes back to
// the order through the order's own filter as a SagaCompensation; the
// order has nothing to undo for a release and asks for no action, so the
// saga's default fallback records a SagaFailed event in the failure domain
// and parks the one refused command.
func TestRefusedSagaCommandThroughTheMesh(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	domains := []string{"order", "customer", "inventory"}
	comps := shop.Components()
	serveComp := func(c shop.Component) string {
		lis := listen(t)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- shop.Serve(ctx, lis, c) }()
		t.Cleanup(func() { cancel(); <-done })
		return lis.Addr().String()
	}
	proxyLis := map[string]net.Listener{}
	endpoints := []*pb.DomainEndpoint{}
	for _, d := range domains {
		proxyLis[d] = listen(t)
		endpoints = append(endpoints, &pb.DomainEndpoint{Domain: d, Address: proxyLis[d].Addr().String()})
	}
	fcfg := &pb.FanoutConfig{
		Subscriptions: []*pb.Subscription{{
			Name: "cancellation", Kind: pb.SubscriberKind_SUBSCRIBER_KIND_SAGA, Address: serveComp(comps["cancellation"][shop.Saga]),
			SourceDomains: []string{"order"}, TargetDomains: []string{"customer", "inventory"}, StartPosition: pb.StartPosition_START_POSITION_EARLIEST,
		}},
		Domains: endpoints,
	}

	esLis := listen(t)
	esAddr := esLis.Addr().String()
	esCtx, esCancel := context.WithCancel(context.Background())
	esDone := make(chan error, 1)
	go func() {
		esDone <- eventsvc.Serve(esCtx, esLis, eventsvc.Config{
			Store: "redis://" + testredis.Start(t) + "/0", Logger: logger, FanoutSource: fanout.StaticSource{Config: fcfg},
			FanoutMaxAttempts: 3, FanoutBackoff: time.Millisecond, FanoutBackoffMax: 10 * time.Millisecond,
		})
	}()
	t.Cleanup(func() {
		esCancel()
		if err := <-esDone; err != nil && !errors.Is(err, context.Canceled) {
			t.Logf("eventsvc: %v", err)
		}
	})
	if err := eventsvctest.WaitReady(esAddr, 30*time.Second, esDone); err != nil {
		t.Fatal(err)
	}
	for _, d := range domains {
		logic := serveComp(comps[d][shop.Logic])
		raw, err := json.Marshal(config.Config{Domains: []string{d}, EventServiceCluster: "angzarr-eventsvc", BusinessLogicCluster: "angzarr-logic"})
		if err != nil {
			t.Fatal(err)
		}
		h, err := wasmhost.New(context.Background(), wasmhost.Config{
			FilterPath: wasmPath, Plugin: wasmhost.Plugin{Configuration: raw}, Upstream: logic,
			Clusters: map[string]string{"angzarr-eventsvc": esAddr, "angzarr-logic": logic}, WASIProfile: wasmhost.WASIEnvoyCurrent, VMs: 1, Logger: logger,
		})
		if err != nil {
			t.Fatalf("wasmhost %s: %v", d, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- h.Serve(ctx, proxyLis[d]) }()
		t.Cleanup(func() { cancel(); <-done; h.Close() })
	}

	ctx := ctxT(t)
	coord := func(d string) pb.BusinessCoordinatorClient {
		return pb.NewBusinessCoordinatorClient(dial(t, proxyLis[d].Addr().String()))
	}
	orders, customers := coord("order"), coord("customer")
	conn := dial(t, esAddr)
	es, admin := pb.NewEventStoreClient(conn), pb.NewFanoutAdminClient(conn)
	send := func(cl pb.BusinessCoordinatorClient, domain string, root uuid.UUID, seq uint32, msg proto.Message) {
		t.Helper()
		if _, err := cl.Handle(ctx, shopCommand(t, domain, root, "corr-"+root.String(), seq, msg)); err != nil {
			t.Fatalf("%s %T: %v", domain, msg, err)
		}
	}
	load := func(domain string, root uuid.UUID) []*pb.EventPage {
		t.Helper()
		ld, err := es.Load(ctx, &pb.LoadRequest{Cover: &pb.Cover{Domain: domain, Root: &pb.UUID{Value: root[:]}}})
		if err != nil {
			t.Fatal(err)
		}
		return ld.GetBook().GetPages()
	}

	cust, order := uuid.New(), uuid.New()
	send(customers, "customer", cust, 0, &examples.CreateCustomer{Name: "Ada", Email: "ada@example.com"})
	send(customers, "customer", cust, 1, &examples.AddLoyaltyPoints{Points: 500, Reason: "welcome"})
	send(orders, "order", order, 0, &examples.CreateOrder{CustomerId: cust.String(), Items: []*examples.LineItem{{ProductId: "never-stocked", Name: "Pen", Quantity: 1, UnitPriceCents: 5000}}})
	send(orders, "order", order, 1, &examples.ApplyLoyaltyDiscount{Points: 300, DiscountCents: 300})
	// What the shop's loyalty saga does (this mesh runs the cancellation
	// saga alone): take the points under the order's id.
	send(customers, "customer", cust, 2, &examples.RedeemLoyaltyPoints{Points: 300, RedemptionType: "discount", Reference: order.String()})
	send(orders, "order", order, 2, &examples.CancelOrder{Reason: "changed my mind"})

	deadLetters := func() []*pb.DeadLetter {
		t.Helper()
		resp, err := admin.ListDeadLetters(ctx, &pb.ListDeadLettersRequest{Subscriber: "cancellation"})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetDeadLetters()
	}
	// Wait (until ctx ends) for the refund, the failure event and the
	// dead letter.
	var failures []*pb.EventPage
	for {
		failures = load(fanout.DefaultFailureDomain, order)
		if len(failures) > 0 && len(load("customer", cust)) == 4 && len(deadLetters()) > 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("gave up waiting for the refund, the failure event (%d) and the dead letter", len(failures))
		case <-time.After(10 * time.Millisecond): // poll interval
		}
	}
	var refund examples.LoyaltyPointsRefunded
	if pages := load("customer", cust); pages[3].GetEvent().UnmarshalTo(&refund) != nil || refund.GetPoints() != 300 || refund.GetNewBalance() != 500 {
		t.Fatalf("customer events %v, want the 300 points taken given back", pages)
	}
	var failed pb.SagaFailed
	if len(failures) != 1 || failures[0].GetEvent().UnmarshalTo(&failed) != nil || !failed.GetFallback() ||
		failed.GetCompensation().GetReason() != "stock not initialized" || failed.GetCompensation().GetOrigin().GetSagaName() != "cancellation" ||
		!strings.Contains(failed.GetReason(), "the origin asked for no action: nothing for the order to undo") {
		t.Fatalf("failure events %v (%v), want the fallback's SagaFailed for the refused release", failures, &failed)
	}
	if n := len(load("order", order)); n != 3 {
		t.Fatalf("order has %d events, want 3: the order logic does not compensate", n)
	}
	dls := deadLetters()
	if len(dls) != 1 || dls[0].GetCause() != pb.DeadLetterCause_DEAD_LETTER_CAUSE_REFUSED || dls[0].GetCommand().GetCover().GetDomain() != "inventory" ||
		!strings.Contains(dls[0].GetError(), "stock not initialized") {
		t.Fatalf("dead letters %v, want the refused ReleaseReservation alone", dls)
	}
	if n := len(load("inventory", roots.Of("never-stocked"))); n != 0 {
		t.Fatalf("inventory stored %d events for a refused command", n)
	}
}
