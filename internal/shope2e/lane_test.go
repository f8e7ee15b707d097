package shope2e_test

import (
	"context"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/angzarr-mesh/angzarr/controlplane/xdsclient"
	"github.com/angzarr-mesh/angzarr/controlplane/xdsproxy"
	"github.com/angzarr-mesh/angzarr/envoy/envoytest"
	"github.com/angzarr-mesh/angzarr/internal/devmesh"
	"github.com/angzarr-mesh/angzarr/internal/testutil"
	"github.com/angzarr-mesh/angzarr/wasmhost"
)

// eachLane runs f on a mesh of each proxy: the mesh's wasmhost proxies
// (subtest wasmhost), and real Envoys, one per domain (subtest envoy):
// the mesh then runs in plaintext without its own proxies
// (devmesh.Config.EnvoyProxies), and each domain's Envoy starts from its
// bootstrap (devmesh.Config.EnvoyBootstraps: envoy/bootstrap.yaml, ADS
// from the mesh's control plane, its own ingress port) and is ready once
// its admin /ready answers. Without ENVOY_BIN the Envoy lane says it was
// skipped, after generating and validating every Envoy's bootstrap.
func eachLane(t *testing.T, f func(t *testing.T, m *mesh)) {
	t.Run("wasmhost", func(t *testing.T) { f(t, startMesh(t)) })
	t.Run("envoy", func(t *testing.T) {
		cfg := devmesh.Config{Filter: filterModule(t), BasePort: testutil.FreePorts(t, ports), Insecure: true, EnvoyProxies: true}
		bs, err := cfg.EnvoyBootstraps()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("generated and validated the bootstraps of %d Envoys (one per domain)", len(bs))
		bin := envoytest.Binary()
		if bin == "" {
			t.Skip(envoytest.SkipMessage)
		}
		m := startMeshLane(t, true, true)
		// The bootstraps of the mesh as started (its ports may have moved).
		if bs, err = m.cfg.EnvoyBootstraps(); err != nil {
			t.Fatal(err)
		}
		for _, d := range slices.Sorted(maps.Keys(bs)) {
			e := envoytest.Start(t, bin, bs[d])
			t.Logf("Envoy for %s ready, admin %s", d, e.Admin)
		}
		f(t, m)
	})
}

// TestMeshServesProxiesItDoesNotRun runs the Envoy lane's mesh
// (EnvoyProxies: no proxies of its own, nothing on their ports) with a
// stand-in for each Envoy, because Envoy cannot run here: a wasmhost proxy
// fed by the mesh's control plane on the domain's proxy port, identified
// like the Envoy by its node id alone (no ANGZARR_DOMAIN metadata). The
// order path then works through them as through the mesh's own proxies.
func TestMeshServesProxiesItDoesNotRun(t *testing.T) {
	m := startMeshLane(t, true, true)
	if m.ep.MTLS {
		t.Fatal("the Envoy lane's mesh runs mTLS; a standalone Envoy gets no TLS from the control plane")
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, d := range slices.Sorted(maps.Keys(m.ep.Domains)) {
		addr := m.ep.Domains[d].Coordinator
		if m.ep.Domains[d].Admin != "" {
			t.Errorf("%s: the endpoints name a proxy admin %s the mesh does not run", d, m.ep.Domains[d].Admin)
		}
		lis, err := net.Listen("tcp", addr) // free: the mesh left it to the Envoy
		if err != nil {
			t.Fatalf("%s: the proxy port %s is not free for the Envoy: %v", d, addr, err)
		}
		admin, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ready := make(chan struct{})
		var once sync.Once
		cfg := xdsproxy.Config{XDS: m.ep.ControlPlane, Node: d,
			Host:    wasmhost.Config{Logger: slog.New(slog.DiscardHandler)},
			Applied: func(xdsclient.ProxyConfig) { once.Do(func() { close(ready) }) },
			XDSDial: grpc.WithTransportCredentials(insecure.NewCredentials())}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := xdsproxy.Serve(ctx, lis, admin, cfg); err != nil && ctx.Err() == nil {
				t.Errorf("stand-in proxy %s: %v", d, err)
			}
		}()
		select {
		case <-ready:
		case <-time.After(time.Minute):
			t.Fatalf("stand-in proxy %s got no configuration from the control plane", d)
		}
	}
	completedOrderEarnsLoyaltyPointsAndShipsExactlyOnce(t, m)
}
