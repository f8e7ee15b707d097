package shop_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"

	"github.com/angzarr-mesh/angzarr/examples/go/shop"
	"github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/proto/examples"
	"github.com/angzarr-mesh/angzarr/sdk/sdktest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// start serves component c on 127.0.0.1:0 until the test ends and
// returns a connection to it once its health check answers SERVING.
func start(t *testing.T, c shop.Component) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- shop.Serve(ctx, lis, c) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve %s: %v", c.Ref(), err)
		}
	})
	return dial(t, lis.Addr().String())
}

// dial connects to addr and waits (polling health, no sleeps) until it
// serves.
func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health of %s: %v %v", addr, resp, err)
	}
	return conn
}

// contextual is a ContextualCommand creating a new aggregate with cmd.
func contextual(t *testing.T, domain string, cmd proto.Message) *angzarr.ContextualCommand {
	book := sdktest.Book(t, domain, sdktest.Root, 0)
	return &angzarr.ContextualCommand{
		Events:  book,
		Command: &angzarr.CommandBook{Cover: book.GetCover(), Pages: []*angzarr.CommandPage{{Command: sdktest.Pack(t, cmd)}}},
	}
}

func TestLogicComponentsOverGRPC(t *testing.T) {
	creates := map[string]struct{ cmd, event proto.Message }{
		"customer":    {&examples.CreateCustomer{Name: "Ann", Email: "a@x"}, &examples.CustomerCreated{Name: "Ann", Email: "a@x"}},
		"product":     {&examples.CreateProduct{Sku: "S", Name: "N", PriceCents: 1}, &examples.ProductListed{Sku: "S", Name: "N", Price: &examples.Money{Cents: 1, Currency: "USD"}}},
		"cart":        {&examples.CreateCart{CustomerId: "c"}, &examples.CartCreated{CustomerId: "c"}},
		"inventory":   {&examples.InitializeStock{ProductId: "p", Quantity: 3}, &examples.StockInitialized{ProductId: "p", Quantity: 3}},
		"order":       {&examples.CreateOrder{CustomerId: "c", Items: []*examples.LineItem{{ProductId: "p", Quantity: 1, UnitPriceCents: 5}}}, nil},
		"fulfillment": {&examples.CreateShipment{OrderId: "o"}, &examples.ShipmentCreated{OrderId: "o"}},
	}
	for _, c := range shop.All() {
		if c.Kind != shop.Logic {
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			tc, ok := creates[c.Domain]
			if !ok {
				t.Fatalf("no test command for domain %q", c.Domain)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got, err := angzarr.NewBusinessLogicClient(start(t, c)).Handle(ctx, contextual(t, c.Domain, tc.cmd))
			if err != nil {
				t.Fatal(err)
			}
			if len(got.GetPages()) != 1 || got.GetCover().GetCorrelationId() != sdktest.CorrelationID {
				t.Fatalf("answer: %v", got)
			}
			if tc.event != nil {
				sdktest.Equal(t, got.GetPages(), []proto.Message{tc.event})
			}
		})
	}
}

func TestSagaComponentsOverGRPC(t *testing.T) {
	completed := &examples.OrderCompleted{FinalTotalCents: 5000, LoyaltyPointsEarned: 50, CustomerId: "c-1"}
	cancelled := &examples.OrderCancelled{LoyaltyPointsUsed: 5, CustomerId: "c-1", Items: []*examples.LineItem{{ProductId: "p", Quantity: 1}}}
	want := map[string]int{"loyalty-earn": 1, "fulfillment": 1, "cancellation": 2}
	for _, c := range shop.All() {
		if c.Kind != shop.Saga {
			continue
		}
		name := c.Name
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			client := angzarr.NewSagaClient(start(t, c))
			resp, err := client.HandleSync(ctx, sdktest.Book(t, "order", sdktest.Root, 4, completed, cancelled))
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.GetCommands()) != want[name] {
				t.Fatalf("%d commands, want %d: %v", len(resp.GetCommands()), want[name], resp)
			}
			if _, err := client.Handle(ctx, sdktest.Book(t, "order", sdktest.Root, 4, completed)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestProjectorOverGRPC(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := shop.Lookup("order-summary")
	if err != nil {
		t.Fatal(err)
	}
	client := angzarr.NewProjectorClient(start(t, c))
	proj, err := client.HandleSync(ctx, sdktest.Book(t, "order", sdktest.Root, 0, &examples.OrderCreated{CustomerId: "c", SubtotalCents: 700}))
	if err != nil {
		t.Fatal(err)
	}
	s := &examples.OrderSummary{}
	if err := proj.GetProjection().UnmarshalTo(s); err != nil || s.Status != "pending" || s.TotalCents != 700 || proj.GetProjector() != "order-summary" {
		t.Fatalf("projection %v (%v)", proj, err)
	}
}

// TestRunAll serves every component on its own port and stops them all.
func TestRunAll(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	addrs := map[string]string{}
	done := make(chan error, 1)
	go func() {
		done <- shop.Run(ctx, shop.Config{Listen: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler), Ready: func(c shop.Component, addr string) {
			mu.Lock()
			defer mu.Unlock()
			addrs[c.Ref()] = addr
		}})
	}()
	for _, c := range shop.All() {
		// Ready runs before Run serves; poll until every address is known.
		var addr string
		for addr == "" {
			select {
			case err := <-done:
				t.Fatalf("run ended early: %v", err)
			default:
			}
			mu.Lock()
			addr = addrs[c.Ref()]
			mu.Unlock()
			if addr == "" {
				<-time.After(time.Millisecond)
			}
		}
		conn := dial(t, addr)
		_ = conn.Close()
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestUnknownComponent(t *testing.T) {
	if err := shop.Run(context.Background(), shop.Config{Component: "nope"}); err == nil {
		t.Fatal("want an error for an unknown component")
	}
}

func TestComponentsAreConsistent(t *testing.T) {
	all, byName := shop.All(), shop.Components()
	refs := map[string]bool{}
	for _, c := range all {
		if refs[c.Ref()] {
			t.Fatalf("%s listed twice", c.Ref())
		}
		refs[c.Ref()] = true
		if got := byName[c.Name][c.Kind]; got.Ref() != c.Ref() {
			t.Errorf("Components()[%q][%q] = %v", c.Name, c.Kind, got.Ref())
		}
		serves := c.Kind == shop.Logic || c.Kind == shop.Upcaster
		if serves != (c.Domain != "") {
			t.Errorf("%s: domain %q", c.Ref(), c.Domain)
		}
		if (c.Kind == shop.Saga || c.Kind == shop.Projector || c.Kind == shop.ProcessManager) && len(c.Subscribes) == 0 {
			t.Errorf("%s subscribes to nothing", c.Ref())
		}
		if (c.Kind == shop.Upcaster) != (len(c.Upcasts) > 0) {
			t.Errorf("%s: upcasts %v", c.Ref(), c.Upcasts)
		}
	}
	if len(all) != 12 {
		t.Fatalf("%d components, want 6 domains, 3 sagas, a projector, an upcaster and a process manager", len(all))
	}
}

func TestLookup(t *testing.T) {
	for ref, want := range map[string]string{
		"order":                   "logic:order",
		"fulfillment":             "logic:fulfillment",
		"saga:fulfillment":        "saga:fulfillment",
		"logic:fulfillment":       "logic:fulfillment",
		"loyalty-earn":            "saga:loyalty-earn",
		"order-summary":           "projector:order-summary",
		"projector:order-summary": "projector:order-summary",
		"product-upcaster":        "upcaster:product-upcaster",
	} {
		c, err := shop.Lookup(ref)
		if err != nil || c.Ref() != want {
			t.Errorf("Lookup(%q) = %v, %v; want %s", ref, c.Ref(), err, want)
		}
	}
	for _, ref := range []string{"nope", "saga:order", "projector:fulfillment"} {
		if _, err := shop.Lookup(ref); !errors.Is(err, shop.ErrUnknownComponent) {
			t.Errorf("Lookup(%q): %v, want ErrUnknownComponent", ref, err)
		}
	}
}
