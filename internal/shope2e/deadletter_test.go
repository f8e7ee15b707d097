package shope2e_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"sigs.k8s.io/yaml"

	"github.com/angzarr-mesh/angzarr/controlplane"
	"github.com/angzarr-mesh/angzarr/examples/go/roots"
	"github.com/angzarr-mesh/angzarr/internal/devmesh"
	"github.com/angzarr-mesh/angzarr/internal/devmesh/endpoints"
	"github.com/angzarr-mesh/angzarr/internal/identity"
	"github.com/angzarr-mesh/angzarr/internal/testutil"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	ex "github.com/angzarr-mesh/angzarr/proto/examples"
)

// maxAttempts is how many times the dispatcher delivers an event before
// parking it: the event service's default (eventsvc.Config
// FanoutMaxAttempts), which angzarr dev keeps.
const maxAttempts = 5

// auditProjector is a real angzarr.Projector that refuses the events of
// one order until it is fixed, and counts what it was offered and what it
// accepted, per event.
type auditProjector struct {
	pb.UnimplementedProjectorServer
	poison uuid.UUID

	mu       sync.Mutex
	fixed    bool
	offered  map[string]int // "root#sequence" → deliveries attempted
	accepted map[string]int // "root#sequence" → deliveries accepted
}

func pageKey(root uuid.UUID, seq uint32) string { return fmt.Sprintf("%s#%d", root, seq) }

// Handle implements angzarr.Projector.
func (p *auditProjector) Handle(_ context.Context, b *pb.EventBook) (*emptypb.Empty, error) {
	root, err := uuid.FromBytes(b.GetCover().GetRoot().GetValue())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pg := range b.GetPages() {
		p.offered[pageKey(root, pg.GetNum())]++
	}
	if root == p.poison && !p.fixed {
		return nil, status.Errorf(codes.Internal, "audit store rejects order %s", root)
	}
	for _, pg := range b.GetPages() {
		p.accepted[pageKey(root, pg.GetNum())]++
	}
	return &emptypb.Empty{}, nil
}

func (p *auditProjector) fix() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fixed = true
}

func (p *auditProjector) counts(key string) (offered, accepted int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.offered[key], p.accepted[key]
}

// serveProjector serves p on a free port until the test ends.
func serveProjector(t *testing.T, m *mesh, p pb.ProjectorServer) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The mesh runs mTLS: the projector gets a certificate of its CA.
	dir := filepath.Join(m.dataDir, endpoints.IdentityDir)
	ca, err := identity.LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	is, err := ca.Issue("angzarr-dev", "subscriber-audit", time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.WriteFiles(t.TempDir(), "audit", is)
	if err != nil {
		t.Fatal(err)
	}
	files, err := identity.LoadFiles(c.CertFile, c.KeyFile, c.CAFile, "")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(identity.ServerOption(files))
	pb.RegisterProjectorServer(s, p)
	done := make(chan error, 1)
	go func() { done <- s.Serve(lis) }()
	t.Cleanup(func() {
		s.Stop()
		if err := <-done; err != nil {
			t.Errorf("audit projector: %v", err)
		}
	})
	return lis.Addr().String()
}

// addProjector adds a projector to the running mesh's topology file; the
// control plane watches it and pushes the new fan-out configuration to the
// event service.
func (m *mesh) addProjector(p controlplane.Projector) {
	m.t.Helper()
	path := filepath.Join(m.dataDir, devmesh.TopologyFile)
	b, err := os.ReadFile(path)
	if err != nil {
		m.t.Fatal(err)
	}
	topo, err := controlplane.DecodeTopology(b)
	if err != nil {
		m.t.Fatalf("the mesh's topology: %v", err)
	}
	topo.Projectors = append(topo.Projectors, p)
	if b, err = yaml.Marshal(topo); err != nil {
		m.t.Fatal(err)
	}
	// Atomically: the control plane reads the file every 200ms.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		m.t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		m.t.Fatal(err)
	}
}

func TestPoisonEventIsDeadLetteredWhileTheRestFlowAndReplayedOnceFixed(t *testing.T) {
	m := startMesh(t)
	ctx := ctxT(t, 2*time.Minute)
	poison, good, late := uuid.New(), uuid.New(), uuid.New()
	audit := &auditProjector{poison: poison, offered: map[string]int{}, accepted: map[string]int{}}
	m.addProjector(controlplane.Projector{Name: "audit", Address: serveProjector(t, m, audit), Domains: []string{"order"},
		StartPosition: controlplane.StartEarliest})
	testutil.EventuallyWhy(t, func() (bool, string) {
		p, err := m.admin().GetSubscriberProgress(ctx, &pb.GetSubscriberProgressRequest{Name: "audit"})
		if err != nil {
			return false, fmt.Sprintf("the event service does not know the audit projector yet: %v", err)
		}
		for _, part := range p.GetPartitions() {
			if !part.GetStarted() {
				return false, fmt.Sprintf("the audit projector has not started: %v", p)
			}
		}
		return true, ""
	})

	customer := uuid.New()
	m.send(ctx, "customer", customer, "", 0, &ex.CreateCustomer{Name: "Di", Email: "di@example.com"})
	items := []*ex.LineItem{{ProductId: "rug", Name: "Rug", Quantity: 1, UnitPriceCents: 9900}}
	m.send(ctx, "order", good, "", 0, &ex.CreateOrder{CustomerId: customer.String(), Items: items})
	m.send(ctx, "order", poison, "", 0, &ex.CreateOrder{CustomerId: customer.String(), Items: items})
	// An order after the poison one goes all the way to its shipment.
	m.send(ctx, "order", late, "", 0, &ex.CreateOrder{CustomerId: customer.String(), Items: items})
	m.send(ctx, "order", late, "", 1, &ex.SubmitPayment{PaymentMethod: "card", AmountCents: 9900})
	m.send(ctx, "order", late, "", 2, &ex.ConfirmPayment{PaymentReference: "pay-late"})

	// The poison event is parked after maxAttempts deliveries, with the
	// subscriber's error.
	var dead *pb.DeadLetter
	testutil.EventuallyWhy(t, func() (bool, string) {
		dl, err := m.admin().ListDeadLetters(ctx, &pb.ListDeadLettersRequest{Subscriber: "audit"})
		if err != nil {
			return false, err.Error()
		}
		if len(dl.GetDeadLetters()) == 0 {
			offered, _ := audit.counts(pageKey(poison, 0))
			return false, fmt.Sprintf("no dead letter yet; the poison event was offered %d times", offered)
		}
		if len(dl.GetDeadLetters()) > 1 {
			t.Fatalf("dead letters %v, want only the poison event", dl.GetDeadLetters())
		}
		dead = dl.GetDeadLetters()[0]
		return true, ""
	})
	if dead.GetAttempts() != maxAttempts || dead.GetKind() != pb.SubscriberKind_SUBSCRIBER_KIND_PROJECTOR ||
		!strings.Contains(dead.GetError(), "audit store rejects order "+poison.String()) {
		t.Errorf("dead letter after %d attempts, kind %v, error %q: want %d attempts of the projector failing with its message",
			dead.GetAttempts(), dead.GetKind(), dead.GetError(), maxAttempts)
	}
	if got := flatten(t, []*pb.EventBook{dead.GetBook()}); len(got) != 1 || got[0].root != poison || got[0].typeName() != "OrderCreated" {
		t.Errorf("dead letter holds %v, want the poison order's OrderCreated", got)
	}
	if offered, accepted := audit.counts(pageKey(poison, 0)); offered != maxAttempts || accepted != 0 {
		t.Errorf("the poison event was offered %d times and accepted %d, want %d and 0", offered, accepted, maxAttempts)
	}

	// The rest flowed: the projector has every other order event, once,
	// and the sagas shipped the later order.
	m.caughtUp(ctx, append([]string{"audit"}, shopSubscribers...)...)
	for _, key := range []string{pageKey(good, 0), pageKey(late, 0), pageKey(late, 1), pageKey(late, 2)} {
		if _, accepted := audit.counts(key); accepted != 1 {
			t.Errorf("the audit projector accepted %s %d times, want once", key, accepted)
		}
	}
	if s := m.history(ctx, "fulfillment", roots.Of(late.String())); len(ofType(s, "ShipmentCreated")) != 1 {
		t.Errorf("the order after the poison one has shipment %v, want one ShipmentCreated", s)
	}

	// Fixed, a replay delivers the parked event once and empties the log.
	audit.fix()
	res, err := m.admin().ReplayDeadLetters(ctx, &pb.ReplayDeadLettersRequest{Subscriber: "audit"})
	if err != nil {
		t.Fatal(err)
	}
	if r := res.GetResults(); len(r) != 1 || r[0].GetId() != dead.GetId() || !r[0].GetDelivered() || r[0].GetError() != "" {
		t.Fatalf("replay results %v, want dead letter %s delivered", r, dead.GetId())
	}
	if _, accepted := audit.counts(pageKey(poison, 0)); accepted != 1 {
		t.Errorf("after the replay the poison event was accepted %d times, want once", accepted)
	}
	dl, err := m.admin().ListDeadLetters(ctx, &pb.ListDeadLettersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(dl.GetDeadLetters()) != 0 {
		t.Errorf("dead letters after the replay: %v", dl.GetDeadLetters())
	}
	// A second replay finds nothing, and nothing was delivered twice.
	if res, err := m.admin().ReplayDeadLetters(ctx, &pb.ReplayDeadLettersRequest{Subscriber: "audit"}); err != nil || len(res.GetResults()) != 0 {
		t.Errorf("second replay: %v, %v; want nothing to replay", res, err)
	}
	m.caughtUp(ctx, "audit")
	for _, key := range []string{pageKey(poison, 0), pageKey(good, 0), pageKey(late, 0), pageKey(late, 1), pageKey(late, 2)} {
		if _, accepted := audit.counts(key); accepted != 1 {
			t.Errorf("the audit projector accepted %s %d times, want once", key, accepted)
		}
	}
}
