package fanout_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/angzarr-mesh/angzarr/eventsvc"
	"github.com/angzarr-mesh/angzarr/eventsvc/eventsvctest"
	"github.com/angzarr-mesh/angzarr/eventsvc/fanout"
	"github.com/angzarr-mesh/angzarr/examples/go/customer"
	"github.com/angzarr-mesh/angzarr/examples/go/inventory"
	"github.com/angzarr-mesh/angzarr/examples/go/order"
	"github.com/angzarr-mesh/angzarr/examples/go/roots"
	"github.com/angzarr-mesh/angzarr/examples/go/sagas"
	"github.com/angzarr-mesh/angzarr/internal/testutil"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/proto/examples"
	"github.com/angzarr-mesh/angzarr/sdk"
)

// cancellationShop is an in-process event service whose dispatcher runs
// the example shop's cancellation saga (order → inventory, customer), its
// commands executed by a coordinator with the shop's logic.
type cancellationShop struct {
	coord *coordinator
	bc    pb.BusinessCoordinatorClient
	es    pb.EventStoreClient
	admin pb.FanoutAdminClient
	addr  string // the event service's
}

// shopOption changes the shop's coordinator, its cancellation saga's
// subscription or the event service's configuration before it starts.
type shopOption func(*coordinator, *pb.Subscription, *eventsvc.Config)

func startCancellationShop(ctx context.Context, t *testing.T, b backend, opts ...shopOption) *cancellationShop {
	t.Helper()
	var es atomic.Pointer[pb.EventStoreClient]
	coord := newCoordinator(func() pb.EventStoreClient { return *es.Load() })
	coordAddr := serve(t, func(g *grpc.Server) { pb.RegisterBusinessCoordinatorServer(g, coord) })
	cfg := &pb.FanoutConfig{
		Version: "cancellation",
		Subscriptions: []*pb.Subscription{{
			Name: sagas.CancellationName, Kind: pb.SubscriberKind_SUBSCRIBER_KIND_SAGA, StartPosition: pb.StartPosition_START_POSITION_EARLIEST,
			Address: serve(t, func(g *grpc.Server) {
				if _, err := sdk.Register(g, sagas.Cancellation()); err != nil {
					t.Fatal(err)
				}
			}),
			SourceDomains: []string{order.Domain}, TargetDomains: []string{inventory.Domain, customer.Domain},
		}},
	}
	for _, d := range []string{customer.Domain, order.Domain, inventory.Domain} {
		cfg.Domains = append(cfg.Domains, &pb.DomainEndpoint{Domain: d, Address: coordAddr})
	}
	escfg := eventsvc.Config{
		Store: b.url(t), FanoutSource: fanout.StaticSource{Config: cfg},
		FanoutMaxAttempts: 3, FanoutBackoff: time.Millisecond, FanoutBackoffMax: 5 * time.Millisecond,
	}
	for _, o := range opts {
		o(coord, cfg.Subscriptions[0], &escfg)
	}
	addr := eventsvctest.StartConfig(t, escfg)
	conn := eventsvctest.Dial(t, addr)
	client := pb.NewEventStoreClient(conn)
	es.Store(&client)
	return &cancellationShop{
		coord: coord, es: client, admin: pb.NewFanoutAdminClient(conn), addr: addr,
		bc: pb.NewBusinessCoordinatorClient(eventsvctest.Dial(t, coordAddr)),
	}
}

// cancelDiscountedOrder creates a customer with 500 points, an order of
// one product by them with a 300-point loyalty discount whose points are
// taken under the order's id (as the shop's loyalty saga does; this shop
// runs the cancellation saga alone), and cancels it: the cancellation saga
// answers with ReleaseReservation (index 0) and RefundLoyaltyPoints of the
// order (index 1). reserve runs before the cancellation.
func (s *cancellationShop) cancelDiscountedOrder(ctx context.Context, t *testing.T, product string, reserve func(orderID uuid.UUID)) (cust, orderID uuid.UUID) {
	t.Helper()
	cust, orderID = uuid.New(), uuid.New()
	cid := "corr-" + orderID.String()
	command(ctx, t, s.bc, customer.Domain, cust, cid, &examples.CreateCustomer{Name: "Ada", Email: "ada@example.com"})
	command(ctx, t, s.bc, customer.Domain, cust, cid, &examples.AddLoyaltyPoints{Points: 500, Reason: "welcome"})
	command(ctx, t, s.bc, order.Domain, orderID, cid, &examples.CreateOrder{CustomerId: cust.String(), Items: []*examples.LineItem{{ProductId: product, Name: "thing", Quantity: 1, UnitPriceCents: 5000}}})
	command(ctx, t, s.bc, order.Domain, orderID, cid, &examples.ApplyLoyaltyDiscount{Points: 300, DiscountCents: 300})
	command(ctx, t, s.bc, customer.Domain, cust, cid, &examples.RedeemLoyaltyPoints{Points: 300, RedemptionType: "discount", Reference: orderID.String()})
	if reserve != nil {
		reserve(orderID)
	}
	command(ctx, t, s.bc, order.Domain, orderID, cid, &examples.CancelOrder{Reason: "changed my mind"})
	return cust, orderID
}

// refundedCustomer is the customer's state and how many of its refunds
// gave points back.
func refundedCustomer(ctx context.Context, t *testing.T, es pb.EventStoreClient, cust uuid.UUID) (*examples.CustomerState, int) {
	t.Helper()
	st, _ := customerState(ctx, t, es, cust)
	n := 0
	for _, p := range events(ctx, t, es, customer.Domain, cust) {
		var r examples.LoyaltyPointsRefunded
		if p.GetEvent().MessageIs(&r) && p.GetEvent().UnmarshalTo(&r) == nil && r.GetPoints() > 0 {
			n++
		}
	}
	return st, n
}

// caughtUp waits until the cancellation saga committed every partition of
// the order log to its end: every event handled, parked or not.
func (s *cancellationShop) caughtUp(ctx context.Context, t *testing.T) {
	t.Helper()
	testutil.Eventually(t, "the cancellation saga to catch up", func() bool {
		p, err := s.admin.GetSubscriberProgress(ctx, &pb.GetSubscriberProgressRequest{Name: sagas.CancellationName})
		if status.Code(err) == codes.NotFound {
			return false // the configuration is not applied yet
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, pp := range p.GetPartitions() {
			if !pp.GetStarted() || pp.GetCommitted() < pp.GetEnd() {
				return false
			}
		}
		return true
	})
}

func (s *cancellationShop) deadLetters(ctx context.Context, t *testing.T) []*pb.DeadLetter {
	t.Helper()
	resp, err := s.admin.ListDeadLetters(ctx, &pb.ListDeadLettersRequest{Subscriber: sagas.CancellationName})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetDeadLetters()
}

// failures returns the SagaFailed events recorded for the order in the
// failure domain.
func (s *cancellationShop) failures(ctx context.Context, t *testing.T, orderID uuid.UUID) []*pb.SagaFailed {
	t.Helper()
	var out []*pb.SagaFailed
	for _, p := range events(ctx, t, s.es, fanout.DefaultFailureDomain, orderID) {
		f := &pb.SagaFailed{}
		if err := p.GetEvent().UnmarshalTo(f); err != nil {
			t.Fatalf("failure domain event %s: %v", p.GetEvent().GetTypeUrl(), err)
		}
		out = append(out, f)
	}
	return out
}

// compensatingOrders gives the shop's order logic a compensation handler
// (and an applier for the wrapperspb.StringValue notes it may store).
func compensatingOrders(handle func(s *examples.OrderState, c *pb.SagaCompensation) ([]proto.Message, error)) shopOption {
	return func(c *coordinator, _ *pb.Subscription, _ *eventsvc.Config) {
		a := order.Logic()
		sdk.Apply(a, func(*examples.OrderState, *wrapperspb.StringValue) {})
		sdk.OnCompensation(a, handle)
		c.logic[order.Domain] = a
	}
}

// sent counts the saga commands the coordinator received, by command type
// ("ReleaseReservation", ...).
func (s *cancellationShop) sent() map[string]int {
	n := map[string]int{}
	for _, c := range s.coord.received() {
		u := c.GetPages()[0].GetCommand().GetTypeUrl()
		n[u[strings.LastIndex(u, ".")+1:]]++
	}
	return n
}

// checkCommandLetter fails unless dl parks exactly the cancellation saga's
// ReleaseReservation for orderID: index 0, the order's OrderCancelled
// (sequence 2) as trigger, the origin and idempotency key it was sent with.
func checkCommandLetter(t *testing.T, dl *pb.DeadLetter, orderID uuid.UUID, cause pb.DeadLetterCause, attempts uint32, errText string) {
	t.Helper()
	cmd := dl.GetCommand()
	origin := &pb.SagaCommandOrigin{SagaName: sagas.CancellationName, TriggeringAggregate: dl.GetBook().GetCover(), TriggeringEventSequence: 2}
	var rr examples.ReleaseReservation
	switch {
	case dl.GetCause() != cause || dl.GetAttempts() != attempts || !strings.Contains(dl.GetError(), errText):
		t.Fatalf("dead letter: cause %v after %d attempts (%s); want %v after %d (%s)", dl.GetCause(), dl.GetAttempts(), dl.GetError(), cause, attempts, errText)
	case len(dl.GetBook().GetPages()) != 1 || dl.GetBook().GetPages()[0].GetNum() != 2 || dl.GetBook().GetCover().GetDomain() != order.Domain ||
		uuid.UUID(dl.GetBook().GetCover().GetRoot().GetValue()) != orderID:
		t.Fatalf("dead letter's trigger: %v, want the order's event 2", dl.GetBook())
	case cmd == nil || dl.GetCommandIndex() != 0 || cmd.GetCover().GetDomain() != inventory.Domain:
		t.Fatalf("dead letter's command #%d: %v, want #0 for inventory", dl.GetCommandIndex(), cmd)
	case cmd.GetPages()[0].GetCommand().UnmarshalTo(&rr) != nil || rr.GetOrderId() != orderID.String():
		t.Fatalf("dead letter's command is %v, want ReleaseReservation of order %s", cmd.GetPages()[0].GetCommand().GetTypeUrl(), orderID)
	case !proto.Equal(cmd.GetSagaOrigin(), origin) || cmd.GetIdempotencyKey() != fanout.IdempotencyKey(origin, 0) || !cmd.GetAutoResequence():
		t.Fatalf("dead letter's command origin %v, key %q: not as sent", cmd.GetSagaOrigin(), cmd.GetIdempotencyKey())
	}
}

// TestRefusedSagaCommandDoesNotHoldBackTheOthers is issue 19's case: an
// order with a 300-point loyalty discount, for a product whose stock was
// never initialized, is cancelled. The cancellation saga returns two
// commands; the first (ReleaseReservation) is refused with
// FAILED_PRECONDITION ("stock not initialized"). The refusal is not
// retried, it is parked on its own (cause REFUSED, the command and its
// index in the dead letter), the refund still runs, and the event is not
// parked whole. Replaying the dead letter sends that command again, and
// only it; refused again, it stays.
func TestRefusedSagaCommandDoesNotHoldBackTheOthers(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := testCtx(t, time.Minute)
		s := startCancellationShop(ctx, t, b)
		cust, orderID := s.cancelDiscountedOrder(ctx, t, "never-stocked-"+b.name, nil)
		s.caughtUp(ctx, t)

		if st, refunds := refundedCustomer(ctx, t, s.es, cust); st.GetLoyaltyPoints() != 500 || refunds != 1 {
			t.Fatalf("customer has %d points after %d refunds, want the 300 points taken given back once", st.GetLoyaltyPoints(), refunds)
		}
		if n := s.sent(); n["ReleaseReservation"] != 1 || n["RefundLoyaltyPoints"] != 1 || len(n) != 2 {
			t.Fatalf("the coordinator received %v, want each command once (a refusal is not retried)", n)
		}
		dls := s.deadLetters(ctx, t)
		if len(dls) != 1 {
			t.Fatalf("%d dead letters, want the refused command's alone: %v", len(dls), dls)
		}
		checkCommandLetter(t, dls[0], orderID, pb.DeadLetterCause_DEAD_LETTER_CAUSE_REFUSED, 1, "stock not initialized")
		if !strings.Contains(dls[0].GetError(), "FailedPrecondition") || !strings.Contains(dls[0].GetError(), "the origin asked for no action") {
			t.Fatalf("dead letter error %q does not name the refusal's code and the compensation's outcome", dls[0].GetError())
		}
		// The order logic has no compensation handler: the saga's
		// default fallback recorded the failure in the failure domain.
		failed := s.failures(ctx, t, orderID)
		if len(failed) != 1 || !failed[0].GetFallback() || failed[0].GetCompensation().GetReason() != "stock not initialized" ||
			failed[0].GetCompensation().GetCode() != int32(codes.FailedPrecondition) || failed[0].GetCompensation().GetCommandIndex() != 0 ||
			!proto.Equal(failed[0].GetCompensation().GetRefusedCommand(), dls[0].GetCommand()) ||
			!slices.Equal(failed[0].GetActions(), fanout.DefaultCompensationFallback) {
			t.Fatalf("failure events %v, want the fallback's one SagaFailed", failed)
		}
		if n := len(events(ctx, t, s.es, order.Domain, orderID)); n != 3 {
			t.Fatalf("order has %d events, want 3 (no compensation)", n)
		}

		out, err := exec.CommandContext(ctx, angzarrBin, "dlq", "list", "--addr", s.addr).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "refused") || !strings.Contains(string(out), "#0 ReleaseReservation -> inventory/") {
			t.Fatalf("angzarr dlq list does not show the refused command: %v\n%s", err, out)
		}

		resp, err := s.admin.ReplayDeadLetters(ctx, &pb.ReplayDeadLettersRequest{Subscriber: sagas.CancellationName})
		if err != nil || len(resp.GetResults()) != 1 || resp.GetResults()[0].GetDelivered() || !strings.Contains(resp.GetResults()[0].GetError(), "stock not initialized") {
			t.Fatalf("replay of a command still refused: %v, %v", resp, err)
		}
		if n := s.sent(); n["ReleaseReservation"] != 2 || n["RefundLoyaltyPoints"] != 1 {
			t.Fatalf("after the replay the coordinator received %v, want ReleaseReservation again and nothing else", n)
		}
		if st, _ := refundedCustomer(ctx, t, s.es, cust); st.GetLoyaltyPoints() != 500 {
			t.Fatalf("customer has %d points after the replay, want 500", st.GetLoyaltyPoints())
		}
		if dls := s.deadLetters(ctx, t); len(dls) != 1 || dls[0].GetId() != resp.GetResults()[0].GetId() {
			t.Fatalf("dead letters after a failed replay: %v", dls)
		}
	})
}

// TestTransientSagaCommandFailureIsRetriedAndParkedAlone: the
// cancellation saga's ReleaseReservation fails with UNAVAILABLE on every
// attempt (the link to inventory is down): it is tried MaxAttempts (3)
// times, then parked on its own (cause EXHAUSTED) while the refund runs at
// once. Once the link is back, replaying the dead letter releases the
// reservation exactly once, runs nothing else, and empties the log.
func TestTransientSagaCommandFailureIsRetriedAndParkedAlone(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := testCtx(t, time.Minute)
		s := startCancellationShop(ctx, t, b)
		product := "stocked-" + b.name
		command(ctx, t, s.bc, inventory.Domain, roots.Of(product), "", &examples.InitializeStock{ProductId: product, Quantity: 10})
		s.coord.setFail(func(cmd *pb.CommandBook) error {
			if cmd.GetCover().GetDomain() == inventory.Domain && cmd.GetSagaOrigin() != nil {
				return status.Error(codes.Unavailable, "inventory unreachable")
			}
			return nil
		})
		cust, orderID := s.cancelDiscountedOrder(ctx, t, product, func(orderID uuid.UUID) {
			command(ctx, t, s.bc, inventory.Domain, roots.Of(product), "", &examples.ReserveStock{Quantity: 1, OrderId: orderID.String()})
		})
		s.caughtUp(ctx, t)

		if st, refunds := refundedCustomer(ctx, t, s.es, cust); st.GetLoyaltyPoints() != 500 || refunds != 1 {
			t.Fatalf("customer has %d points after %d refunds, want the 300 points taken given back once", st.GetLoyaltyPoints(), refunds)
		}
		if n := s.sent(); n["ReleaseReservation"] != 3 || n["RefundLoyaltyPoints"] != 1 {
			t.Fatalf("the coordinator received %v, want ReleaseReservation 3 times (MaxAttempts) and the refund once", n)
		}
		dls := s.deadLetters(ctx, t)
		if len(dls) != 1 {
			t.Fatalf("%d dead letters, want the failing command's alone: %v", len(dls), dls)
		}
		checkCommandLetter(t, dls[0], orderID, pb.DeadLetterCause_DEAD_LETTER_CAUSE_EXHAUSTED, 3, "inventory unreachable")
		if n := len(events(ctx, t, s.es, inventory.Domain, roots.Of(product))); n != 2 {
			t.Fatalf("inventory has %d events, want 2 (initialized, reserved)", n)
		}

		s.coord.setFail(nil)
		resp, err := s.admin.ReplayDeadLetters(ctx, &pb.ReplayDeadLettersRequest{Subscriber: sagas.CancellationName, Ids: []string{dls[0].GetId()}})
		if err != nil || len(resp.GetResults()) != 1 || !resp.GetResults()[0].GetDelivered() {
			t.Fatalf("replay after the fix: %v, %v", resp, err)
		}
		if n := s.sent(); n["ReleaseReservation"] != 4 || n["RefundLoyaltyPoints"] != 1 {
			t.Fatalf("after the replay the coordinator received %v, want one more ReleaseReservation and nothing else", n)
		}
		pages := events(ctx, t, s.es, inventory.Domain, roots.Of(product))
		if len(pages) != 3 || !strings.HasSuffix(pages[2].GetEvent().GetTypeUrl(), "ReservationReleased") {
			t.Fatalf("inventory events after the replay: %v, want the reservation released once", typeNames(pages))
		}
		if dls := s.deadLetters(ctx, t); len(dls) != 0 {
			t.Fatalf("dead letters after a successful replay: %v", dls)
		}
	})
}

func typeNames(pages []*pb.EventPage) []string {
	out := make([]string, len(pages))
	for i, p := range pages {
		out[i] = fmt.Sprint(p.GetNum(), ":", p.GetEvent().GetTypeUrl())
	}
	return out
}

// TestBusinessRefusal: the six business refusal codes, however wrapped,
// are refusals; every other failure is transient.
func TestBusinessRefusal(t *testing.T) {
	refusals := map[codes.Code]bool{codes.FailedPrecondition: true, codes.InvalidArgument: true, codes.NotFound: true,
		codes.AlreadyExists: true, codes.OutOfRange: true, codes.PermissionDenied: true}
	for c := codes.Canceled; c <= codes.Unauthenticated; c++ {
		err := fmt.Errorf("saga s: command for d at a: %w", status.Error(c, "no"))
		if got := fanout.BusinessRefusal(err); got != refusals[c] {
			t.Errorf("%v: refusal %v, want %v", c, got, refusals[c])
		}
	}
	for _, err := range []error{fanout.ErrNoEndpoint, context.DeadlineExceeded, nil} {
		if fanout.BusinessRefusal(err) {
			t.Errorf("%v is a refusal", err)
		}
	}
}

// TestRefusedSagaCommandIsCompensatedByItsOrigin: the order logic handles
// the framework's SagaCompensation: the refused ReleaseReservation is
// described to the order (saga, triggering event, command, reason) through
// its coordinator, the order stores its compensating event once, and
// nothing is dead-lettered or recorded as a failure; the refund runs.
func TestRefusedSagaCommandIsCompensatedByItsOrigin(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := testCtx(t, time.Minute)
		var got atomic.Pointer[pb.SagaCompensation]
		s := startCancellationShop(ctx, t, b, compensatingOrders(func(_ *examples.OrderState, c *pb.SagaCompensation) ([]proto.Message, error) {
			got.Store(c)
			rr, ok := sdk.RefusedCommand[*examples.ReleaseReservation](c)
			if !ok {
				return nil, sdk.Invalid("unexpected refused command %s", c.GetRefusedCommand().GetPages()[0].GetCommand().GetTypeUrl())
			}
			return []proto.Message{wrapperspb.String("release for order " + rr.GetOrderId() + " refused: " + c.GetReason())}, nil
		}))
		cust, orderID := s.cancelDiscountedOrder(ctx, t, "never-stocked-"+b.name, nil)
		testutil.Eventually(t, "the order's compensation", func() bool { return len(events(ctx, t, s.es, order.Domain, orderID)) == 4 })
		s.caughtUp(ctx, t)

		pages := events(ctx, t, s.es, order.Domain, orderID)
		var note wrapperspb.StringValue
		if len(pages) != 4 || pages[3].GetEvent().UnmarshalTo(&note) != nil || note.GetValue() != "release for order "+orderID.String()+" refused: stock not initialized" {
			t.Fatalf("order events %v, want its compensation note last, once", typeNames(pages))
		}
		c := got.Load()
		if c.GetOrigin().GetSagaName() != sagas.CancellationName || c.GetOrigin().GetTriggeringEventSequence() != 2 ||
			uuid.UUID(c.GetOrigin().GetTriggeringAggregate().GetRoot().GetValue()) != orderID || c.GetCode() != int32(codes.FailedPrecondition) ||
			c.GetCommandIndex() != 0 || c.GetRefusedCommand().GetIdempotencyKey() != fanout.IdempotencyKey(c.GetOrigin(), 0) {
			t.Fatalf("the order was told %v", c)
		}
		if dls := s.deadLetters(ctx, t); len(dls) != 0 {
			t.Fatalf("dead letters of a compensated refusal: %v", dls)
		}
		if f := s.failures(ctx, t, orderID); len(f) != 0 {
			t.Fatalf("failure events of a compensated refusal: %v", f)
		}
		if st, refunds := refundedCustomer(ctx, t, s.es, cust); st.GetLoyaltyPoints() != 500 || refunds != 1 {
			t.Fatalf("customer has %d points after %d refunds, want the 300 points taken given back once", st.GetLoyaltyPoints(), refunds)
		}
	})
}

// TestCompensationRequest: the order logic answers the SagaCompensation
// with a request (record the failure, escalate) instead of events: the
// failure is recorded with the order's reason (not as a fallback), the
// escalation webhook (a real HTTP server) receives it as JSON, nothing is
// stored on the order, and, not asked for, no dead letter is parked.
func TestCompensationRequest(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := testCtx(t, time.Minute)
		escalated := make(chan *pb.SagaFailed, 4)
		hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			f := &pb.SagaFailed{}
			if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || protojson.Unmarshal(body, f) != nil {
				http.Error(w, "want a POST of angzarr.SagaFailed as JSON", http.StatusBadRequest)
				return
			}
			escalated <- f
		}))
		t.Cleanup(hook.Close)
		s := startCancellationShop(ctx, t, b, compensatingOrders(func(*examples.OrderState, *pb.SagaCompensation) ([]proto.Message, error) {
			return nil, sdk.RequestCompensation("no stock was ever held for it",
				pb.CompensationAction_COMPENSATION_ACTION_RECORD_FAILURE, pb.CompensationAction_COMPENSATION_ACTION_ESCALATE)
		}), func(_ *coordinator, _ *pb.Subscription, cfg *eventsvc.Config) { cfg.FanoutEscalationWebhook = hook.URL })
		_, orderID := s.cancelDiscountedOrder(ctx, t, "never-stocked-"+b.name, nil)
		testutil.Eventually(t, "the recorded failure", func() bool { return len(s.failures(ctx, t, orderID)) > 0 })
		s.caughtUp(ctx, t)

		f := s.failures(ctx, t, orderID)
		if len(f) != 1 || f[0].GetFallback() || f[0].GetReason() != "no stock was ever held for it" ||
			!slices.Equal(f[0].GetActions(), []pb.CompensationAction{pb.CompensationAction_COMPENSATION_ACTION_RECORD_FAILURE, pb.CompensationAction_COMPENSATION_ACTION_ESCALATE}) ||
			f[0].GetCompensation().GetReason() != "stock not initialized" {
			t.Fatalf("failure events %v, want the order's request recorded once", f)
		}
		if n := len(events(ctx, t, s.es, order.Domain, orderID)); n != 3 {
			t.Fatalf("order has %d events, want 3: a request stores nothing", n)
		}
		if dls := s.deadLetters(ctx, t); len(dls) != 0 {
			t.Fatalf("dead letters the order did not ask for: %v", dls)
		}
		select {
		case e := <-escalated:
			if e.GetReason() != "no stock was ever held for it" || e.GetCompensation().GetReason() != "stock not initialized" || e.GetFallback() {
				t.Fatalf("escalated %v", e)
			}
		case <-ctx.Done():
			t.Fatal("the escalation webhook received nothing")
		}
		if len(escalated) != 0 {
			t.Fatalf("%d more escalations", len(escalated))
		}
	})
}

// TestCompensationFallbackFromTheTopology: a saga whose
// compensation_fallback is ESCALATE alone: the order logic does not know
// SagaCompensation, so the refused command is escalated, neither recorded
// nor dead-lettered, and the refund still runs.
func TestCompensationFallbackFromTheTopology(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := testCtx(t, time.Minute)
		s := startCancellationShop(ctx, t, b, func(_ *coordinator, sub *pb.Subscription, _ *eventsvc.Config) {
			sub.CompensationFallback = []pb.CompensationAction{pb.CompensationAction_COMPENSATION_ACTION_ESCALATE}
		})
		cust, orderID := s.cancelDiscountedOrder(ctx, t, "never-stocked-"+b.name, nil)
		s.caughtUp(ctx, t)
		if st, refunds := refundedCustomer(ctx, t, s.es, cust); st.GetLoyaltyPoints() != 500 || refunds != 1 {
			t.Fatalf("customer has %d points after %d refunds, want the 300 points taken given back once", st.GetLoyaltyPoints(), refunds)
		}
		if n := s.sent(); n["ReleaseReservation"] != 1 {
			t.Fatalf("the coordinator received %v, want ReleaseReservation once", n)
		}
		if dls := s.deadLetters(ctx, t); len(dls) != 0 {
			t.Fatalf("dead letters with an ESCALATE fallback: %v", dls)
		}
		if f := s.failures(ctx, t, orderID); len(f) != 0 {
			t.Fatalf("failure events with an ESCALATE fallback: %v", f)
		}
	})
}

// TestCompensationTakesEffectOnce: the order's compensating event is
// stored, but the answer is lost (UNAVAILABLE, an ambiguous failure) the
// first time: the dispatcher sends the SagaCompensation again under the
// same idempotency key, the order's coordinator answers with the first
// result, and the order holds its compensation once.
func TestCompensationTakesEffectOnce(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := testCtx(t, time.Minute)
		var compensations, sent atomic.Int32
		var keys sync.Map
		s := startCancellationShop(ctx, t, b, compensatingOrders(func(_ *examples.OrderState, c *pb.SagaCompensation) ([]proto.Message, error) {
			compensations.Add(1)
			return []proto.Message{wrapperspb.String("compensated: " + c.GetReason())}, nil
		}), func(c *coordinator, _ *pb.Subscription, _ *eventsvc.Config) {
			isCompensation := func(cmd *pb.CommandBook) bool {
				return strings.HasSuffix(cmd.GetPages()[0].GetCommand().GetTypeUrl(), "/angzarr.SagaCompensation")
			}
			c.fail = func(cmd *pb.CommandBook) error {
				if isCompensation(cmd) {
					sent.Add(1)
					keys.Store(cmd.GetIdempotencyKey(), true)
				}
				return nil
			}
			var lost atomic.Bool
			c.loseAnswer = func(cmd *pb.CommandBook) bool {
				return isCompensation(cmd) && lost.CompareAndSwap(false, true) // the first answer only
			}
		})
		_, orderID := s.cancelDiscountedOrder(ctx, t, "never-stocked-"+b.name, nil)
		s.caughtUp(ctx, t)

		pages := events(ctx, t, s.es, order.Domain, orderID)
		if len(pages) != 4 || compensations.Load() != 1 || sent.Load() != 2 {
			t.Fatalf("order events %v after %d compensation decisions of %d sent, want it sent twice and stored once",
				typeNames(pages), compensations.Load(), sent.Load())
		}
		n := 0
		keys.Range(func(any, any) bool { n++; return true })
		if _, ok := keys.Load(""); n != 1 || ok {
			t.Fatalf("%d compensation keys (an empty one: %v), want one", n, ok)
		}
		if dls := s.deadLetters(ctx, t); len(dls) != 0 {
			t.Fatalf("dead letters: %v", dls)
		}
		if f := s.failures(ctx, t, orderID); len(f) != 0 {
			t.Fatalf("failure events: %v", f)
		}
	})
}
