package shope2e_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	"github.com/angzarr-mesh/angzarr/examples/go/roots"
	"github.com/angzarr-mesh/angzarr/internal/devmesh/endpoints"
	"github.com/angzarr-mesh/angzarr/internal/testredis"
	"github.com/angzarr-mesh/angzarr/internal/testutil"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	ex "github.com/angzarr-mesh/angzarr/proto/examples"
)

// devProcess is `angzarr dev` running as a subprocess, so it can be killed.
type devProcess struct {
	cmd    *exec.Cmd
	logs   *logBuffer
	exited chan struct{} // closed once the process is gone
	err    error         // its exit status, once exited
	ep     *endpoints.File
}

// errPortTaken means a port of the mesh was taken by another program.
var errPortTaken = errors.New("a port of the mesh is taken")

// startDev runs `angzarr dev` on dataDir and the ports from base, and
// waits until its endpoints file names it.
func startDev(t *testing.T, dataDir string, base int) *devProcess {
	t.Helper()
	p, err := tryStartDev(t, dataDir, base)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startDevFreePorts is startDev on free ports, trying others when another
// program takes one of them first. It returns the base port.
func startDevFreePorts(t *testing.T, dataDir string) (*devProcess, int) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		base := testutil.FreePorts(t, ports)
		p, err := tryStartDev(t, dataDir, base)
		if errors.Is(err, errPortTaken) && attempt < 3 {
			t.Logf("ports taken meanwhile, trying others: %v", err)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		return p, base
	}
}

func tryStartDev(t *testing.T, dataDir string, base int) (*devProcess, error) {
	t.Helper()
	p := &devProcess{logs: &logBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(angzarrCLI(t), "dev", "--data-dir", dataDir, "--base-port", strconv.Itoa(base),
		"--filter", filterModule(t), "--no-python", "--log-level", "warn")
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	testredis.DieWithParent(p.cmd)
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("angzarr dev (pid %d) output:\n%s", p.cmd.Process.Pid, p.logs.tail(100))
		}
	})
	deadline := time.Now().Add(90 * time.Second)
	for {
		if f, err := endpoints.Read(dataDir); err == nil && f.PID == p.cmd.Process.Pid {
			p.ep = f
			return p, nil
		}
		select {
		case <-p.exited:
			out := p.logs.tail(100)
			if strings.Contains(out, "is already in use") {
				return nil, fmt.Errorf("%w: %s", errPortTaken, out)
			}
			return nil, fmt.Errorf("angzarr dev exited before it was ready: %v\n%s", p.err, out)
		case <-time.After(50 * time.Millisecond): // poll interval
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("angzarr dev not ready after 90s:\n%s", p.logs.tail(100))
		}
	}
}

// kill sends SIGKILL (kill -9) and waits for the process to be gone.
func (p *devProcess) kill() {
	_ = p.cmd.Process.Kill() // an error: it has exited already
	<-p.exited
}

// crashOrders is how many orders the crash test places: the 1,000.
// Each is four commands through the proxies and two saga commands back
// through them; on two busy cores, with the test under -race, all of them
// are placed and fanned out within about 20s (the test takes about 40s).
const crashOrders = 1000

// crashOrder is one order of the crash test and its customer.
type crashOrder struct {
	order, customer uuid.UUID
	amount          int64 // cents; points earned = amount / 100
}

func (o crashOrder) points() int32 { return int32(o.amount / 100) }

// shopClients are the clients the crash test's workers use: the order
// and customer proxies and the event service's queries.
type shopClients struct {
	orders, customers pb.BusinessCoordinatorClient
	query             pb.EventQueryClient
}

func (m *mesh) shopClients() shopClients {
	return shopClients{orders: m.coordinator("order"), customers: m.coordinator("customer"), query: m.query()}
}

// stored is how many events the aggregate at domain/root holds.
func (c shopClients) stored(ctx context.Context, domain string, root uuid.UUID) (uint32, error) {
	s, err := c.query.GetEvents(ctx, &pb.Query{Cover: &pb.Cover{Domain: domain, Root: &pb.UUID{Value: root[:]}}})
	if err != nil {
		return 0, err
	}
	n := 0
	for {
		b, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return uint32(n), nil
		}
		if err != nil {
			return 0, err
		}
		n += len(b.GetPages())
	}
}

// place sends the order's commands from where its aggregates stand (after
// a crash some may have been stored without an answer): CreateCustomer,
// then CreateOrder, SubmitPayment and ConfirmPayment.
func (o crashOrder) place(ctx context.Context, c shopClients, resume bool) error {
	corr := "crash-" + o.order.String()
	var custSeq, orderSeq uint32
	if resume {
		var err error
		if custSeq, err = c.stored(ctx, "customer", o.customer); err != nil {
			return err
		}
		if orderSeq, err = c.stored(ctx, "order", o.order); err != nil {
			return err
		}
	}
	if custSeq == 0 {
		if _, err := c.customers.Handle(ctx, newCommand("customer", o.customer, "", 0,
			&ex.CreateCustomer{Name: "Crash", Email: "crash@example.com"})); err != nil {
			return fmt.Errorf("CreateCustomer: %w", err)
		}
	}
	steps := []proto.Message{
		&ex.CreateOrder{CustomerId: o.customer.String(), Items: []*ex.LineItem{{ProductId: "crate", Name: "Crate", Quantity: 1, UnitPriceCents: o.amount}}},
		&ex.SubmitPayment{PaymentMethod: "card", AmountCents: o.amount},
		&ex.ConfirmPayment{PaymentReference: "pay"},
	}
	for seq := orderSeq; seq < uint32(len(steps)); seq++ {
		if _, err := c.orders.Handle(ctx, newCommand("order", o.order, corr, seq, steps[seq])); err != nil {
			return fmt.Errorf("%s: %w", steps[seq].ProtoReflect().Descriptor().Name(), err)
		}
	}
	return nil
}

// placeAll places orders with workers in parallel until stop is closed
// (then the orders not started are left) and returns those not known to be
// complete. Every completion is counted in completed.
func placeAll(ctx context.Context, c shopClients, orders []crashOrder, resume bool, stop <-chan struct{}, completed *atomic.Int64) []crashOrder {
	const workers = 8
	work := make(chan crashOrder)
	var mu sync.Mutex
	var left []crashOrder
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for o := range work {
				if err := o.place(ctx, c, resume); err != nil {
					mu.Lock()
					left = append(left, o)
					mu.Unlock()
					continue
				}
				completed.Add(1)
			}
		})
	}
	for i, o := range orders {
		select {
		case work <- o:
		case <-stop:
			mu.Lock()
			left = append(left, orders[i:]...)
			mu.Unlock()
			close(work)
			wg.Wait()
			return left
		}
	}
	close(work)
	wg.Wait()
	return left
}

func TestKilledDispatcherAppliesEverySagaEffectExactlyOnceAfterRestart(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	dev, base := startDevFreePorts(t, data)
	m := newMesh(t, data)
	m.ep = dev.ep
	ctx := ctxT(t, 3*time.Minute)
	start := time.Now()

	orders := make([]crashOrder, crashOrders)
	for i := range orders {
		orders[i] = crashOrder{order: uuid.New(), customer: uuid.New(), amount: int64(100 * (1 + i%50))}
	}

	// Place the orders; kill -9 the whole `angzarr dev` (event service,
	// dispatcher, proxies) once half of them are complete, right after the
	// loyalty saga's next credit is stored: the dispatcher executes a
	// batch's saga commands before it commits the batch's checkpoint, so
	// the kill leaves executed commands whose events will be delivered
	// again.
	credits := followCredits(t, ctx, m.query())
	var completed atomic.Int64
	var atKill string
	admin := m.admin()
	stop := make(chan struct{})
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		for completed.Load() < crashOrders/2 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(10 * time.Millisecond): // poll interval
			}
		}
		atKill, _ = progress(ctx, admin, "loyalty-earn")
		for len(credits) > 0 { // stale
			<-credits
		}
		select {
		case <-credits:
		case <-ctx.Done():
			return
		}
		close(stop)
		dev.kill()
	}()
	left := placeAll(ctx, m.shopClients(), orders, false, stop, &completed)
	<-killed
	t.Logf("killed angzarr dev after %v with %d orders completed, %d left; loyalty-earn had handled %s shortly before", time.Since(start), completed.Load(), len(left), atKill)
	if len(left) == 0 {
		t.Fatal("every order completed before the kill")
	}

	// Restart on the same data and ports; the dispatcher resumes from its
	// checkpoints. Then complete every order.
	m.closeConns()
	dev = startDev(t, data, base)
	m.ep = dev.ep
	resumed, _ := progress(ctx, m.admin(), "loyalty-earn")
	t.Logf("restarted after %v: loyalty-earn at %s", time.Since(start), resumed)
	if left = placeAll(ctx, m.shopClients(), left, true, nil, &completed); len(left) > 0 {
		t.Fatalf("%d orders could not be completed after the restart, e.g. %v", len(left), left[0])
	}
	m.caughtUp(ctx, shopSubscribers...)
	t.Logf("every order complete and fanned out after %v", time.Since(start))

	// Every completed order credited its customer once and shipped once.
	var wg sync.WaitGroup
	errs := make(chan string, crashOrders)
	work := make(chan crashOrder)
	for range 4 {
		wg.Go(func() {
			for o := range work {
				if msg := checkEffects(ctx, m, o); msg != "" {
					errs <- msg
				}
			}
		})
	}
	for _, o := range orders {
		work <- o
	}
	close(work)
	wg.Wait()
	close(errs)
	n := 0
	for msg := range errs {
		if n++; n <= 10 {
			t.Error(msg)
		}
	}
	if n > 0 {
		t.Errorf("%d of %d orders do not have their saga effects exactly once", n, crashOrders)
	}
	m.noDeadLetters(ctx)
}

// checkEffects describes what is wrong with the saga effects of a
// completed order, or returns "".
func checkEffects(ctx context.Context, m *mesh, o crashOrder) string {
	read := func(domain string, root uuid.UUID) ([]string, []proto.Message, error) {
		books, err := m.getEvents(ctx, &pb.Query{Cover: &pb.Cover{Domain: domain, Root: &pb.UUID{Value: root[:]}}})
		if err != nil {
			return nil, nil, err
		}
		var names []string
		var msgs []proto.Message
		for _, b := range books {
			for _, p := range b.GetPages() {
				msg, err := p.GetEvent().UnmarshalNew()
				if err != nil {
					return nil, nil, err
				}
				names = append(names, string(msg.ProtoReflect().Descriptor().Name()))
				msgs = append(msgs, msg)
			}
		}
		return names, msgs, nil
	}
	if names, _, err := read("order", o.order); err != nil || !equal(names, []string{"OrderCreated", "PaymentSubmitted", "OrderCompleted"}) {
		return fmt.Sprintf("order %s: %v (%v), want it completed", o.order, names, err)
	}
	names, msgs, err := read("customer", o.customer)
	if err != nil || !equal(names, []string{"CustomerCreated", "LoyaltyPointsAdded"}) {
		return fmt.Sprintf("customer of order %s: %v (%v), want one loyalty credit", o.order, names, err)
	}
	if a := msgs[1].(*ex.LoyaltyPointsAdded); a.GetPoints() != o.points() || !strings.Contains(a.GetReason(), o.order.String()) {
		return fmt.Sprintf("customer of order %s credited %v, want %d points for it", o.order, a, o.points())
	}
	if names, _, err := read("fulfillment", roots.Of(o.order.String())); err != nil || !equal(names, []string{"ShipmentCreated"}) {
		return fmt.Sprintf("shipment of order %s: %v (%v), want one ShipmentCreated", o.order, names, err)
	}
	return ""
}

// progress describes how far a subscriber is in each partition, and
// whether it is behind in one.
func progress(ctx context.Context, admin pb.FanoutAdminClient, name string) (string, bool) {
	p, err := admin.GetSubscriberProgress(ctx, &pb.GetSubscriberProgressRequest{Name: name})
	if err != nil {
		return err.Error(), false
	}
	var parts []string
	behind := false
	for _, pp := range p.GetPartitions() {
		parts = append(parts, fmt.Sprintf("%s/%d: %d of %d entries", pp.GetDomain(), pp.GetPartition(), pp.GetCommitted(), pp.GetEnd()))
		behind = behind || pp.GetCommitted() < pp.GetEnd()
	}
	return strings.Join(parts, ", "), behind
}

// followCredits follows the customer domain's log (EventQuery.Synchronize)
// and signals every loyalty credit stored, until the test ends or the
// event service goes away.
func followCredits(t *testing.T, ctx context.Context, q pb.EventQueryClient) <-chan struct{} {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	s, err := q.Synchronize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&pb.Query{Cover: &pb.Cover{Domain: "customer"}}); err != nil {
		t.Fatal(err)
	}
	credits := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			b, err := s.Recv()
			if err != nil {
				return
			}
			for _, p := range b.GetPages() {
				if strings.HasSuffix(p.GetEvent().GetTypeUrl(), ".LoyaltyPointsAdded") {
					select {
					case credits <- struct{}{}:
					default:
					}
				}
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return credits
}
