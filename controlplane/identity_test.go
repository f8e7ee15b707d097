package controlplane

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/angzarr-mesh/angzarr/internal/identity"
	"github.com/angzarr-mesh/angzarr/internal/testutil"
)

// TestXDSOverMTLS: with an identity the control plane serves xDS over
// mTLS and refuses plaintext clients (the verification of client
// certificates itself is internal/identity's, tested there).
func TestXDSOverMTLS(t *testing.T) {
	dir := t.TempDir()
	issue := func(ca *identity.CA, name, ns, sa string) identity.Config {
		is, err := ca.Issue(ns, sa, time.Time{}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		c, err := ca.WriteFiles(filepath.Join(dir, name), name, is)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ca, err := identity.NewCA("angzarr.test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	topo := filepath.Join(dir, "topology.yaml")
	if err := os.WriteFile(topo, shopYAML(t), 0o644); err != nil {
		t.Fatal(err)
	}
	cp, err := New(Config{Topology: topo, Filter: Options{WasmFile: "/filter.wasm"}, Logger: slog.New(slog.DiscardHandler),
		Identity: issue(ca, "cp", "angzarr-system", "angzarr-controlplane")})
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
	t.Cleanup(func() { cancel(); <-done })

	check := func(dial grpc.DialOption) error {
		cc, err := grpc.NewClient(lis.Addr().String(), dial)
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		resp, err := healthpb.NewHealthClient(cc).Check(cctx, &healthpb.HealthCheckRequest{})
		if err == nil && resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return status.Error(codes.Unknown, "not serving yet")
		}
		return err
	}
	load := func(c identity.Config) *identity.Files {
		f, err := identity.LoadFiles(c.CertFile, c.KeyFile, c.CAFile, "")
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	member := load(issue(ca, "proxy", "shop", "customer"))
	testutil.Eventually(t, "xDS served over mTLS", func() bool { return check(identity.DialOption(member, identity.ID{})) == nil })

	if err := check(grpc.WithTransportCredentials(insecure.NewCredentials())); status.Code(err) != codes.Unavailable {
		t.Fatalf("plaintext client: %v", err)
	}
}
