// Package envoytest runs a real Envoy for the test suites' Envoy lane:
// bootstrap from envoy/bootstrap.yaml (node and control plane filled in),
// everything else from the Angzarr control plane over ADS, readiness from
// Envoy's admin /ready. The lane runs when ENVOY_BIN names an envoy binary
// (the CI job in envoy/ci/real-envoy-lane.yml sets it). Envoy cannot be
// installed on the development machines: there a suite says the lane was
// skipped, but generates and strictly validates the bootstrap it would
// have used (Bootstrap) in every run.
package envoytest

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/angzarr-mesh/angzarr/controlplane"
	"github.com/angzarr-mesh/angzarr/envoy"
)

// EnvBin is the environment variable naming the envoy binary.
const EnvBin = "ENVOY_BIN"

// Binary is the envoy binary of the lane, or "" when ENVOY_BIN is unset
// (the caller then skips the lane, saying so).
func Binary() string { return os.Getenv(EnvBin) }

// SkipMessage is what a suite says when it skips the Envoy lane.
const SkipMessage = "real-Envoy lane skipped: ENVOY_BIN is not set (the bootstrap it would use was generated and validated against Envoy's API)"

// Bootstrap is the bootstrap of node's Envoy fed by the control plane at
// xds (HOST:PORT) over mTLS with tlsFiles (nil: plaintext), admin on a
// port Envoy picks: generated from
// envoy/bootstrap.yaml, decoded back strictly and validated against
// Envoy's API (controlplane.ValidateDeep, every Any included). It fails
// the test when any of that fails.
func Bootstrap(t testing.TB, node, xds string, tlsFiles *envoy.XDSTLS) []byte {
	t.Helper()
	js, err := envoy.BootstrapFor(node, xds, 0, tlsFiles, func(b *bootstrapv3.Bootstrap) error { return controlplane.ValidateDeep(b) })
	if err != nil {
		t.Fatal(err)
	}
	b := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal(js, b); err != nil {
		t.Fatal(err)
	}
	if b.GetNode().GetId() != node {
		t.Fatalf("generated bootstrap: node %q, want %q", b.GetNode().GetId(), node)
	}
	return js
}

// Envoy is a running envoy process.
type Envoy struct {
	// Admin is its admin address (HOST:PORT).
	Admin string
}

// Start runs bin with bootstrap (from Bootstrap) until the test ends and
// returns once its admin /ready answers 200: its listeners, with the ECDS
// filter, are warm. Envoy's log is reported when the test failed.
func Start(t testing.TB, bin string, bootstrap []byte) *Envoy {
	t.Helper()
	dir := t.TempDir()
	cfg, adminPath, logPath := filepath.Join(dir, "bootstrap.json"), filepath.Join(dir, "admin"), filepath.Join(dir, "envoy.log")
	if err := os.WriteFile(cfg, bootstrap, 0o644); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", cfg, "--admin-address-path", adminPath,
		"--use-dynamic-base-id", "--concurrency", "2", "-l", "warning")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
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
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin, err := waitReady(ctx, adminPath)
	if err != nil {
		t.Fatal(err)
	}
	return &Envoy{Admin: admin}
}

// waitReady waits (bounded by ctx) for Envoy to write its admin address and
// for the admin's /ready to answer 200.
func waitReady(ctx context.Context, adminPath string) (string, error) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if raw, err := os.ReadFile(adminPath); err == nil {
			if addr := strings.TrimSpace(string(raw)); addr != "" {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/ready", nil)
				if err != nil {
					return "", err
				}
				if resp, err := http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						return addr, nil
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return "", errors.New("envoy did not become ready (admin /ready) before the deadline")
		case <-tick.C:
		}
	}
}
