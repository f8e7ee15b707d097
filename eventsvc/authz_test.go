package eventsvc_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/angzarr-mesh/angzarr/eventsvc"
	"github.com/angzarr-mesh/angzarr/eventsvc/eventsvctest"
	"github.com/angzarr-mesh/angzarr/internal/identity"
	"github.com/angzarr-mesh/angzarr/internal/testutil"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

const accessTD = "angzarr.test"

// accessPolicy is the fan-out file of the authorization tests: the
// customer and order filters write their own domains, the order-summary
// projector reads order, an operator administers.
const accessPolicy = `
access:
  admins: [spiffe://angzarr.test/ns/angzarr-system/sa/operator]
  dispatchers: [spiffe://angzarr.test/ns/angzarr-system/sa/angzarr-eventsvc]
  domains:
    - domain: customer
      writers: [spiffe://angzarr.test/ns/shop/sa/customer]
    - domain: order
      writers: [spiffe://angzarr.test/ns/shop/sa/order]
      readers: [spiffe://angzarr.test/ns/shop/sa/order-summary]
`

// secureMesh is an event service with mTLS and authorization on, and a
// client per workload identity.
type secureMesh struct {
	addr, metrics string
	fanoutFile    string
	ca            *identity.CA
	dir           string
	clients       map[string]*grpc.ClientConn // by service account
}

func startSecure(t *testing.T) *secureMesh {
	t.Helper()
	dir := t.TempDir()
	ca, err := identity.NewCA(accessTD, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	m := &secureMesh{ca: ca, dir: dir, clients: map[string]*grpc.ClientConn{}, fanoutFile: filepath.Join(dir, "fanout.yaml")}
	if err := os.WriteFile(m.fanoutFile, []byte(accessPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	ml, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.metrics = ml.Addr().String()
	m.addr = eventsvctest.StartConfig(t, eventsvc.Config{
		Store:           "sqlite:" + filepath.Join(dir, "e.db"),
		Identity:        m.identity(t, "angzarr-system", "angzarr-eventsvc"),
		Fanout:          m.fanoutFile,
		MetricsListener: ml,
	})
	for _, w := range [][2]string{{"shop", "customer"}, {"shop", "order"}, {"shop", "order-summary"}, {"shop", "attacker"}, {"angzarr-system", "operator"}} {
		m.clients[w[1]] = m.dial(t, m.identity(t, w[0], w[1]))
	}
	return m
}

// identity issues a certificate for ns/sa and returns its files.
func (m *secureMesh) identity(t *testing.T, ns, sa string) identity.Config {
	t.Helper()
	is, err := m.ca.Issue(ns, sa, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.ca.WriteFiles(filepath.Join(m.dir, "certs"), sa, is)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (m *secureMesh) dial(t *testing.T, c identity.Config) *grpc.ClientConn {
	t.Helper()
	f, err := identity.LoadFiles(c.CertFile, c.KeyFile, c.CAFile, "")
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(m.addr, identity.DialOption(f, identity.ID{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func (m *secureMesh) store(who string) pb.EventStoreClient {
	return pb.NewEventStoreClient(m.clients[who])
}

// stored is the aggregate's next sequence, as the operator sees it.
func (m *secureMesh) stored(t *testing.T, domain string, root uuid.UUID) uint32 {
	t.Helper()
	resp, err := m.store("operator").Load(ctxT(t), &pb.LoadRequest{Cover: cover(domain, root, "")})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetNextSequence()
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func typed(name string, payload string) *pb.EventPage {
	return &pb.EventPage{Sequence: &pb.EventPage_Num{Num: 0}, Event: &anypb.Any{TypeUrl: "type.googleapis.com/examples." + name, Value: []byte(payload)}}
}

// wantDenied checks a PERMISSION_DENIED that names the identity and rule.
func wantDenied(t *testing.T, err error, who, rule string) {
	t.Helper()
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("got %v, want PERMISSION_DENIED", err)
	}
	msg := status.Convert(err).Message()
	if !strings.Contains(msg, "/sa/"+who) || !strings.Contains(msg, rule) {
		t.Fatalf("denial %q does not name %s and rule %s", msg, who, rule)
	}
}

func TestAuthorizationAttacks(t *testing.T) {
	m := startSecure(t)
	ctx := ctxT(t)
	customer, order := uuid.New(), uuid.New()

	t.Run("no client certificate is refused", func(t *testing.T) {
		cc, err := grpc.NewClient(m.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		_, err = pb.NewEventStoreClient(cc).Append(ctx, &pb.AppendRequest{Cover: cover("customer", customer, ""), Pages: []*pb.EventPage{typed("CustomerCreated", "points:1000000")}})
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("plaintext append: %v", err)
		}
	})
	t.Run("forged CustomerCreated by an unlisted workload", func(t *testing.T) {
		_, err := m.store("attacker").Append(ctx, &pb.AppendRequest{Cover: cover("customer", customer, ""), Pages: []*pb.EventPage{typed("CustomerCreated", "points:1000000")}})
		wantDenied(t, err, "attacker", "domains[customer].writers")
	})
	t.Run("forged OrderCompleted by another domain's filter", func(t *testing.T) {
		_, err := m.store("customer").Append(ctx, &pb.AppendRequest{Cover: cover("order", order, ""), Pages: []*pb.EventPage{typed("OrderCompleted", "points:424242")}})
		wantDenied(t, err, "customer", "domains[order].writers")
	})
	t.Run("load of another domain", func(t *testing.T) {
		_, err := m.store("order").Load(ctx, &pb.LoadRequest{Cover: cover("customer", customer, ""), IdempotencyKey: "k"})
		wantDenied(t, err, "order", "domains[customer].writers")
	})
	t.Run("snapshot-only append by the domain's own filter", func(t *testing.T) {
		_, err := m.store("customer").Append(ctx, &pb.AppendRequest{Cover: cover("customer", customer, ""), SnapshotState: &anypb.Any{TypeUrl: "type.googleapis.com/examples.CustomerState", Value: []byte("points:777777")}})
		wantDenied(t, err, "customer", "allow_snapshot_only")
	})
	t.Run("forced sequence", func(t *testing.T) {
		p := typed("LoyaltyPointsAdded", "points:5000000")
		p.Sequence = &pb.EventPage_Force{Force: true}
		_, err := m.store("customer").Append(ctx, &pb.AppendRequest{Cover: cover("customer", customer, ""), Pages: []*pb.EventPage{p}})
		wantDenied(t, err, "customer", "allow_forced_sequences")
	})
	t.Run("event without a type", func(t *testing.T) {
		_, err := m.store("customer").Append(ctx, &pb.AppendRequest{Cover: cover("customer", customer, ""), Pages: []*pb.EventPage{{Sequence: &pb.EventPage_Num{Num: 0}, Event: &anypb.Any{}}}})
		wantDenied(t, err, "customer", "allow_untyped_events")
	})
	t.Run("nothing was stored", func(t *testing.T) {
		if n := m.stored(t, "customer", customer); n != 0 {
			t.Fatalf("customer has %d events", n)
		}
		if n := m.stored(t, "order", order); n != 0 {
			t.Fatalf("order has %d events", n)
		}
	})
	t.Run("FanoutAdmin is for operators", func(t *testing.T) {
		for _, who := range []string{"attacker", "customer", "order-summary"} {
			a := pb.NewFanoutAdminClient(m.clients[who])
			_, err := a.ListDeadLetters(ctx, &pb.ListDeadLettersRequest{})
			wantDenied(t, err, who, "admins")
			_, err = a.ReplayDeadLetters(ctx, &pb.ReplayDeadLettersRequest{})
			wantDenied(t, err, who, "admins")
			_, err = a.ResetSubscriber(ctx, &pb.ResetSubscriberRequest{})
			wantDenied(t, err, who, "admins")
		}
		if _, err := pb.NewFanoutAdminClient(m.clients["operator"]).ListDeadLetters(ctx, &pb.ListDeadLettersRequest{}); err != nil {
			t.Fatalf("operator: %v", err)
		}
	})
	t.Run("reads are granted per domain", func(t *testing.T) {
		recv := func(who string, q *pb.Query) error {
			s, err := pb.NewEventQueryClient(m.clients[who]).GetEvents(ctx, q)
			if err != nil {
				return err
			}
			for {
				if _, err := s.Recv(); err != nil {
					if err == io.EOF {
						return nil
					}
					return err
				}
			}
		}
		wantDenied(t, recv("attacker", &pb.Query{Cover: &pb.Cover{Domain: "customer"}}), "attacker", "domains[customer].readers")
		wantDenied(t, recv("order-summary", &pb.Query{Cover: &pb.Cover{Domain: "customer"}}), "order-summary", "domains[customer].readers")
		wantDenied(t, recv("order-summary", &pb.Query{Cover: &pb.Cover{CorrelationId: "c-1"}}), "order-summary", "readers")
		if err := recv("order-summary", &pb.Query{Cover: cover("order", order, "")}); err != nil {
			t.Fatalf("order-summary reading order: %v", err)
		}
		roots, err := pb.NewEventQueryClient(m.clients["order"]).GetAggregateRoots(ctx, &emptypb.Empty{})
		if err == nil {
			_, err = roots.Recv()
		}
		wantDenied(t, err, "order", "readers")
		_, err = m.store("attacker").ReadLog(ctx, &pb.ReadLogRequest{Domain: "order"})
		wantDenied(t, err, "attacker", "domains[order].readers")
	})
	t.Run("Synchronize of a domain it may not read", func(t *testing.T) {
		s, err := pb.NewEventQueryClient(m.clients["order-summary"]).Synchronize(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send(&pb.Query{Cover: cover("customer", customer, "")}); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		for {
			if _, err = s.Recv(); err != nil {
				break
			}
		}
		wantDenied(t, err, "order-summary", "domains[customer].readers")
	})
	t.Run("denials are counted", func(t *testing.T) {
		resp, err := http.Get("http://" + m.metrics + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(b), `angzarr_eventsvc_authz_denied_total{`) || !strings.Contains(string(b), `reason="admins"`) {
			t.Fatalf("no denial metric in:\n%s", b)
		}
	})
}

func TestAuthorizationHappyPathAndRevocation(t *testing.T) {
	m := startSecure(t)
	ctx := ctxT(t)
	root := uuid.New()
	// The domain's filter loads and appends, with a snapshot of the state.
	if _, err := m.store("customer").Load(ctx, &pb.LoadRequest{Cover: cover("customer", root, ""), IdempotencyKey: "k1"}); err != nil {
		t.Fatal(err)
	}
	resp, err := m.store("customer").Append(ctx, &pb.AppendRequest{Cover: cover("customer", root, ""), IdempotencyKey: "k1",
		Pages:         []*pb.EventPage{typed("CustomerCreated", "points:0")},
		SnapshotState: &anypb.Any{TypeUrl: "type.googleapis.com/examples.CustomerState", Value: []byte("points:0")}})
	if err != nil || resp.GetNextSequence() != 1 {
		t.Fatalf("append by the domain's filter: %v, %v", resp, err)
	}
	// The operator may force a sequence.
	p := typed("LoyaltyPointsAdded", "points:10")
	p.Sequence = &pb.EventPage_Force{Force: true}
	if _, err := m.store("operator").Append(ctx, &pb.AppendRequest{Cover: cover("customer", root, ""), Pages: []*pb.EventPage{p}}); err != nil {
		t.Fatalf("operator forced append: %v", err)
	}
	if n := m.stored(t, "customer", root); n != 2 {
		t.Fatalf("next sequence %d, want 2", n)
	}

	// The topology no longer lists the customer workload: its next call
	// is refused, without a restart.
	if err := os.WriteFile(m.fanoutFile, []byte(strings.Replace(accessPolicy, "[spiffe://angzarr.test/ns/shop/sa/customer]", "[spiffe://angzarr.test/ns/shop/sa/customer-v2]", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the customer workload's access revoked", func() bool {
		_, err := m.store("customer").Load(ctx, &pb.LoadRequest{Cover: cover("customer", root, "")})
		return status.Code(err) == codes.PermissionDenied
	})
	_, err = m.store("customer").Append(ctx, &pb.AppendRequest{Cover: cover("customer", root, ""), ExpectedSequence: 2, Pages: []*pb.EventPage{{Sequence: &pb.EventPage_Num{Num: 2}, Event: &anypb.Any{TypeUrl: "type.googleapis.com/examples.LoyaltyPointsAdded"}}}})
	wantDenied(t, err, "customer", "domains[customer].writers")
	if n := m.stored(t, "customer", root); n != 2 {
		t.Fatalf("next sequence %d after a refused append, want 2", n)
	}
}

// TestAuthorizationFromSidecar: behind a sidecar the caller is the last
// element of x-forwarded-client-cert (the test plays the sidecar).
func TestAuthorizationFromSidecar(t *testing.T) {
	dir := t.TempDir()
	fanoutFile := filepath.Join(dir, "fanout.yaml")
	if err := os.WriteFile(fanoutFile, []byte(accessPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := eventsvctest.StartConfig(t, eventsvc.Config{Store: "sqlite:" + filepath.Join(dir, "e.db"), Fanout: fanoutFile, IdentityFromSidecar: true})
	st := pb.NewEventStoreClient(eventsvctest.Dial(t, addr))
	root := uuid.New()
	appendAs := func(xfcc ...string) error {
		ctx := ctxT(t)
		for _, h := range xfcc {
			ctx = metadata.AppendToOutgoingContext(ctx, identity.XFCCHeader, h)
		}
		_, err := st.Append(ctx, &pb.AppendRequest{Cover: cover("customer", root, ""), Pages: []*pb.EventPage{typed("CustomerCreated", "points:0")}})
		return err
	}
	if err := appendAs(); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no header: %v", err)
	}
	// A client's own header comes first; the sidecar appends the element it
	// verified.
	wantDenied(t, appendAs("URI=spiffe://angzarr.test/ns/shop/sa/customer,By=spiffe://angzarr.test/ns/angzarr-system/sa/angzarr-eventsvc;URI=spiffe://angzarr.test/ns/shop/sa/attacker"), "attacker", "domains[customer].writers")
	if err := appendAs("By=spiffe://angzarr.test/ns/angzarr-system/sa/angzarr-eventsvc;URI=spiffe://angzarr.test/ns/shop/sa/customer"); err != nil {
		t.Fatalf("the customer filter through the sidecar: %v", err)
	}
}
