package fanout_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/angzarr-mesh/angzarr/eventsvc"
	"github.com/angzarr-mesh/angzarr/eventsvc/eventsvctest"
	"github.com/angzarr-mesh/angzarr/eventsvc/fanout"
	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	"github.com/angzarr-mesh/angzarr/examples/go/customer"
	"github.com/angzarr-mesh/angzarr/examples/go/fulfillment"
	"github.com/angzarr-mesh/angzarr/examples/go/order"
	"github.com/angzarr-mesh/angzarr/examples/go/roots"
	"github.com/angzarr-mesh/angzarr/examples/go/sagas"
	"github.com/angzarr-mesh/angzarr/internal/testutil"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/proto/examples"
	"github.com/angzarr-mesh/angzarr/sdk"
)

// shopFanout serves the loyalty-earn and fulfillment sagas of the example
// shop and returns the fan-out configuration that routes order events to
// them and their commands to coord (also serving the order domain), plus
// extra subscriptions.
func shopFanout(t *testing.T, coord *coordinator, extra ...*pb.Subscription) *pb.FanoutConfig {
	serveSaga := func(s *sdk.Saga) string {
		return serve(t, func(g *grpc.Server) {
			if _, err := sdk.Register(g, s); err != nil {
				t.Fatal(err)
			}
		})
	}
	coordAddr := serve(t, func(g *grpc.Server) { pb.RegisterBusinessCoordinatorServer(g, coord) })
	saga := func(name, addr string, targets ...string) *pb.Subscription {
		return &pb.Subscription{Name: name, Kind: pb.SubscriberKind_SUBSCRIBER_KIND_SAGA, Address: addr, SourceDomains: []string{order.Domain}, TargetDomains: targets}
	}
	cfg := &pb.FanoutConfig{
		Version: "shop",
		Subscriptions: append([]*pb.Subscription{
			saga(sagas.LoyaltyEarnName, serveSaga(sagas.LoyaltyEarn()), customer.Domain),
			saga(sagas.FulfillmentName, serveSaga(sagas.Fulfillment()), fulfillment.Domain),
		}, extra...),
	}
	for _, d := range []string{customer.Domain, order.Domain, fulfillment.Domain} {
		cfg.Domains = append(cfg.Domains, &pb.DomainEndpoint{Domain: d, Address: coordAddr})
	}
	return cfg
}

// command sends one command through the coordinator.
func command(ctx context.Context, t *testing.T, bc pb.BusinessCoordinatorClient, domain string, root uuid.UUID, cid string, msg proto.Message) *pb.CommandResponse {
	t.Helper()
	cmd, err := sdk.Command(domain, root, cid, msg)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := bc.Handle(ctx, cmd)
	if err != nil {
		t.Fatalf("%s %T: %v", domain, msg, err)
	}
	return resp
}

// completeOrder runs an order of 1 item at cents through the order logic
// to OrderCompleted.
func completeOrder(ctx context.Context, t *testing.T, bc pb.BusinessCoordinatorClient, id uuid.UUID, customerID string, cents int64) {
	t.Helper()
	cid := "corr-" + id.String()
	command(ctx, t, bc, order.Domain, id, cid, &examples.CreateOrder{CustomerId: customerID, Items: []*examples.LineItem{{ProductId: "p", Name: "thing", Quantity: 1, UnitPriceCents: cents}}})
	command(ctx, t, bc, order.Domain, id, cid, &examples.SubmitPayment{PaymentMethod: "card", AmountCents: cents})
	command(ctx, t, bc, order.Domain, id, cid, &examples.ConfirmPayment{PaymentReference: "ref"})
}

// events loads an aggregate's events from the event service.
func events(ctx context.Context, t testing.TB, es pb.EventStoreClient, domain string, root uuid.UUID) []*pb.EventPage {
	t.Helper()
	ld, err := es.Load(ctx, &pb.LoadRequest{Cover: store.Aggregate{Domain: domain, Root: root}.Cover("")})
	if err != nil {
		t.Fatal(err)
	}
	return ld.GetBook().GetPages()
}

// customerState rebuilds a customer from the event service.
func customerState(ctx context.Context, t *testing.T, es pb.EventStoreClient, root uuid.UUID) (*examples.CustomerState, int) {
	t.Helper()
	ld, err := es.Load(ctx, &pb.LoadRequest{Cover: store.Aggregate{Domain: customer.Domain, Root: root}.Cover("")})
	if err != nil {
		t.Fatal(err)
	}
	s, err := customer.Logic().Rebuild(ld.GetBook())
	if err != nil {
		t.Fatal(err)
	}
	added := 0
	for _, p := range ld.GetBook().GetPages() {
		if strings.HasSuffix(p.GetEvent().GetTypeUrl(), "LoyaltyPointsAdded") {
			added++
		}
	}
	return s, added
}

// TestSagaCommandsExecutedOnce runs the shop's loyalty-earn and fulfillment
// sagas through an in-process event service: each completed order leads to
// one shipment and one loyalty credit, commands carry the origin,
// auto_resequence, the trigger's correlation id and the derived idempotency
// key; an order completed before the sagas subscribed is not processed
// (sagas start at LATEST); a saga's command for a domain outside its
// targets is dead-lettered at once; sagas cannot be rebuilt.
func TestSagaCommandsExecutedOnce(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := testCtx(t, time.Minute)
		url := b.url(t)
		var es atomic.Pointer[pb.EventStoreClient]
		coord := newCoordinator(func() pb.EventStoreClient { return *es.Load() })

		// An order completed before the event service (and its sagas) ran.
		oldOrder := uuid.New()
		{
			st := b.open(t, url)
			ev, _ := anypb.New(&examples.OrderCompleted{FinalTotalCents: 900, LoyaltyPointsEarned: 9, CustomerId: uuid.NewString()})
			if _, err := st.Append(ctx, &store.AppendRequest{Aggregate: store.Aggregate{Domain: order.Domain, Root: oldOrder}, Pages: []*pb.EventPage{{Event: ev}}}); err != nil {
				t.Fatal(err)
			}
		}

		// loyalty-earn's logic again, but allowed to target fulfillment only.
		rogue := &pb.Subscription{Name: "rogue", Kind: pb.SubscriberKind_SUBSCRIBER_KIND_SAGA, SourceDomains: []string{order.Domain}, TargetDomains: []string{fulfillment.Domain},
			Address: serve(t, func(g *grpc.Server) { sdk.Register(g, sagas.LoyaltyEarn()) })}
		cfg := shopFanout(t, coord, rogue)
		addr := eventsvctest.StartConfig(t, eventsvc.Config{Store: url, FanoutSource: fanout.StaticSource{Config: cfg}, FanoutBackoff: time.Millisecond, FanoutBackoffMax: 10 * time.Millisecond})
		conn := eventsvctest.Dial(t, addr)
		client := pb.NewEventStoreClient(conn)
		es.Store(&client)
		admin := pb.NewFanoutAdminClient(conn)
		for _, s := range cfg.GetSubscriptions() {
			testutil.Eventually(t, s.GetName()+"'s checkpoints", func() bool {
				p, err := admin.GetSubscriberProgress(ctx, &pb.GetSubscriberProgressRequest{Name: s.GetName()})
				if status.Code(err) == codes.NotFound {
					return false // the dispatcher has not applied its configuration yet
				}
				if err != nil {
					t.Fatal(err)
				}
				for _, pp := range p.GetPartitions() {
					if !pp.GetStarted() {
						return false
					}
				}
				return true
			})
		}

		bc := pb.NewBusinessCoordinatorClient(eventsvctest.Dial(t, cfg.GetDomains()[0].GetAddress()))
		customers := []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
		for i, c := range customers {
			command(ctx, t, bc, customer.Domain, c, "", &examples.CreateCustomer{Name: fmt.Sprint("customer ", i), Email: fmt.Sprintf("c%d@example.com", i)})
		}
		orders := make([]uuid.UUID, 9)
		wantPoints := map[uuid.UUID]int32{}
		for i := range orders {
			orders[i] = uuid.New()
			cents := int64(1000 + 100*i)
			c := customers[i%len(customers)]
			completeOrder(ctx, t, bc, orders[i], c.String(), cents)
			wantPoints[c] += int32(cents / 100)
		}

		testutil.Eventually(t, "every saga effect", func() bool {
			for _, o := range orders {
				if len(events(ctx, t, client, fulfillment.Domain, roots.Of(o.String()))) == 0 {
					return false
				}
			}
			for c, want := range wantPoints {
				if s, _ := customerState(ctx, t, client, c); s.GetLoyaltyPoints() != want {
					return false
				}
			}
			return true
		})
		for _, o := range orders {
			if n := len(events(ctx, t, client, fulfillment.Domain, roots.Of(o.String()))); n != 1 {
				t.Fatalf("order %s has %d shipment events, want 1", o, n)
			}
		}
		for c, want := range wantPoints {
			s, added := customerState(ctx, t, client, c)
			if s.GetLoyaltyPoints() != want || added != len(orders)/len(customers) {
				t.Fatalf("customer %s: %d points in %d credits, want %d in %d", c, s.GetLoyaltyPoints(), added, want, len(orders)/len(customers))
			}
		}
		if n := len(events(ctx, t, client, fulfillment.Domain, roots.Of(oldOrder.String()))); n != 0 {
			t.Fatalf("the order completed before the sagas subscribed got %d shipment events", n)
		}

		// Every saga command as the coordinator received it.
		byOrder := map[uuid.UUID]int{}
		for _, cmd := range coord.received() {
			o := cmd.GetSagaOrigin()
			trigger := uuid.UUID(o.GetTriggeringAggregate().GetRoot().GetValue())
			byOrder[trigger]++
			switch {
			case o.GetSagaName() != sagas.LoyaltyEarnName && o.GetSagaName() != sagas.FulfillmentName:
				t.Fatalf("command from saga %q", o.GetSagaName())
			case o.GetTriggeringAggregate().GetDomain() != order.Domain || o.GetTriggeringEventSequence() != 2:
				t.Fatalf("origin %v: want the order's event 2 (OrderCompleted)", o)
			case !cmd.GetAutoResequence():
				t.Fatalf("command without auto_resequence: %v", cmd)
			case cmd.GetIdempotencyKey() != fanout.IdempotencyKey(o, 0):
				t.Fatalf("idempotency key %q, want %q", cmd.GetIdempotencyKey(), fanout.IdempotencyKey(o, 0))
			case cmd.GetCover().GetCorrelationId() != "corr-"+trigger.String():
				t.Fatalf("correlation id %q, want the order's corr-%s", cmd.GetCover().GetCorrelationId(), trigger)
			}
		}
		for _, o := range orders {
			if byOrder[o] != 2 {
				t.Fatalf("order %s triggered %d commands, want 2", o, byOrder[o])
			}
		}

		// The rogue saga's commands were refused and parked at once.
		var dls []*pb.DeadLetter
		testutil.Eventually(t, "the rogue saga's dead letters", func() bool {
			resp, err := admin.ListDeadLetters(ctx, &pb.ListDeadLettersRequest{Subscriber: "rogue"})
			if err != nil {
				t.Fatal(err)
			}
			dls = resp.GetDeadLetters()
			return len(dls) == len(orders)
		})
		for _, dl := range dls {
			if dl.GetAttempts() != 1 || !strings.Contains(dl.GetError(), `domain "customer" is not one of its target domains`) || dl.GetKind() != pb.SubscriberKind_SUBSCRIBER_KIND_SAGA {
				t.Fatalf("rogue dead letter: %v", dl)
			}
		}
		if _, err := admin.ResetSubscriber(ctx, &pb.ResetSubscriberRequest{Name: sagas.FulfillmentName}); status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("rebuilding a saga: %v", err)
		}
	})
}

// TestIdempotencyKey: keys are deterministic, differ by every part of the
// origin and by index, and fit the store's limit.
func TestIdempotencyKey(t *testing.T) {
	root := uuid.New()
	base := &pb.SagaCommandOrigin{SagaName: "s", TriggeringAggregate: &pb.Cover{Domain: "order", Root: sdk.RootOf(root), CorrelationId: "x"}, TriggeringEventSequence: 3}
	k := fanout.IdempotencyKey(base, 0)
	if k != fanout.IdempotencyKey(proto.Clone(base).(*pb.SagaCommandOrigin), 0) || len(k) > store.MaxIdempotencyKeyLen {
		t.Fatalf("key %q", k)
	}
	other := func(f func(o *pb.SagaCommandOrigin)) *pb.SagaCommandOrigin {
		o := proto.Clone(base).(*pb.SagaCommandOrigin)
		f(o)
		return o
	}
	seen := map[string]bool{k: true}
	for _, o := range []*pb.SagaCommandOrigin{
		other(func(o *pb.SagaCommandOrigin) { o.SagaName = "t" }),
		other(func(o *pb.SagaCommandOrigin) { o.TriggeringAggregate.Domain = "orders" }),
		other(func(o *pb.SagaCommandOrigin) { o.TriggeringAggregate.Root = sdk.RootOf(uuid.New()) }),
		other(func(o *pb.SagaCommandOrigin) { o.TriggeringEventSequence = 4 }),
	} {
		if seen[fanout.IdempotencyKey(o, 0)] {
			t.Fatalf("origin %v has the key of another", o)
		}
		seen[fanout.IdempotencyKey(o, 0)] = true
	}
	if seen[fanout.IdempotencyKey(base, 1)] {
		t.Fatal("index 1 has the key of another command")
	}
	if fanout.IdempotencyKey(other(func(o *pb.SagaCommandOrigin) { o.TriggeringAggregate.CorrelationId = "y" }), 0) != k {
		t.Fatal("the correlation id changed the key")
	}
}
