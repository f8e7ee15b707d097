package fanout_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/angzarr-mesh/angzarr/eventsvc"
	"github.com/angzarr-mesh/angzarr/eventsvc/eventsvctest"
	"github.com/angzarr-mesh/angzarr/eventsvc/fanout"
	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	"github.com/angzarr-mesh/angzarr/examples/go/customer"
	"github.com/angzarr-mesh/angzarr/internal/testredis"
	"github.com/angzarr-mesh/angzarr/internal/testutil"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/proto/examples"
	"github.com/angzarr-mesh/angzarr/sdk"
)

const welcomeName = "welcome"

// welcomePM is the test's process manager, built with the SDK: a
// CustomerCreated starts a workflow that remembers "welcoming" and
// credits the customer 100 points; with bad set it also issues a refused
// command (-1 points: INVALID_ARGUMENT), which comes back to it as a
// refusal it remembers. The customer's LoyaltyPointsAdded ends the
// workflow ("welcomed"). Its state is the workflow's remembered lines.
func welcomePM(bad bool) *sdk.ProcessManager[*wrapperspb.StringValue] {
	pm := sdk.NewProcessManager(welcomeName, func() *wrapperspb.StringValue { return &wrapperspb.StringValue{} })
	note := func(s string) []proto.Message { return []proto.Message{wrapperspb.String(s)} }
	sdk.Remember(pm, func(s *wrapperspb.StringValue, e *wrapperspb.StringValue) { s.Value += e.GetValue() + ";" })
	sdk.Orchestrate(pm, func(s *wrapperspb.StringValue, src *pb.Cover, e *examples.CustomerCreated) (sdk.Step, error) {
		root, _ := sdk.RootID(src.GetRoot())
		credit, err := sdk.Command(customer.Domain, root, "", &examples.AddLoyaltyPoints{Points: 100, Reason: "welcome"})
		step := sdk.Step{Events: note("welcoming " + e.GetName()), Commands: []*pb.CommandBook{credit}}
		if bad {
			wrong, _ := sdk.Command(customer.Domain, root, "", &examples.AddLoyaltyPoints{Points: -1, Reason: "wrong"})
			step.Commands = append(step.Commands, wrong)
		}
		return step, err
	})
	sdk.Orchestrate(pm, func(s *wrapperspb.StringValue, _ *pb.Cover, e *examples.LoyaltyPointsAdded) (sdk.Step, error) {
		if strings.Contains(s.GetValue(), "welcomed") {
			return sdk.Step{}, nil
		}
		return sdk.Step{Events: note("welcomed")}, nil
	})
	sdk.OnRefused(pm, func(s *wrapperspb.StringValue, c *pb.SagaCompensation) (sdk.Step, error) {
		cmd, _ := sdk.RefusedCommand[*examples.AddLoyaltyPoints](c)
		return sdk.Step{Events: note(fmt.Sprintf("refused %d: %s", cmd.GetPoints(), c.GetReason()))}, nil
	})
	return pm
}

// welcomeFanout is the fan-out configuration of the welcome process
// manager at pmAddr over the customer domain served by coordAddr.
func welcomeFanout(pmAddr, coordAddr string) *pb.FanoutConfig {
	return &pb.FanoutConfig{
		Version: "welcome",
		Subscriptions: []*pb.Subscription{{
			Name: welcomeName, Kind: pb.SubscriberKind_SUBSCRIBER_KIND_PROCESS_MANAGER, Address: pmAddr,
			SourceDomains: []string{customer.Domain}, TargetDomains: []string{customer.Domain},
			StartPosition: pb.StartPosition_START_POSITION_EARLIEST, Domain: "welcome-pm",
		}},
		Domains: []*pb.DomainEndpoint{{Domain: customer.Domain, Address: coordAddr}},
	}
}

// workflow loads the welcome workflow of correlation id cid: its
// remembered lines and its ProcessManagerStep events.
func workflow(ctx context.Context, t *testing.T, es pb.EventStoreClient, cid string) (lines []string, steps []*pb.ProcessManagerStep) {
	t.Helper()
	for _, p := range events(ctx, t, es, "welcome-pm", fanout.ProcessManagerRoot(cid)) {
		var s wrapperspb.StringValue
		var st pb.ProcessManagerStep
		switch {
		case p.GetEvent().UnmarshalTo(&s) == nil:
			lines = append(lines, s.GetValue())
		case p.GetEvent().UnmarshalTo(&st) == nil:
			steps = append(steps, &st)
		default:
			t.Fatalf("workflow %s: unexpected event %s", cid, p.GetEvent().GetTypeUrl())
		}
	}
	return lines, steps
}

// TestProcessManagerWorkflow runs the welcome process manager through an
// in-process event service: 12 customers created under one correlation
// id, so their steps race for one workflow stream across partitions
// (write conflicts, decided again). Every customer gets exactly one
// credit (the refused command does not hold it back), every refusal
// comes back to the PM and is remembered, every decision is one step, and
// the PM's commands carry the step's origin and a key derived from it.
func TestProcessManagerWorkflow(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		const n = 12
		ctx := testCtx(t, time.Minute)
		var es atomic.Pointer[pb.EventStoreClient]
		coord := newCoordinator(func() pb.EventStoreClient { return *es.Load() })
		coordAddr := serve(t, func(g *grpc.Server) { pb.RegisterBusinessCoordinatorServer(g, coord) })
		pmAddr := serve(t, func(g *grpc.Server) {
			if _, err := sdk.Register(g, welcomePM(true)); err != nil {
				t.Fatal(err)
			}
		})
		addr := eventsvctest.StartConfig(t, eventsvc.Config{
			Store: b.url(t), FanoutSource: fanout.StaticSource{Config: welcomeFanout(pmAddr, coordAddr)},
			FanoutMaxAttempts: 3, FanoutBackoff: time.Millisecond, FanoutBackoffMax: 5 * time.Millisecond, Logger: testLogger(t),
		})
		client := pb.NewEventStoreClient(eventsvctest.Dial(t, addr))
		es.Store(&client)
		bc := pb.NewBusinessCoordinatorClient(eventsvctest.Dial(t, coordAddr))

		const cid = "welcome-workflow"
		custs := make([]uuid.UUID, n)
		var wg sync.WaitGroup
		for i := range custs {
			custs[i] = uuid.New()
			wg.Add(1)
			go func() {
				defer wg.Done()
				command(ctx, t, bc, customer.Domain, custs[i], cid, &examples.CreateCustomer{Name: fmt.Sprint("c", i), Email: fmt.Sprintf("c%d@example.com", i)})
			}()
		}
		wg.Wait()

		testutil.Eventually(t, "every step of the workflow", func() bool {
			_, steps := workflow(ctx, t, client, cid)
			return len(steps) >= 2*n+1
		})
		lines, steps := workflow(ctx, t, client, cid)
		count := func(prefix string) (k int) {
			for _, l := range lines {
				if strings.HasPrefix(l, prefix) {
					k++
				}
			}
			return k
		}
		// n welcoming (2 commands each), n refusals, 1 welcomed (the first
		// credit; later ones decide nothing and store nothing), and a step
		// per decision.
		if count("welcoming ") != n || count("refused -1: ") != n || count("welcomed") != 1 || len(steps) != 2*n+1 {
			t.Fatalf("workflow: %d lines %q, %d steps; want %d welcoming, %d refused, 1 welcomed, %d steps", len(lines), lines, len(steps), n, n, 2*n+1)
		}
		for _, l := range lines {
			if strings.HasPrefix(l, "refused") && !strings.Contains(l, "positive") {
				t.Fatalf("refusal without the target's reason: %q", l)
			}
		}
		for _, c := range custs {
			s, added := customerState(ctx, t, client, c)
			if s.GetLoyaltyPoints() != 100 || added != 1 {
				t.Fatalf("customer %s: %d points in %d credits, want 100 in 1", c, s.GetLoyaltyPoints(), added)
			}
		}
		// The commands as stored in the steps are the commands as sent.
		sent := map[string]bool{}
		for _, cmd := range coord.received() {
			o := cmd.GetSagaOrigin()
			if o.GetSagaName() != welcomeName || o.GetTriggeringAggregate().GetDomain() != "welcome-pm" || !cmd.GetAutoResequence() ||
				cmd.GetCover().GetCorrelationId() != cid || cmd.GetIdempotencyKey() == "" {
				t.Fatalf("PM command without its origin: %v", cmd)
			}
			sent[cmd.GetIdempotencyKey()] = true
		}
		stored := 0
		for _, st := range steps {
			for i, cmd := range st.GetCommands() {
				stored++
				if want := fanout.IdempotencyKey(cmd.GetSagaOrigin(), i); cmd.GetIdempotencyKey() != want || !sent[want] {
					t.Fatalf("stored command %d: key %q, want %q, sent: %v", i, cmd.GetIdempotencyKey(), want, sent[want])
				}
			}
		}
		if stored != 2*n || len(sent) != 2*n {
			t.Fatalf("%d commands stored, %d distinct sent, want %d", stored, len(sent), 2*n)
		}
	})
}

// TestProcessManagerValidation: a process manager needs a domain of its
// own, neither a source nor a target.
func TestProcessManagerValidation(t *testing.T) {
	cfg := welcomeFanout("pm:1", "c:1")
	if err := fanout.Validate(cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Subscriptions[0].Domain = customer.Domain
	if err := fanout.Validate(cfg); err == nil || !strings.Contains(err.Error(), "own stream") {
		t.Fatalf("PM domain = its source: %v", err)
	}
	cfg.Subscriptions[0].Domain = "bad domain!"
	if err := fanout.Validate(cfg); err == nil {
		t.Fatal("a bad PM domain passed")
	}
	cfg = welcomeFanout("pm:1", "c:1")
	cfg.Subscriptions[0].Kind = pb.SubscriberKind_SUBSCRIBER_KIND_SAGA
	if err := fanout.Validate(cfg); err == nil || !strings.Contains(err.Error(), "only process managers") {
		t.Fatalf("a saga with a domain: %v", err)
	}
	if a, b := fanout.ProcessManagerRoot("x"), fanout.ProcessManagerRoot("x"); a != b || a == fanout.ProcessManagerRoot("y") {
		t.Fatal("ProcessManagerRoot is not a function of the correlation id")
	}
}

// TestKillDuringProcessManager runs `angzarr eventsvc --fanout` as a
// subprocess with the welcome process manager while 60 workflows start,
// kills it with SIGKILL once 20 PM commands were applied (steps stored,
// commands in flight), restarts it, and checks that every workflow
// credited its customer exactly once and stored each step once.
func TestKillDuringProcessManager(t *testing.T) {
	const workflows, killAt = 60, 20
	ctx := testCtx(t, 2*time.Minute)
	url := "redis://" + testredis.StartServer(t, testredis.Options{AppendOnly: true}).Addr() + "/0"
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
	coordAddr := serve(t, func(g *grpc.Server) { pb.RegisterBusinessCoordinatorServer(g, coord) })
	pmAddr := serve(t, func(g *grpc.Server) {
		if _, err := sdk.Register(g, welcomePM(false)); err != nil {
			t.Fatal(err)
		}
	})
	js, err := protojson.Marshal(welcomeFanout(pmAddr, coordAddr))
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

	// The customers, appended directly with an idempotency key so a retry
	// across the crash cannot store one twice.
	custs := make([]uuid.UUID, workflows)
	written := make(chan error, 1)
	go func() {
		for i := range custs {
			custs[i] = uuid.New()
		}
		for i, c := range custs {
			created := mustAny(t, &examples.CustomerCreated{Name: fmt.Sprint("c", i), Email: fmt.Sprintf("c%d@example.com", i)})
			req := &pb.AppendRequest{Cover: store.Aggregate{Domain: customer.Domain, Root: c}.Cover(fmt.Sprint("wf-", i)), Pages: []*pb.EventPage{{Event: created}}, IdempotencyKey: "create"}
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
		t.Fatal("PM commands never reached the kill point")
	}
	p.Kill()
	p.Restart()
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	for i, c := range custs {
		cid := fmt.Sprint("wf-", i)
		testutil.Eventually(t, "workflow "+cid+" to end", func() bool {
			lines, _ := workflow(ctx, t, es(), cid)
			return len(lines) == 2
		})
		lines, steps := workflow(ctx, t, es(), cid)
		if len(lines) != 2 || lines[0] != fmt.Sprint("welcoming c", i) || lines[1] != "welcomed" || len(steps) != 2 {
			t.Fatalf("workflow %s: %q and %d steps, want welcoming, welcomed and 2 steps", cid, lines, len(steps))
		}
		s, added := customerState(ctx, t, es(), c)
		if s.GetLoyaltyPoints() != 100 || added != 1 {
			t.Fatalf("customer %s: %d points in %d credits, want 100 in 1", c, s.GetLoyaltyPoints(), added)
		}
	}
	coord.mu.Lock()
	t.Logf("PM commands: %d applied, %d answered from an earlier result", coord.applied, coord.duplicates)
	coord.mu.Unlock()
}

// mustAny packs m.
func mustAny(t testing.TB, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Error(err)
	}
	return a
}
