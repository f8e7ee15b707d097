package controlplane_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/angzarr-mesh/angzarr/controlplane"
	"github.com/angzarr-mesh/angzarr/controlplane/xdsclient"
	"github.com/angzarr-mesh/angzarr/internal/testutil"
)

func httpGet(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestRun runs the control plane as the CLI does: xDS, Prometheus metrics
// and the filter module server on their own addresses. The module is
// served with the digest the pushed filter config carries, and the
// metrics appear under their Prometheus names.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	module := []byte("\x00asm\x01\x00\x00\x00 not really a filter")
	modPath := filepath.Join(dir, "filter.wasm")
	if err := os.WriteFile(modPath, module, 0o644); err != nil {
		t.Fatal(err)
	}
	shopYAML, err := os.ReadFile("../examples/topology.yaml")
	if err != nil {
		t.Fatal(err)
	}
	topo := filepath.Join(dir, "topology.yaml")
	writeAtomic(t, topo, string(shopYAML))
	xds, metrics, mod := testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- controlplane.Run(ctx, controlplane.Config{
			Topology: topo, Listen: xds, MetricsListen: metrics,
			ServeModule: modPath, ServeModuleListen: mod,
			Filter: controlplane.Options{WasmURL: "http://" + mod + controlplane.ModulePath},
			Logger: slog.New(slog.DiscardHandler),
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	conn, err := grpc.NewClient(xds, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	waitServing(t, conn)

	got, err := httpGet("http://" + mod + controlplane.ModulePath)
	if err != nil || got != string(module) {
		t.Fatalf("module server: %q, %v", got, err)
	}
	sum := sha256.Sum256(module)

	// A proxy receives the remote module with that digest.
	pcs := make(chan xdsclient.ProxyConfig, 1)
	client := &xdsclient.ProxyClient{Conn: conn, Node: &core.Node{Id: "order"}, Logger: slog.New(slog.DiscardHandler),
		Apply: func(_ context.Context, pc xdsclient.ProxyConfig) error {
			select {
			case pcs <- pc:
			default:
			}
			return nil
		}}
	serve(t, client.Run)
	pc := nextApplied(t, pcs)
	if pc.Filter.URL != "http://"+mod+controlplane.ModulePath || pc.Filter.SHA256 != hex.EncodeToString(sum[:]) ||
		pc.Filter.URLCluster != controlplane.ClusterWasmSource || pc.Clusters[controlplane.ClusterWasmSource] != mod {
		t.Errorf("filter module source %+v, clusters %v", pc.Filter, pc.Clusters)
	}

	deadline := time.Now().Add(30 * time.Second)
	for {
		body, err := httpGet("http://" + metrics + "/metrics")
		if err == nil && strings.Contains(body, `angzarr_controlplane_snapshots_total{`) &&
			strings.Contains(body, `angzarr_controlplane_pushes_total{`) &&
			strings.Contains(body, "angzarr_controlplane_connected_nodes") &&
			strings.Contains(body, "angzarr_controlplane_translate_duration_seconds") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never showed the control plane's instruments: %v\n%s", err, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestServeMetricsListener serves the metrics on a listener the caller
// took (angzarr dev takes every port before anything starts) through New
// and Serve, and stops serving them with the control plane.
func TestServeMetricsListener(t *testing.T) {
	dir := t.TempDir()
	shopYAML, err := os.ReadFile("../examples/topology.yaml")
	if err != nil {
		t.Fatal(err)
	}
	topo := filepath.Join(dir, "topology.yaml")
	writeAtomic(t, topo, string(shopYAML))
	module := filepath.Join(dir, "filter.wasm")
	if err := os.WriteFile(module, []byte("\x00asm\x01\x00\x00\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	filter := controlplane.Options{WasmFile: module}
	ml, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metrics := ml.Addr().String()
	if _, err := controlplane.New(controlplane.Config{Topology: topo, Filter: filter, MetricsListen: testutil.FreeAddr(t), MetricsListener: ml}); err == nil ||
		!strings.Contains(err.Error(), "an address and a listener are both set") {
		t.Fatalf("metrics address and listener: %v", err)
	}
	cp, err := controlplane.New(controlplane.Config{Topology: topo, Filter: filter, MetricsListener: ml, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cp.Serve(ctx, lis) }()
	stopped := false
	t.Cleanup(func() {
		cancel()
		if !stopped {
			<-done
		}
	})
	select {
	case <-cp.Publisher().Applied():
	case <-time.After(30 * time.Second):
		t.Fatal("the topology was not applied within 30s")
	}
	body, err := httpGet("http://" + metrics + "/metrics")
	if err != nil || !strings.Contains(body, `angzarr_controlplane_snapshots_total{`) || !strings.Contains(body, `result="applied"`) {
		t.Fatalf("metrics lack the applied snapshot: %v\n%s", err, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	stopped = true
	if _, err := httpGet("http://" + metrics + "/metrics"); err == nil {
		t.Error("metrics still served after Serve returned")
	}
}
