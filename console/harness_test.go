package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/angzarr-mesh/angzarr/console"
	"github.com/angzarr-mesh/angzarr/controlplane"
	"github.com/angzarr-mesh/angzarr/controlplane/xdsclient"
	"github.com/angzarr-mesh/angzarr/eventsvc"
	"github.com/angzarr-mesh/angzarr/eventsvc/eventsvctest"
	"github.com/angzarr-mesh/angzarr/internal/testutil"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Tokens of the test users: an operator and a reader (and a stranger, who
// has a token but no role).
const (
	operatorToken = "operator-token-0123456789"
	readerToken   = "reader-token-0123456789ab"
	strangerToken = "stranger-token-0123456789"
)

// rig is a real event service (SQLite, fan-out dispatcher) fed by a real
// control plane over xDS, a real projector that refuses one aggregate's
// events until fixed, a real saga that returns no command, and a console
// served over HTTP.
type rig struct {
	t       *testing.T
	evs     string
	store   pb.EventStoreClient
	admin   pb.FanoutAdminClient
	audit   *auditProjector
	console *console.Console
	srv     *httptest.Server
}

// topologyYAML is the control plane's topology: three domains, a saga
// order → customer, a saga order → fulfillment and the audit projector.
const topologyYAML = `apiVersion: angzarr.io/v1alpha1
kind: Topology
metadata: {name: console-test}
eventService: {address: %[1]s}
domains:
  - {name: order, service: 127.0.0.1, port: 1, coordinator: "127.0.0.1:1"}
  - {name: customer, service: 127.0.0.1, port: 1, coordinator: "127.0.0.1:1"}
  - {name: fulfillment, service: 127.0.0.1, port: 1, coordinator: "127.0.0.1:1"}
sagas:
  - {name: loyalty-earn, address: %[2]s, sources: [order], targets: [customer]}
  - {name: fulfillment, address: %[2]s, sources: [order], targets: [fulfillment]}
projectors:
  - {name: audit, address: %[3]s, domains: [order, customer], startPosition: earliest}
`

func startRig(t *testing.T) *rig {
	t.Helper()
	dir := t.TempDir()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	audit := &auditProjector{poison: map[uuid.UUID]bool{}}
	projAddr := serveGRPC(t, func(s *grpc.Server) { pb.RegisterProjectorServer(s, audit) })
	sagaAddr := serveGRPC(t, func(s *grpc.Server) { pb.RegisterSagaServer(s, quietSaga{}) })

	// The control plane on a topology file.
	topo := filepath.Join(dir, "topology.yaml")
	if err := os.WriteFile(topo, fmt.Appendf(nil, topologyYAML, "127.0.0.1:1", sagaAddr, projAddr), 0o644); err != nil {
		t.Fatal(err)
	}
	cp, err := controlplane.New(controlplane.Config{Topology: topo, Filter: controlplane.Options{WasmFile: "/filter.wasm"}, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	cpLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cpDone := make(chan error, 1)
	go func() { cpDone <- cp.Serve(ctx, cpLis) }()
	t.Cleanup(func() {
		cancel()
		if err := <-cpDone; err != nil {
			t.Errorf("control plane: %v", err)
		}
	})
	cpConn := eventsvctest.Dial(t, cpLis.Addr().String())

	// The event service, its fan-out configured by the control plane.
	evs := eventsvctest.StartConfig(t, eventsvc.Config{
		Store:             "sqlite:" + filepath.Join(dir, "events.db"),
		FanoutSource:      &xdsclient.FanoutClient{Conn: cpConn, Node: &core.Node{Id: "console-test-eventsvc"}, Logger: logger},
		FanoutMaxAttempts: 2, FanoutBackoff: time.Millisecond, FanoutBackoffMax: 5 * time.Millisecond,
		PollInterval: 20 * time.Millisecond,
	})
	conn := eventsvctest.Dial(t, evs)

	c, err := console.New(console.Config{
		EventService: evs, ControlPlane: cpLis.Addr().String(),
		Tokens:    map[string]string{operatorToken: "olga", readerToken: "rita", strangerToken: "sam"},
		Operators: []string{"olga"}, Readers: []string{"rita"},
		SampleInterval: 50 * time.Millisecond, Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	runDone := make(chan error, 1)
	go func() { runDone <- c.Run(ctx) }()
	srv := httptest.NewServer(c.Handler())
	t.Cleanup(func() {
		srv.Close()
		cancel()
		if err := <-runDone; err != nil {
			t.Errorf("console: %v", err)
		}
		c.Close()
	})
	r := &rig{t: t, evs: evs, store: pb.NewEventStoreClient(conn), admin: pb.NewFanoutAdminClient(conn), audit: audit, console: c, srv: srv}
	// Ready once the console has the topology and the dispatcher knows
	// the projector.
	r.eventually("the console has the topology", func() (bool, string) {
		var topo struct {
			Known       bool
			Subscribers []struct{ Name string }
		}
		code := r.getJSON(readerToken, "/api/topology", &topo)
		return code == 200 && topo.Known && len(topo.Subscribers) == 3, fmt.Sprintf("%d %+v", code, topo)
	})
	r.eventually("the dispatcher has the projector", func() (bool, string) {
		_, err := r.admin.GetSubscriberProgress(context.Background(), &pb.GetSubscriberProgressRequest{Name: "audit"})
		return err == nil, fmt.Sprint(err)
	})
	return r
}

func serveGRPC(t *testing.T, register func(*grpc.Server), opts ...grpc.ServerOption) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(opts...)
	register(s)
	done := make(chan error, 1)
	go func() { done <- s.Serve(lis) }()
	t.Cleanup(func() {
		s.Stop()
		if err := <-done; err != nil {
			t.Errorf("grpc server: %v", err)
		}
	})
	return lis.Addr().String()
}

// auditProjector refuses the events of the poisoned aggregates until fixed.
type auditProjector struct {
	pb.UnimplementedProjectorServer
	mu      sync.Mutex
	poison  map[uuid.UUID]bool
	fixed   bool
	handled int
	// hold, when set, holds every delivery of that aggregate until
	// released (closed) or the call ends.
	hold     uuid.UUID
	released chan struct{}
}

func (p *auditProjector) Handle(ctx context.Context, b *pb.EventBook) (*emptypb.Empty, error) {
	p.mu.Lock()
	if hold, released := p.hold, p.released; released != nil && uuid.UUID(b.GetCover().GetRoot().GetValue()) == hold {
		p.mu.Unlock()
		select {
		case <-released:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		p.mu.Lock()
	}
	defer p.mu.Unlock()
	if p.poison[uuid.UUID(b.GetCover().GetRoot().GetValue())] && !p.fixed {
		return nil, status.Error(codes.Internal, "audit store is down")
	}
	p.handled += len(b.GetPages())
	return &emptypb.Empty{}, nil
}

func (p *auditProjector) poisonRoot(u uuid.UUID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.poison[u] = true
}

func (p *auditProjector) fix() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fixed = true
}

// quietSaga handles every event and issues no command.
type quietSaga struct{ pb.UnimplementedSagaServer }

func (quietSaga) HandleSync(context.Context, *pb.EventBook) (*pb.SagaResponse, error) {
	return &pb.SagaResponse{}, nil
}

// appendEvents appends msgs to domain/root after sequence next with a
// correlation id.
func (r *rig) appendEvents(domain string, root uuid.UUID, corr string, next uint32, msgs ...proto.Message) {
	r.t.Helper()
	req := &pb.AppendRequest{Cover: &pb.Cover{Domain: domain, Root: &pb.UUID{Value: root[:]}, CorrelationId: corr}, ExpectedSequence: next}
	for i, m := range msgs {
		a, err := anypb.New(m)
		if err != nil {
			r.t.Fatal(err)
		}
		req.Pages = append(req.Pages, &pb.EventPage{Sequence: &pb.EventPage_Num{Num: next + uint32(i)}, Event: a})
	}
	if _, err := r.store.Append(context.Background(), req); err != nil {
		r.t.Fatalf("append to %s/%s: %v", domain, root, err)
	}
}

// do sends a request as the holder of token ("" for nobody).
func (r *rig) do(token, method, path, body string, hdr map[string]string) (*http.Response, []byte) {
	r.t.Helper()
	req, err := http.NewRequest(method, r.srv.URL+path, strings.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := r.srv.Client().Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatal(err)
	}
	return resp, b
}

// getJSON GETs path as the holder of token and decodes a 200's body into v.
func (r *rig) getJSON(token, path string, v any) int {
	r.t.Helper()
	resp, b := r.do(token, "GET", path, "", nil)
	if resp.StatusCode == 200 && v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			r.t.Fatalf("GET %s: %v\n%s", path, err, b)
		}
	}
	return resp.StatusCode
}

// mustGet is getJSON that fails the test on any status but 200.
func (r *rig) mustGet(token, path string, v any) {
	r.t.Helper()
	if resp, b := r.do(token, "GET", path, "", nil); resp.StatusCode != 200 {
		r.t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	} else if err := json.Unmarshal(b, v); err != nil {
		r.t.Fatalf("GET %s: %v\n%s", path, err, b)
	}
}

// csrf is the session's CSRF token of the holder of token.
func (r *rig) csrf(token string) string {
	r.t.Helper()
	var s struct{ CSRF string }
	r.mustGet(token, "/api/session", &s)
	return s.CSRF
}

// post sends an action as the holder of token with its CSRF token.
func (r *rig) post(token, path, body string) (*http.Response, []byte) {
	r.t.Helper()
	return r.do(token, "POST", path, body, map[string]string{"Content-Type": "application/json", console.CSRFHeader: r.csrf(token)})
}

func (r *rig) eventually(what string, cond func() (bool, string)) {
	r.t.Helper()
	testutil.EventuallyWhy(r.t, func() (bool, string) {
		ok, why := cond()
		return ok, what + ": " + why
	})
}

// newJar is a cookie jar for a browser-like client.
func newJar(t *testing.T) http.CookieJar {
	j, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return j
}
