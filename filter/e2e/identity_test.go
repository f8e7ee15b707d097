//go:build !wasip1

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/angzarr-mesh/angzarr/eventsvc"
	"github.com/angzarr-mesh/angzarr/eventsvc/eventsvctest"
	"github.com/angzarr-mesh/angzarr/filter/config"
	"github.com/angzarr-mesh/angzarr/filter/internal/counter"
	"github.com/angzarr-mesh/angzarr/internal/identity"
	"github.com/angzarr-mesh/angzarr/internal/testredis"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/wasmhost"
)

// secureStack is the command path with mTLS everywhere: a CA, an event
// service with authorization (the counter domain written by
// spiffe://angzarr.test/ns/shop/sa/counter, an operator admin), the counter
// logic, and proxies of given identities.
type secureStack struct {
	t      testing.TB
	dir    string
	ca     *identity.CA
	es     string
	logic  string
	logger *slog.Logger
}

func startSecure(t testing.TB) *secureStack {
	t.Helper()
	s := &secureStack{t: t, dir: t.TempDir()}
	var err error
	if s.ca, err = identity.NewCA("angzarr.test", time.Hour); err != nil {
		t.Fatal(err)
	}
	esCert, err := s.ca.Issue("angzarr-system", "angzarr-eventsvc", time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	esCfg, err := s.ca.WriteFiles(filepath.Join(s.dir, "eventsvc"), "eventsvc", esCert)
	if err != nil {
		t.Fatal(err)
	}
	fanout := filepath.Join(s.dir, "fanout.yaml")
	policy := fmt.Sprintf("access:\n  admins: [spiffe://angzarr.test/ns/ops/sa/operator]\n  domains:\n    - domain: %s\n      writers: [spiffe://angzarr.test/ns/shop/sa/counter]\n", counter.Domain)
	if err := os.WriteFile(fanout, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	s.logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelError}))
	s.es = eventsvctest.StartConfig(t, eventsvc.Config{Store: "redis://" + testredis.Start(t) + "/0", Identity: esCfg, Fanout: fanout, Logger: s.logger})

	llis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.logic = llis.Addr().String()
	lctx, lcancel := context.WithCancel(context.Background())
	ldone := make(chan error, 1)
	go func() { ldone <- counter.Serve(lctx, llis, &counter.Service{}) }()
	t.Cleanup(func() { lcancel(); <-ldone })
	return s
}

// issue returns the loaded certificate of ns/sa.
func (s *secureStack) issue(ns, sa string) *identity.Files {
	s.t.Helper()
	is, err := s.ca.Issue(ns, sa, time.Time{}, time.Time{})
	if err != nil {
		s.t.Fatal(err)
	}
	c, err := s.ca.WriteFiles(filepath.Join(s.dir, sa), sa, is)
	if err != nil {
		s.t.Fatal(err)
	}
	f, err := identity.LoadFiles(c.CertFile, c.KeyFile, c.CAFile, "")
	if err != nil {
		s.t.Fatal(err)
	}
	return f
}

// proxy starts a proxy with the identity f (vms Wasm VMs) and returns its
// address.
func (s *secureStack) proxy(f *identity.Files, vms int) string {
	t := s.t
	t.Helper()
	raw, err := json.Marshal(config.Config{Domains: []string{counter.Domain}, EventServiceCluster: "angzarr-eventsvc", BusinessLogicCluster: "angzarr-logic",
		CallerIdentity: true, Recorders: []string{"spiffe://angzarr.test/ns/ops/sa/importer"},
		EventTypes: map[string][]string{counter.Domain: {counter.EventType}}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := wasmhost.New(context.Background(), wasmhost.Config{
		FilterPath: wasmPath, Plugin: wasmhost.Plugin{Configuration: raw},
		Upstream: s.logic, Clusters: map[string]string{"angzarr-eventsvc": s.es, "angzarr-logic": s.logic},
		VMs: vms, Logger: s.logger,
		ListenerTLS: identity.ServerTLS(f), ListenerID: f.ID().String(), ClusterTLS: identity.ClientTLS(f, identity.ID{}),
	})
	if err != nil {
		t.Fatal(err)
	}
	plis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithCancel(context.Background())
	pdone := make(chan error, 1)
	go func() { pdone <- h.Serve(pctx, plis) }()
	t.Cleanup(func() { pcancel(); <-pdone; h.Close() })
	return plis.Addr().String()
}

// TestCommandPathWithIdentity runs the command path with mTLS everywhere:
// client -> proxy listener (mTLS), filter -> event service (mTLS cluster,
// the proxy's certificate), the event service authorizing the filter's
// Load/Append from the access policy. A proxy whose identity is not the
// domain's writer stores nothing.
func TestCommandPathWithIdentity(t *testing.T) {
	st := startSecure(t)
	es, issue := st.es, st.issue
	proxy := func(f *identity.Files) string { return st.proxy(f, 1) }
	client := issue("shop", "web")
	coordinator := func(addr string, dial grpc.DialOption) pb.BusinessCoordinatorClient {
		cc, err := grpc.NewClient(addr, dial)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return pb.NewBusinessCoordinatorClient(cc)
	}
	operator := issue("ops", "operator")
	events := func(root []byte) uint32 {
		t.Helper()
		cc, err := grpc.NewClient(es, identity.DialOption(operator, identity.ID{}))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		resp, err := pb.NewEventStoreClient(cc).Load(ctxT(t), &pb.LoadRequest{Cover: &pb.Cover{Domain: counter.Domain, Root: &pb.UUID{Value: root}}})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetNextSequence()
	}

	good := proxy(issue("shop", "counter"))
	t.Run("the domain's own proxy stores the command's events", func(t *testing.T) {
		root := newRoot(t)
		if _, err := coordinator(good, identity.DialOption(client, identity.ID{})).Handle(ctxT(t), command(root, 0, 5)); err != nil {
			t.Fatal(err)
		}
		if n := events(root); n != 1 {
			t.Fatalf("next sequence %d, want 1", n)
		}
	})
	t.Run("Record only for recorders", func(t *testing.T) {
		root := newRoot(t)
		book := &pb.EventBook{Cover: &pb.Cover{Domain: counter.Domain, Root: &pb.UUID{Value: root}}, Pages: []*pb.EventPage{counter.Event(5000000)}}
		_, err := coordinator(good, identity.DialOption(client, identity.ID{})).Record(ctxT(t), book)
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("Record by a client: %v", err)
		}
		if n := events(root); n != 0 {
			t.Fatalf("next sequence %d after a refused Record", n)
		}
		if _, err := coordinator(good, identity.DialOption(issue("ops", "importer"), identity.ID{})).Record(ctxT(t), book); err != nil {
			t.Fatalf("Record by the importer: %v", err)
		}
		if n := events(root); n != 1 {
			t.Fatalf("next sequence %d after the importer's Record", n)
		}
	})
	t.Run("Record only of the domain's event types", func(t *testing.T) {
		// The attack of issue 18: an order event recorded in another
		// domain. The importer may Record, but not that type.
		root := newRoot(t)
		forged := &pb.EventPage{Event: &anypb.Any{TypeUrl: "type.googleapis.com/examples.OrderCompleted", Value: []byte{8, 1}}}
		book := &pb.EventBook{Cover: &pb.Cover{Domain: counter.Domain, Root: &pb.UUID{Value: root}}, Pages: []*pb.EventPage{counter.Event(1), forged}}
		_, err := coordinator(good, identity.DialOption(issue("ops", "importer"), identity.ID{})).Record(ctxT(t), book)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), `"examples.OrderCompleted"`) {
			t.Fatalf("Record of an order event: %v", err)
		}
		if n := events(root); n != 0 {
			t.Fatalf("next sequence %d after a refused Record", n)
		}
	})
	t.Run("an idempotency key belongs to its caller", func(t *testing.T) {
		root := newRoot(t)
		a := command(root, 0, 4)
		a.IdempotencyKey = "k-1"
		if _, err := coordinator(good, identity.DialOption(client, identity.ID{})).Handle(ctxT(t), a); err != nil {
			t.Fatal(err)
		}
		b := command(root, 1, 7)
		b.IdempotencyKey = "k-1"
		resp, err := coordinator(good, identity.DialOption(issue("shop", "mobile"), identity.ID{})).Handle(ctxT(t), b)
		if err != nil {
			t.Fatal(err)
		}
		if n := events(root); n != 2 || resp.GetEvents().GetPages()[0].GetNum() != 1 {
			t.Fatalf("B's command with A's key: next sequence %d, answer %v", n, resp)
		}
	})
	t.Run("a plaintext client is refused by the proxy", func(t *testing.T) {
		_, err := coordinator(good, grpc.WithTransportCredentials(insecure.NewCredentials())).Handle(ctxT(t), command(newRoot(t), 0, 5))
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("plaintext: %v", err)
		}
	})
	t.Run("another workload's proxy cannot write the domain", func(t *testing.T) {
		rogue := proxy(issue("shop", "rogue"))
		root := newRoot(t)
		_, err := coordinator(rogue, identity.DialOption(client, identity.ID{})).Handle(ctxT(t), command(root, 0, 5))
		if err == nil {
			t.Fatal("the rogue proxy's command succeeded")
		}
		t.Logf("rogue proxy: %v", err)
		if n := events(root); n != 0 {
			t.Fatalf("next sequence %d, want 0", n)
		}
	})
}
