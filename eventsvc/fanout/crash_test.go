package fanout_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/angzarr-mesh/angzarr/eventsvc/eventsvctest"
	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	"github.com/angzarr-mesh/angzarr/examples/go/customer"
	"github.com/angzarr-mesh/angzarr/examples/go/fulfillment"
	"github.com/angzarr-mesh/angzarr/examples/go/order"
	"github.com/angzarr-mesh/angzarr/examples/go/roots"
	"github.com/angzarr-mesh/angzarr/internal/testredis"
	"github.com/angzarr-mesh/angzarr/internal/testutil"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/proto/examples"
)

// clients keeps one EventStore client per address of a restarting process.
type clients struct {
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func (c *clients) get(t testing.TB, addr string) pb.EventStoreClient {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conns == nil {
		c.conns = map[string]*grpc.ClientConn{}
	}
	cc, ok := c.conns[addr]
	if !ok {
		var err error
		if cc, err = grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
			t.Error(err)
			return nil
		}
		c.conns[addr] = cc
	}
	return pb.NewEventStoreClient(cc)
}

func (c *clients) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cc := range c.conns {
		cc.Close()
	}
}

// TestKillDuringFanoutEffectsExactlyOnce runs `angzarr eventsvc --fanout`
// as a subprocess with the shop's loyalty-earn and fulfillment sagas while
// 300 orders complete, kills it with SIGKILL once 150 saga commands were
// applied (others in flight, fetched and not committed), restarts it, and
// checks that every order led to exactly one shipment and one loyalty
// credit: redelivered commands were applied once through their
// idempotency keys.
func TestKillDuringFanoutEffectsExactlyOnce(t *testing.T) {
	for _, b := range []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"sqlite", func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "events.db") }},
		{"redis", func(t *testing.T) string {
			return "redis://" + testredis.StartServer(t, testredis.Options{AppendOnly: true}).Addr() + "/0"
		}},
	} {
		t.Run(b.name, func(t *testing.T) { killDuringFanout(t, b.url(t)) })
	}
}

func killDuringFanout(t *testing.T, url string) {
	const orders, customers, killAt = 300, 5, 150
	ctx := testCtx(t, 2*time.Minute)
	var (
		proc   *eventsvctest.Process
		procMu sync.Mutex
		cs     clients
	)
	defer cs.close()
	es := func() pb.EventStoreClient {
		procMu.Lock()
		p := proc
		procMu.Unlock()
		return cs.get(t, p.Addr())
	}
	coord := newCoordinator(es)
	kill := make(chan struct{})
	var once sync.Once
	coord.onApplied = func(n int) {
		if n >= killAt {
			once.Do(func() { close(kill) })
		}
	}
	cfg := shopFanout(t, coord)
	for _, s := range cfg.GetSubscriptions() {
		s.StartPosition = pb.StartPosition_START_POSITION_EARLIEST // orders may come before the checkpoints
	}
	js, err := protojson.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "fanout.json")
	if err := os.WriteFile(file, js, 0o600); err != nil {
		t.Fatal(err)
	}
	p := eventsvctest.StartProcess(t, angzarrBin, url, "--fanout", file, "--fanout-backoff", "5ms", "--fanout-backoff-max", "100ms")
	procMu.Lock()
	proc = p
	procMu.Unlock()

	bc := pb.NewBusinessCoordinatorClient(eventsvctest.Dial(t, cfg.GetDomains()[0].GetAddress()))
	custs := make([]uuid.UUID, customers)
	for i := range custs {
		custs[i] = uuid.New()
		command(ctx, t, bc, customer.Domain, custs[i], "", &examples.CreateCustomer{Name: fmt.Sprint("c", i), Email: fmt.Sprintf("c%d@example.com", i)})
	}

	// The orders: one OrderCompleted each, appended with an idempotency key
	// so a retry across the crash cannot store it twice.
	orderIDs := make([]uuid.UUID, orders)
	wantPoints := map[uuid.UUID]int32{}
	for i := range orderIDs {
		orderIDs[i] = uuid.New()
		wantPoints[custs[i%customers]] += int32(10 + i%7)
	}
	written := make(chan error, 1)
	go func() {
		for i, id := range orderIDs {
			ev, _ := anypb.New(&examples.OrderCompleted{FinalTotalCents: int64(10+i%7) * 100, LoyaltyPointsEarned: int32(10 + i%7), CustomerId: custs[i%customers].String()})
			req := &pb.AppendRequest{Cover: store.Aggregate{Domain: order.Domain, Root: id}.Cover(fmt.Sprint("corr-", i)), Pages: []*pb.EventPage{{Event: ev}}, IdempotencyKey: "create"}
			for {
				if ctx.Err() != nil {
					written <- ctx.Err()
					return
				}
				if _, err := es().Append(ctx, req); err == nil {
					break
				}
				time.Sleep(20 * time.Millisecond) // the service is down: retry until it is back
			}
		}
		written <- nil
	}()

	select {
	case <-kill:
	case <-ctx.Done():
		t.Fatal("saga commands never reached the kill point")
	}
	p.Kill()
	t.Logf("killed after %d applied saga commands", killAt)
	p.Restart()
	if err := <-written; err != nil {
		t.Fatal(err)
	}

	testutil.Eventually(t, "every loyalty credit", func() bool {
		total := 0
		for _, c := range custs {
			_, added := customerState(ctx, t, es(), c)
			total += added
		}
		if total > orders {
			t.Fatalf("%d loyalty credits for %d orders", total, orders)
		}
		return total == orders
	})
	for c, want := range wantPoints {
		s, added := customerState(ctx, t, es(), c)
		if s.GetLoyaltyPoints() != want || added != orders/customers {
			t.Fatalf("customer %s: %d points in %d credits, want %d in %d", c, s.GetLoyaltyPoints(), added, want, orders/customers)
		}
	}
	for _, o := range orderIDs {
		var n int
		testutil.Eventually(t, "the shipment of "+o.String(), func() bool {
			n = len(events(ctx, t, es(), fulfillment.Domain, roots.Of(o.String())))
			return n > 0
		})
		if n != 1 {
			t.Fatalf("order %s: %d shipment events, want 1", o, n)
		}
	}
	coord.mu.Lock()
	t.Logf("saga commands: %d applied, %d answered from an earlier result", coord.applied, coord.duplicates)
	coord.mu.Unlock()
}
