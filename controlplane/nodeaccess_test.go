package controlplane

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/angzarr-mesh/angzarr/internal/identity"
)

// TestNodeBoundToCertificate: over mTLS a proxy receives only the
// configuration its certificate may have, whatever node id or metadata it
// claims; refusals are PERMISSION_DENIED and counted. Real certificates
// from a test CA, a real gRPC xDS server.
func TestNodeBoundToCertificate(t *testing.T) {
	dir := t.TempDir()
	ca, err := identity.NewCA(DefaultTrustDomain, time.Hour) // the shop's trust domain
	if err != nil {
		t.Fatal(err)
	}
	creds := func(ns, sa string) *identity.Files {
		is, err := ca.Issue(ns, sa, time.Time{}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		c, err := ca.WriteFiles(filepath.Join(dir, ns+"-"+sa), sa, is)
		if err != nil {
			t.Fatal(err)
		}
		f, err := identity.LoadFiles(c.CertFile, c.KeyFile, c.CAFile, "")
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	cpIs, err := ca.Issue("angzarr-system", "angzarr-controlplane", time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	cpCfg, err := ca.WriteFiles(filepath.Join(dir, "cp"), "cp", cpIs)
	if err != nil {
		t.Fatal(err)
	}
	customer := creds("shop", "customer")
	topo := strings.Replace(string(shopYAML(t)), "  proxies: true\n", "  proxies: true\n  gateways: [spiffe://cluster.local/ns/edge/sa/gateway]\n", 1)
	if !strings.Contains(topo, "gateways:") {
		t.Fatal("the example topology has no identity.proxies line to add gateways after")
	}
	tp := startPlaneWith(t, []byte(topo), nil, cpCfg, identity.DialOption(customer, identity.ID{}))
	conn := func(f *identity.Files) *grpc.ClientConn {
		cc, err := grpc.NewClient(tp.addr, identity.DialOption(f, identity.ID{}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return cc
	}
	customerConn := conn(customer)
	node := func(id string, meta map[string]any) *core.Node {
		md, err := structpb.NewStruct(meta)
		if err != nil {
			t.Fatal(err)
		}
		return &core.Node{Id: id, Metadata: md}
	}
	// ask opens an ADS stream, sends the requests in order and returns
	// the first response or the stream's error.
	ask := func(cc *grpc.ClientConn, reqs ...*discovery.DiscoveryRequest) (*discovery.DiscoveryResponse, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
		if err != nil {
			return nil, err
		}
		var resp *discovery.DiscoveryResponse
		for i, r := range reqs {
			if err := s.Send(r); err != nil {
				break // the error comes with Recv
			}
			if resp, err = s.Recv(); err != nil {
				return nil, err
			}
			if i == len(reqs)-1 {
				return resp, nil
			}
		}
		_, err = s.Recv()
		return nil, err
	}
	cds := func(n *core.Node) *discovery.DiscoveryRequest {
		return &discovery.DiscoveryRequest{Node: n, TypeUrl: resource.ClusterType}
	}
	wantDenied := func(t *testing.T, err error, frag string) {
		t.Helper()
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(status.Convert(err).Message(), frag) {
			t.Fatalf("got %v, want PERMISSION_DENIED with %q", err, frag)
		}
	}

	t.Run("the domain's own certificate gets its configuration", func(t *testing.T) {
		resp, err := ask(customerConn, cds(node("customer", nil)))
		if err != nil || len(resp.GetResources()) == 0 {
			t.Fatalf("CDS for the customer's proxy: %v, %v", resp, err)
		}
	})
	t.Run("another domain's node id is refused", func(t *testing.T) {
		_, err := ask(customerConn, cds(node("order", nil)))
		wantDenied(t, err, `spiffe://cluster.local/ns/shop/sa/customer may not receive the configuration of node "order" of domain "order" (rule: domains[order].identities)`)
	})
	t.Run("another domain claimed in the metadata is refused", func(t *testing.T) {
		_, err := ask(customerConn, cds(node("customer-2", map[string]any{MetaDomain: "order"})))
		wantDenied(t, err, `of domain "order"`)
	})
	t.Run("a domain the topology lacks is refused", func(t *testing.T) {
		_, err := ask(customerConn, cds(node("customer-3", map[string]any{MetaDomain: "billing"})))
		wantDenied(t, err, `claims domain "billing", which the topology lacks`)
	})
	t.Run("a gateway's configuration needs identity.gateways", func(t *testing.T) {
		_, err := ask(customerConn, cds(node("edge", nil)))
		wantDenied(t, err, `may not receive the configuration of gateway node "edge" (rule: identity.gateways)`)
		resp, err := ask(conn(creds("edge", "gateway")), cds(node("edge", nil)))
		if err != nil || len(resp.GetResources()) == 0 {
			t.Fatalf("CDS for the gateway: %v, %v", resp, err)
		}
	})
	t.Run("a stream may not change its node", func(t *testing.T) {
		_, err := ask(customerConn, cds(node("customer", nil)), &discovery.DiscoveryRequest{Node: node("order", nil), TypeUrl: resource.ListenerType})
		wantDenied(t, err, `the stream's node id is "customer", not "order"`)
	})
	t.Run("a node id belongs to the identity that connected it", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		held, err := discovery.NewAggregatedDiscoveryServiceClient(customerConn).StreamAggregatedResources(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := held.Send(cds(node("customer", nil))); err != nil {
			t.Fatal(err)
		}
		if _, err := held.Recv(); err != nil {
			t.Fatal(err)
		}
		// An admin-like certificate of the mesh that is no customer
		// writer: refused for the node id, whatever it claims.
		_, err = ask(conn(creds("shop", "order")), cds(node("customer", map[string]any{MetaDomain: "order"})))
		wantDenied(t, err, `node id "customer" is connected as spiffe://cluster.local/ns/shop/sa/customer, not spiffe://cluster.local/ns/shop/sa/order`)
	})
	t.Run("the fan-out configuration is the event service's", func(t *testing.T) {
		fan := &discovery.DiscoveryRequest{Node: node("angzarr-eventsvc", nil), TypeUrl: FanoutTypeURL, ResourceNames: []string{FanoutName}}
		_, err := ask(customerConn, fan)
		wantDenied(t, err, "may not receive the fan-out configuration")
		resp, err := ask(conn(creds("angzarr-system", "angzarr-eventsvc")), fan)
		if err != nil || len(resp.GetResources()) != 1 {
			t.Fatalf("the event service's fan-out configuration: %v, %v", resp, err)
		}
	})
	t.Run("Fetch is decided as a stream's request", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := clusterservice.NewClusterDiscoveryServiceClient(customerConn).FetchClusters(ctx, cds(node("order", nil)))
		wantDenied(t, err, `node "order" of domain "order"`)
	})
	if got := tp.metricSum(t, "angzarr.controlplane.xds.denied", ""); got != 8 {
		t.Errorf("angzarr.controlplane.xds.denied = %d, want 8", got)
	}
	if got := tp.metricSum(t, "angzarr.controlplane.xds.denied", "reason=node_id"); got != 2 {
		t.Errorf("angzarr.controlplane.xds.denied{reason=node_id} = %d, want 2", got)
	}
}

// TestNodeAccessBeforeTopology: over mTLS, before a first topology there
// is nothing to serve and no rule to decide by: UNAVAILABLE, so the client
// reconnects later; plaintext streams wait as they always did.
func TestNodeAccessBeforeTopology(t *testing.T) {
	p := newPublisher(slog.New(slog.DiscardHandler), Options{WasmFile: testWasmFile}, mustMetrics(t), tracenoop.NewTracerProvider().Tracer(""))
	c := caller{tls: true, id: "spiffe://cluster.local/ns/shop/sa/customer"}
	err := p.streamRequest(context.Background(), 1, c, resource.ClusterType, &core.Node{Id: "customer"})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("before a topology: %v", err)
	}
	if err := p.streamRequest(context.Background(), 2, caller{}, resource.ClusterType, &core.Node{Id: "customer"}); err != nil {
		t.Fatalf("plaintext before a topology: %v", err)
	}
}
