package envoytest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/angzarr-mesh/angzarr/controlplane"
	"github.com/angzarr-mesh/angzarr/envoy"
	"github.com/angzarr-mesh/angzarr/internal/identity"
)

// TestWaitReady: the lane waits for Envoy's admin address file and for its
// /ready to answer 200 (503 while the listeners warm), and gives up with
// the context. An HTTP server stands in for Envoy's admin, which cannot run
// here.
func TestWaitReady(t *testing.T) {
	var calls, readyAfter atomic.Int32
	readyAfter.Store(3)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ready" {
			http.NotFound(w, r)
			return
		}
		if calls.Add(1) <= readyAfter.Load() {
			http.Error(w, "PRE_INITIALIZING", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("LIVE\n"))
	}))
	defer srv.Close()
	path := filepath.Join(t.TempDir(), "admin")
	go func() {
		time.Sleep(100 * time.Millisecond) // Envoy writes the file once its admin listens
		_ = os.WriteFile(path, []byte(strings.TrimPrefix(srv.URL, "http://")+"\n"), 0o644)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addr, err := waitReady(ctx, path)
	if err != nil || addr != strings.TrimPrefix(srv.URL, "http://") || calls.Load() != 4 {
		t.Fatalf("waitReady = %q, %v after %d calls; want the admin address after the 4th", addr, err, calls.Load())
	}

	readyAfter.Store(1 << 30) // never ready
	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := waitReady(ctx, path); err == nil {
		t.Fatal("waitReady returned for an Envoy that never became ready")
	}
}

// TestBootstrapMTLS: with the node's mTLS material (files of the local
// mesh's CA) the bootstrap's control plane cluster speaks mTLS: the node's
// certificate and key, the CA, the control plane's SPIFFE ID as the URI
// SAN it must present, ALPN h2; strictly validated against Envoy's API.
// Material Envoy would refuse at start-up, or a server ID that is not a
// SPIFFE ID, is refused here.
func TestBootstrapMTLS(t *testing.T) {
	dir := t.TempDir()
	ca, err := identity.NewCA("angzarr.dev", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(ca *identity.CA, dir, sa string) identity.Config {
		is, err := ca.Issue("angzarr-dev", sa, time.Time{}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		c, err := ca.WriteFiles(dir, sa, is)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	node := issue(ca, dir, "order")
	other := issue(ca, dir, "cart")
	const server = "spiffe://angzarr.dev/ns/angzarr-dev/sa/angzarr-controlplane"
	files := &envoy.XDSTLS{CertFile: node.CertFile, KeyFile: node.KeyFile, CAFile: node.CAFile, ServerID: server}

	js := Bootstrap(t, "order", "127.0.0.1:18000", files)
	b := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal(js, b); err != nil {
		t.Fatal(err)
	}
	cs := b.GetStaticResources().GetClusters()
	if len(cs) != 1 {
		t.Fatalf("%d static clusters, want the control plane's", len(cs))
	}
	ts := cs[0].GetTransportSocket()
	utc := &tlsv3.UpstreamTlsContext{}
	if ts.GetName() != "envoy.transport_sockets.tls" || ts.GetTypedConfig().UnmarshalTo(utc) != nil {
		t.Fatalf("control plane cluster: transport socket %v, want TLS", ts)
	}
	ctc := utc.GetCommonTlsContext()
	cert := ctc.GetTlsCertificates()
	vc := ctc.GetValidationContext()
	sans := vc.GetMatchTypedSubjectAltNames()
	if len(cert) != 1 || cert[0].GetCertificateChain().GetFilename() != node.CertFile || cert[0].GetPrivateKey().GetFilename() != node.KeyFile ||
		vc.GetTrustedCa().GetFilename() != node.CAFile || len(sans) != 1 || sans[0].GetSanType() != tlsv3.SubjectAltNameMatcher_URI ||
		sans[0].GetMatcher().GetExact() != server || !slices.Equal(ctc.GetAlpnProtocols(), []string{"h2"}) {
		t.Errorf("control plane cluster's TLS: %v", utc)
	}
	if plain := Bootstrap(t, "order", "127.0.0.1:18000", nil); strings.Contains(string(plain), "transport_socket") || strings.Contains(string(plain), "transportSocket") {
		t.Errorf("a plaintext bootstrap has a transport socket: %s", plain)
	}

	otherCA, err := identity.NewCA("angzarr.dev", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	foreign := issue(otherCA, t.TempDir(), "order")
	for _, tc := range []struct {
		name string
		edit func(x *envoy.XDSTLS)
		want string
	}{
		{"another certificate's key", func(x *envoy.XDSTLS) { x.KeyFile = other.KeyFile }, "node certificate"},
		{"a certificate of another CA", func(x *envoy.XDSTLS) { x.CertFile, x.KeyFile = foreign.CertFile, foreign.KeyFile }, "not a client certificate of the CA"},
		{"no CA file", func(x *envoy.XDSTLS) { x.CAFile = filepath.Join(dir, "missing.crt") }, "CA"},
		{"a CA file without a certificate", func(x *envoy.XDSTLS) { x.CAFile = node.KeyFile }, "no PEM certificate"},
		{"a server ID that is not SPIFFE", func(x *envoy.XDSTLS) { x.ServerID = "angzarr-controlplane" }, "not a SPIFFE ID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := *files
			tc.edit(&x)
			_, err := envoy.BootstrapFor("order", "127.0.0.1:18000", 0, &x, func(b *bootstrapv3.Bootstrap) error { return controlplane.ValidateDeep(b) })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one saying %q", err, tc.want)
			}
		})
	}
}
