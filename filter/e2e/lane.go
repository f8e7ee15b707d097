//go:build !wasip1

package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/angzarr-mesh/angzarr/controlplane"
	"github.com/angzarr-mesh/angzarr/envoy/envoytest"
	"github.com/angzarr-mesh/angzarr/filter/internal/counter"
)

// Lane is the proxy a Stack runs the filter in.
type Lane string

const (
	// LaneWasmhost is wasmhost in this process (the default).
	LaneWasmhost Lane = ""
	// LaneEnvoy is a real Envoy (ENVOY_BIN) started from envoy/'s
	// bootstrap and fed by the Angzarr control plane over ADS.
	LaneEnvoy Lane = "envoy"
)

// envoyNode is the Envoy lane's node id: the counter domain's workload in
// laneTopology, so Envoy is the sidecar in front of the counter logic.
const envoyNode = "counter-proxy"

// laneTopology is the control plane's topology for the Envoy lane: the
// counter domain served by the logic at logic, its events in the event
// service at eventsvc, with the wasmhost lane's 64 retries and the
// counter's event type (Record stores only declared types).
func laneTopology(eventsvc, logic string) []byte {
	host, port, _ := net.SplitHostPort(logic)
	return fmt.Appendf(nil, `apiVersion: angzarr.io/v1alpha1
kind: Topology
eventService: {address: %q}
domains:
  - name: %s
    service: %s
    port: %s
    maxRetries: 64
    eventTypes: [%s]
    workloads: [{name: %s}]
`, eventsvc, counter.Domain, host, port, counter.EventType, envoyNode)
}

// checkEnvoyOptions fails the test when o sets what the Envoy lane cannot
// honour: it honours Filter, Logic, Logs and TracerProvider; the rest configure
// wasmhost, or the plugin configuration that the control plane writes in
// that lane.
func checkEnvoyOptions(t testing.TB, o Options) {
	t.Helper()
	rest := o
	rest.Lane, rest.Filter, rest.Logic, rest.Logs, rest.TracerProvider = "", "", nil, nil, nil
	if !reflect.ValueOf(rest).IsZero() {
		t.Fatalf("the Envoy lane takes its configuration from the control plane: only Filter, Logic, Logs and TracerProvider may be set, got %+v", rest)
	}
}

// CheckEnvoyLane generates and validates what the Envoy lane would use,
// in every run: the topology (decoded and translated by the control plane
// for the filter at wasm) and Envoy's bootstrap (envoytest.Bootstrap).
func CheckEnvoyLane(t testing.TB, wasm string) {
	t.Helper()
	topo, err := controlplane.DecodeTopology(laneTopology("127.0.0.1:1313", "127.0.0.1:50051"))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := controlplane.Translate(topo, controlplane.Options{WasmFile: wasm, IngressPort: 10000})
	if err != nil {
		t.Fatal(err)
	}
	if err := controlplane.VerifyTranslation(tr); err != nil {
		t.Fatal(err)
	}
	envoytest.Bootstrap(t, envoyNode, "127.0.0.1:18000", nil)
}

// startEnvoy runs the Envoy lane's proxy in front of s's logic: the
// control plane serving laneTopology, and Envoy (bin) fed by it. It
// returns the address of Envoy's ingress listener once Envoy is ready.
func (s *Stack) startEnvoy(t testing.TB, o Options, bin string, logger *slog.Logger) string {
	t.Helper()
	checkEnvoyOptions(t, o)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ingress := lis.Addr().(*net.TCPAddr).Port
	lis.Close() // Envoy listens there once the control plane named it
	topo := filepath.Join(t.TempDir(), "topology.yaml")
	if err := os.WriteFile(topo, laneTopology(s.EventSvc, s.Logic), 0o644); err != nil {
		t.Fatal(err)
	}
	cp, err := controlplane.New(controlplane.Config{
		Topology:     topo,
		Filter:       controlplane.Options{WasmFile: o.Filter, IngressPort: uint32(ingress)},
		PollInterval: time.Second,
		Logger:       logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	clis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cp.Serve(ctx, clis) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !strings.Contains(err.Error(), "closed") {
			t.Logf("control plane: %v", err)
		}
	})
	envoytest.Start(t, bin, envoytest.Bootstrap(t, envoyNode, clis.Addr().String(), nil))
	return fmt.Sprintf("127.0.0.1:%d", ingress)
}

// EachLane runs f on the wasmhost lane and on the Envoy lane. Without
// ENVOY_BIN the Envoy lane says it was skipped, after CheckEnvoyLane
// generated and validated what it would have used.
func EachLane(t *testing.T, wasm string, f func(t *testing.T, lane Lane)) {
	t.Run("wasmhost", func(t *testing.T) { f(t, LaneWasmhost) })
	t.Run("envoy", func(t *testing.T) {
		CheckEnvoyLane(t, wasm)
		if envoytest.Binary() == "" {
			t.Skip(envoytest.SkipMessage)
		}
		f(t, LaneEnvoy)
	})
}

// envoyBinary is ENVOY_BIN; a Stack in the Envoy lane needs it.
func envoyBinary(t testing.TB) string {
	t.Helper()
	bin := envoytest.Binary()
	if bin == "" {
		t.Fatal("the Envoy lane needs ENVOY_BIN (use EachLane, which skips the lane without it)")
	}
	return bin
}
