package identity

import (
	"context"
	"crypto/tls"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// whoami is a health server that records the caller's identity.
type whoami struct {
	healthpb.UnimplementedHealthServer
	ids chan string
}

func (w *whoami) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	id, err := FromPeer(ctx)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	w.ids <- id.String()
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

// issue writes a certificate for ns/sa issued by ca under dir/name.
func issue(t *testing.T, ca *CA, dir, name, ns, sa string, notBefore, notAfter time.Time) Config {
	t.Helper()
	is, err := ca.Issue(ns, sa, notBefore, notAfter)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.WriteFiles(filepath.Join(dir, name), name, is)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newCA(t *testing.T, td string) *CA {
	t.Helper()
	ca, err := NewCA(td, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func load(t *testing.T, c Config) *Files {
	t.Helper()
	f, err := c.Load("test", nil)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// serve starts a gRPC server with the identity in c on 127.0.0.1:0.
func serve(t *testing.T, c Config) (string, *whoami) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(ServerOption(load(t, c)))
	w := &whoami{ids: make(chan string, 16)}
	healthpb.RegisterHealthServer(g, w)
	go g.Serve(lis) //nolint:errcheck // ends with Stop
	t.Cleanup(g.Stop)
	return lis.Addr().String(), w
}

// call makes one call with the client identity dial.
func call(t *testing.T, addr string, dial grpc.DialOption) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cc, err := grpc.NewClient(addr, dial)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	_, err = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

// attacker dials with the certificate in c and trusts any server, so that
// only the server's checks can refuse the call.
func attacker(t *testing.T, c Config) grpc.DialOption {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	return grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true}))
}

func TestMTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, "angzarr.test")
	srv := issue(t, ca, dir, "server", "angzarr-system", "angzarr-eventsvc", time.Time{}, time.Time{})
	addr, w := serve(t, srv)
	client := issue(t, ca, dir, "client", "shop", "customer", time.Time{}, time.Time{})
	serverID, _ := New("angzarr.test", "angzarr-system", "angzarr-eventsvc")

	t.Run("same trust domain is accepted and identified", func(t *testing.T) {
		if err := call(t, addr, DialOption(load(t, client), serverID)); err != nil {
			t.Fatal(err)
		}
		if got := <-w.ids; got != "spiffe://angzarr.test/ns/shop/sa/customer" {
			t.Fatalf("caller %q", got)
		}
	})
	t.Run("plaintext client is refused", func(t *testing.T) {
		if err := call(t, addr, grpc.WithTransportCredentials(insecure.NewCredentials())); status.Code(err) != codes.Unavailable {
			t.Fatalf("plaintext call: %v", err)
		}
	})
	t.Run("other trust domain is refused", func(t *testing.T) {
		other := newCA(t, "evil.test")
		c := issue(t, other, dir, "evil", "shop", "customer", time.Time{}, time.Time{})
		if err := call(t, addr, attacker(t, c)); status.Code(err) != codes.Unavailable {
			t.Fatalf("foreign trust domain: %v", err)
		}
	})
	t.Run("certificate of the right trust domain from another CA is refused", func(t *testing.T) {
		rogue := newCA(t, "angzarr.test")
		c := issue(t, rogue, dir, "rogue", "shop", "customer", time.Time{}, time.Time{})
		if err := call(t, addr, attacker(t, c)); status.Code(err) != codes.Unavailable {
			t.Fatalf("rogue CA: %v", err)
		}
	})
	t.Run("expired certificate is refused", func(t *testing.T) {
		c := issue(t, ca, dir, "expired", "shop", "customer", time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour))
		if err := call(t, addr, attacker(t, c)); status.Code(err) != codes.Unavailable {
			t.Fatalf("expired: %v", err)
		}
	})
	t.Run("client refuses a server that is not the expected one", func(t *testing.T) {
		want, _ := New("angzarr.test", "angzarr-system", "angzarr-controlplane")
		if err := call(t, addr, DialOption(load(t, client), want)); status.Code(err) != codes.Unavailable {
			t.Fatalf("wrong server: %v", err)
		}
	})
}

// TestRotation changes the files under a running server: a CA removed from
// the bundle revokes every certificate it issued, a new one is accepted,
// all without a restart.
func TestRotation(t *testing.T) {
	dir := t.TempDir()
	oldCA := newCA(t, "angzarr.test")
	srv := issue(t, oldCA, dir, "server", "angzarr-system", "angzarr-eventsvc", time.Time{}, time.Time{})
	addr, w := serve(t, srv)
	client := issue(t, oldCA, dir, "client", "shop", "customer", time.Time{}, time.Time{})
	if err := call(t, addr, DialOption(load(t, client), ID{})); err != nil {
		t.Fatal(err)
	}
	<-w.ids

	// Rotate: the server gets a certificate of the new CA and trusts only it.
	newCA := newCA(t, "angzarr.test")
	is, err := newCA.Issue("angzarr-system", "angzarr-eventsvc", time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newCA.WriteFiles(filepath.Dir(srv.CertFile), "server", is); err != nil {
		t.Fatal(err)
	}

	// A client of the old CA is now refused.
	if err := call(t, addr, attacker(t, client)); status.Code(err) != codes.Unavailable {
		t.Fatalf("certificate of a removed CA: %v", err)
	}
	// Its reissued certificate is accepted.
	fresh := issue(t, newCA, dir, "fresh", "shop", "customer", time.Time{}, time.Time{})
	if err := call(t, addr, DialOption(load(t, fresh), ID{})); err != nil {
		t.Fatal(err)
	}
	if got := <-w.ids; !strings.HasSuffix(got, "/ns/shop/sa/customer") {
		t.Fatalf("caller %q", got)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err == nil || !strings.Contains(err.Error(), "--insecure") {
		t.Fatalf("empty config: %v", err)
	}
	if err := (Config{Insecure: true, CertFile: "x"}).Validate(); err == nil {
		t.Fatal("insecure with files accepted")
	}
	if err := (Config{Insecure: true}).Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFiles("/nonexistent/c", "/nonexistent/k", "/nonexistent/ca", ""); err == nil {
		t.Fatal("missing files accepted")
	}
}
