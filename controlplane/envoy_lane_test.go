package controlplane_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/angzarr-mesh/angzarr/controlplane"
	"github.com/angzarr-mesh/angzarr/envoy/envoytest"
	"github.com/angzarr-mesh/angzarr/eventsvc/eventsvctest"
	"github.com/angzarr-mesh/angzarr/examples/go/shop"
	"github.com/angzarr-mesh/angzarr/internal/wasmbuild"
	"github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// laneNode is the node id of the lane's Envoy: the cart domain's workload
// in e2eTopology, so Envoy is the sidecar in front of the cart logic.
const laneNode = "cart-proxy"

// TestRealEnvoyLane runs the command path of TestEndToEndConfigOverXDS
// through a real Envoy when ENVOY_BIN names its binary: Envoy starts from
// envoy/bootstrap.yaml (node and control plane address filled in), gets
// everything else from the control plane over ADS (the Wasm filter over
// ECDS, clusters, the ingress listener), is ready once its admin /ready
// answers 200, and a CreateCart goes through it. Envoy cannot be installed
// on the development machines: without ENVOY_BIN the lane says it was
// skipped, but the bootstrap it would use is generated and validated
// against Envoy's API in every run (see envoy/README.md for the CI jobs
// that run the lane).
func TestRealEnvoyLane(t *testing.T) {
	t.Run("bootstrap", func(t *testing.T) {
		js := envoytest.Bootstrap(t, laneNode, "127.0.0.1:18123", nil)
		b := &bootstrapv3.Bootstrap{}
		if err := protojson.Unmarshal(js, b); err != nil {
			t.Fatal(err)
		}
		ads := b.GetStaticResources().GetClusters()[0].GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
		if b.GetNode().GetId() != laneNode || ads.GetAddress() != "127.0.0.1" || ads.GetPortValue() != 18123 ||
			b.GetAdmin().GetAddress().GetSocketAddress().GetPortValue() != 0 {
			t.Fatalf("generated bootstrap: node %q, ADS %v, admin %v", b.GetNode().GetId(), ads, b.GetAdmin())
		}
	})
	t.Run("envoy", func(t *testing.T) {
		bin := envoytest.Binary()
		if bin == "" {
			t.Skip(envoytest.SkipMessage)
		}
		runEnvoyLane(t, bin)
	})
}

func runEnvoyLane(t *testing.T, bin string) {
	wasm := wasmbuild.Filter(t)
	es := eventsvctest.Start(t, "sqlite:"+filepath.Join(t.TempDir(), "events.db"))
	cart, err := shop.Lookup("cart")
	if err != nil {
		t.Fatal(err)
	}
	llis := listen(t)
	logic := llis.Addr().String()
	serve(t, func(ctx context.Context) error { return shop.Serve(ctx, llis, cart) })

	// The ingress port Envoy will listen on (the control plane names it).
	plis := listen(t)
	ingress := plis.Addr().(*net.TCPAddr).Port
	plis.Close()

	topo := filepath.Join(t.TempDir(), "topology.yaml")
	writeAtomic(t, topo, e2eTopology(es, logic, 0))
	cp, err := controlplane.New(controlplane.Config{
		Topology:     topo,
		Filter:       controlplane.Options{WasmFile: wasm, IngressPort: uint32(ingress)},
		PollInterval: 20 * time.Millisecond,
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	clis := listen(t)
	serve(t, func(ctx context.Context) error { return cp.Serve(ctx, clis) })
	envoytest.Start(t, bin, envoytest.Bootstrap(t, laneNode, clis.Addr().String(), nil))

	pconn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", ingress), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pconn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	resp, err := angzarr.NewBusinessCoordinatorClient(pconn).Handle(ctx, createCart(t))
	if err != nil {
		t.Fatalf("a command through Envoy: %v", err)
	}
	if n := len(resp.GetEvents().GetPages()); n != 1 {
		t.Fatalf("CreateCart stored %d events through Envoy, want 1: %v", n, resp)
	}
}
