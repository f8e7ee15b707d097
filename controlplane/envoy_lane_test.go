package controlplane_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/angzarr-mesh/angzarr/controlplane"
	"github.com/angzarr-mesh/angzarr/envoy"
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
		js, err := envoy.BootstrapFor(laneNode, "127.0.0.1:18123", 0, validateBootstrap)
		if err != nil {
			t.Fatal(err)
		}
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
		bin := os.Getenv("ENVOY_BIN")
		if bin == "" {
			t.Skip("real-Envoy lane skipped: ENVOY_BIN is not set (the bootstrap it would use was generated and validated)")
		}
		runEnvoyLane(t, bin)
	})
}

func validateBootstrap(b *bootstrapv3.Bootstrap) error { return controlplane.ValidateDeep(b) }

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

	dir := t.TempDir()
	js, err := envoy.BootstrapFor(laneNode, clis.Addr().String(), 0, validateBootstrap)
	if err != nil {
		t.Fatal(err)
	}
	bootstrap, adminPath, logPath := filepath.Join(dir, "bootstrap.json"), filepath.Join(dir, "admin"), filepath.Join(dir, "envoy.log")
	if err := os.WriteFile(bootstrap, js, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, bin, "-c", bootstrap, "--admin-address-path", adminPath,
		"--use-dynamic-base-id", "--concurrency", "2", "-l", "warning")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logFile.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				t.Logf("envoy log:\n%s", b)
			}
		}
	})
	if err := waitEnvoyReady(ctx, adminPath); err != nil {
		t.Fatal(err)
	}

	pconn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", ingress), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pconn.Close() })
	resp, err := angzarr.NewBusinessCoordinatorClient(pconn).Handle(ctx, createCart(t))
	if err != nil {
		t.Fatalf("a command through Envoy: %v", err)
	}
	if n := len(resp.GetEvents().GetPages()); n != 1 {
		t.Fatalf("CreateCart stored %d events through Envoy, want 1: %v", n, resp)
	}
}

// waitEnvoyReady waits (bounded by ctx) for Envoy to write its admin
// address and for the admin's /ready to answer 200: the listeners, with
// their ECDS filter, are warm.
func waitEnvoyReady(ctx context.Context, adminPath string) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if addr, err := os.ReadFile(adminPath); err == nil && len(strings.TrimSpace(string(addr))) > 0 {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+strings.TrimSpace(string(addr))+"/ready", nil)
			if err != nil {
				return err
			}
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return errors.New("envoy did not become ready (admin /ready) before the lane's deadline")
		case <-tick.C:
		}
	}
}
