package controlplane_test

import (
	"context"
	"crypto/rand"
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
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/angzarr-mesh/angzarr/controlplane"
	"github.com/angzarr-mesh/angzarr/controlplane/xdsclient"
	"github.com/angzarr-mesh/angzarr/controlplane/xdsproxy"
	"github.com/angzarr-mesh/angzarr/eventsvc/eventsvctest"
	"github.com/angzarr-mesh/angzarr/examples/go/shop"
	"github.com/angzarr-mesh/angzarr/internal/testutil"
	"github.com/angzarr-mesh/angzarr/internal/wasmbuild"
	"github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/proto/examples"
	"github.com/angzarr-mesh/angzarr/wasmhost"
)

func listen(t testing.TB) net.Listener {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return lis
}

// serve runs fn until the test ends.
func serve(t testing.TB, fn func(ctx context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && ctx.Err() == nil {
			t.Errorf("serve: %v", err)
		}
	})
}

func writeAtomic(t testing.TB, path, data string) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

func e2eTopology(eventsvc, logic string, maxBody int) string {
	return fmt.Sprintf(`apiVersion: angzarr.io/v1alpha1
kind: Topology
eventService: {address: %q}
defaults: {maxBodyBytes: %d}
domains:
  - name: cart
    service: %s
    port: %s
    workloads: [{name: cart-proxy}]
`, eventsvc, maxBody, strings.Split(logic, ":")[0], strings.Split(logic, ":")[1])
}

// startProxy runs `angzarr proxy --xds` (xdsproxy) against the control
// plane at xds as node; applied receives each configuration it applied.
func startProxy(t testing.TB, xds, node string) (addr string, applied chan xdsclient.ProxyConfig) {
	t.Helper()
	lis := listen(t)
	applied = make(chan xdsclient.ProxyConfig, 8)
	cfg := xdsproxy.Config{XDS: xds, Node: node,
		Host:    wasmhost.Config{VMs: 1, Logger: slog.New(slog.DiscardHandler)},
		Applied: func(pc xdsclient.ProxyConfig) { applied <- pc },
	}
	serve(t, func(ctx context.Context) error { return xdsproxy.Serve(ctx, lis, nil, cfg) })
	return lis.Addr().String(), applied
}

// TestEndToEndConfigOverXDS: the control plane, a proxy configured only
// over xDS (wasmhost running the real filter .wasm), the event service and
// the cart business logic. A command succeeds with configuration that came
// only from the control plane; a saved topology change changes the
// proxy's behaviour without a restart, and changing it back restores it.
func TestEndToEndConfigOverXDS(t *testing.T) {
	wasm := wasmbuild.Filter(t)
	es := eventsvctest.Start(t, "sqlite:"+filepath.Join(t.TempDir(), "events.db"))

	cart, err := shop.Lookup("cart")
	if err != nil {
		t.Fatal(err)
	}
	llis := listen(t)
	logic := llis.Addr().String()
	serve(t, func(ctx context.Context) error { return shop.Serve(ctx, llis, cart) })

	topo := filepath.Join(t.TempDir(), "topology.yaml")
	writeAtomic(t, topo, e2eTopology(es, logic, 0))
	cp, err := controlplane.New(controlplane.Config{
		Topology:     topo,
		Filter:       controlplane.Options{WasmFile: wasm},
		PollInterval: 20 * time.Millisecond,
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	clis := listen(t)
	serve(t, func(ctx context.Context) error { return cp.Serve(ctx, clis) })
	xconn, err := grpc.NewClient(clis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { xconn.Close() })
	waitServing(t, xconn)

	paddr, applied := startProxy(t, clis.Addr().String(), "cart-proxy")
	first := nextApplied(t, applied)
	if got := first.Filter.Config.Domains; len(got) != 1 || got[0] != "cart" {
		t.Fatalf("the proxy got domains %v", got)
	}

	pconn, err := grpc.NewClient(paddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pconn.Close() })
	coord := angzarr.NewBusinessCoordinatorClient(pconn)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	resp, err := coord.Handle(ctx, createCart(t))
	if err != nil {
		t.Fatalf("a command through the xDS-configured proxy: %v", err)
	}
	if n := len(resp.GetEvents().GetPages()); n != 1 {
		t.Fatalf("CreateCart stored %d events, want 1: %v", n, resp)
	}

	// Save a topology whose body limit is smaller than any command: the
	// same proxy, without a restart, now refuses it.
	saved := time.Now()
	writeAtomic(t, topo, e2eTopology(es, logic, 16))
	// The change reaches the proxy as more than one xDS update (the
	// listener's buffer limit follows maxBodyBytes too): wait for the
	// filter's.
	waitApplied(t, applied, func(pc xdsclient.ProxyConfig) bool { return pc.Filter.Config.MaxBodyBytes == 16 })
	t.Logf("file save to config applied in the proxy: %v", time.Since(saved))
	_, err = coord.Handle(ctx, createCart(t))
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("after the change: %v, want RESOURCE_EXHAUSTED", err)
	}

	// And back.
	writeAtomic(t, topo, e2eTopology(es, logic, 0))
	waitApplied(t, applied, func(pc xdsclient.ProxyConfig) bool { return pc.Filter.Config.MaxBodyBytes != 16 })
	if _, err := coord.Handle(ctx, createCart(t)); err != nil {
		t.Fatalf("after restoring the topology: %v", err)
	}
}

func nextApplied(t testing.TB, ch <-chan xdsclient.ProxyConfig) xdsclient.ProxyConfig {
	t.Helper()
	select {
	case pc := <-ch:
		return pc
	case <-testutil.Deadline(t):
		t.Fatal("the proxy applied no configuration before the test's deadline")
		return xdsclient.ProxyConfig{}
	}
}

// waitApplied waits for an applied configuration for which ok holds.
func waitApplied(t testing.TB, ch <-chan xdsclient.ProxyConfig, ok func(xdsclient.ProxyConfig) bool) {
	t.Helper()
	for !ok(nextApplied(t, ch)) {
	}
}

func waitServing(t testing.TB, conn *grpc.ClientConn) {
	t.Helper()
	h := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		r, err := h.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("control plane not serving: %v %v", r, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func createCart(t testing.TB) *angzarr.CommandBook {
	t.Helper()
	root := make([]byte, 16)
	if _, err := rand.Read(root); err != nil {
		t.Fatal(err)
	}
	root[6] = root[6]&0x0f | 0x40
	root[8] = root[8]&0x3f | 0x80
	cmd, err := anypb.New(&examples.CreateCart{CustomerId: "c-1"})
	if err != nil {
		t.Fatal(err)
	}
	return &angzarr.CommandBook{
		Cover: &angzarr.Cover{Domain: "cart", Root: &angzarr.UUID{Value: root}},
		Pages: []*angzarr.CommandPage{{Sequence: 0, Command: cmd}},
	}
}
