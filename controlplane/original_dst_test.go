package controlplane_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/angzarr-mesh/angzarr/controlplane"
	"github.com/angzarr-mesh/angzarr/controlplane/xdsclient"
	"github.com/angzarr-mesh/angzarr/eventsvc/eventsvctest"
	"github.com/angzarr-mesh/angzarr/examples/go/shop"
	"github.com/angzarr-mesh/angzarr/internal/testutil"
	"github.com/angzarr-mesh/angzarr/internal/wasmbuild"
	"github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// istioInbound is an ORIGINAL_DST cluster the way Istio builds
// inbound|<port>|| in its default passthrough mode.
func istioInbound(name string) *cluster.Cluster {
	return &cluster.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_ORIGINAL_DST},
		LbPolicy:             cluster.Cluster_CLUSTER_PROVIDED,
		ConnectTimeout:       durationpb.New(10 * time.Second),
	}
}

// TestProxyMapsOriginalDstClustersOverXDS: the control plane (or istiod)
// may send ORIGINAL_DST clusters. `angzarr proxy --xds` models them as
// wasmhost does (OriginalDst: a callout finds no host), leaves out one
// that takes its host from a request header (not modelled), and NACKs,
// keeping the previous configuration, what Envoy refuses: an ORIGINAL_DST
// cluster with another LB policy or with endpoints
// (OriginalDstClusterFactory::createClusterImpl), and a business logic
// cluster that is ORIGINAL_DST (nothing redirects connections to this
// proxy, so it has no original destination). The resources are the real
// translation of a topology plus those clusters, served by
// go-control-plane's ADS server over gRPC to the real proxy (wasmhost and
// the filter .wasm), which keeps serving commands throughout.
func TestProxyMapsOriginalDstClustersOverXDS(t *testing.T) {
	wasm := wasmbuild.Filter(t)
	es := eventsvctest.Start(t, "sqlite:"+filepath.Join(t.TempDir(), "events.db"))
	cart, err := shop.Lookup("cart")
	if err != nil {
		t.Fatal(err)
	}
	llis := listen(t)
	serve(t, func(ctx context.Context) error { return shop.Serve(ctx, llis, cart) })
	topo, err := controlplane.DecodeTopology([]byte(e2eTopology(es, llis.Addr().String(), 0)))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := controlplane.Translate(topo, controlplane.Options{WasmFile: wasm})
	if err != nil {
		t.Fatal(err)
	}
	base := tr.Snapshots[controlplane.Class{Flavour: controlplane.FlavourEnvoy, Domain: "cart"}]
	if base == nil {
		t.Fatalf("no snapshot for the cart sidecar among %v", tr.Classes())
	}
	// snapshot is base with extra clusters (replacing those of the same
	// name).
	snapshot := func(version string, extra ...*cluster.Cluster) *cache.Snapshot {
		t.Helper()
		res := map[resource.Type][]types.Resource{}
		for _, typ := range []resource.Type{resource.ClusterType, resource.ListenerType, resource.RouteType, resource.ExtensionConfigType} {
			for name, r := range base.GetResources(typ) {
				if typ == resource.ClusterType && replaced(name, extra) {
					continue
				}
				res[typ] = append(res[typ], r)
			}
		}
		for _, c := range extra {
			res[resource.ClusterType] = append(res[resource.ClusterType], c)
		}
		s, err := cache.NewSnapshot(version, res)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	const node = "cart-proxy"
	snapshots := cache.NewSnapshotCache(true, cache.IDHash{}, nil)
	nacks := make(chan string, 16)
	cb := serverv3.CallbackFuncs{StreamRequestFunc: func(_ int64, r *discoverygrpc.DiscoveryRequest) error {
		if r.GetErrorDetail() != nil && r.GetTypeUrl() == resource.ClusterType {
			select { // the server answers a NACK with the same snapshot again: keep the latest few
			case nacks <- r.GetErrorDetail().GetMessage():
			default:
			}
		}
		return nil
	}}
	gs := grpc.NewServer()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(gs, serverv3.NewServer(ctx, snapshots, cb))
	xlis := listen(t)
	go func() { _ = gs.Serve(xlis) }()
	t.Cleanup(gs.Stop)

	headerDst := istioInbound("inbound|9090||")
	headerDst.LbConfig = &cluster.Cluster_OriginalDstLbConfig_{OriginalDstLbConfig: &cluster.Cluster_OriginalDstLbConfig{UseHttpHeader: true}}
	if err := snapshots.SetSnapshot(ctx, node, snapshot("v1", istioInbound("inbound|50051||"), headerDst)); err != nil {
		t.Fatal(err)
	}
	paddr, applied := startProxy(t, xlis.Addr().String(), node)
	first := nextApplied(t, applied)
	if got := first.Clusters["inbound|50051||"]; got != xdsclient.OriginalDst {
		t.Errorf("inbound|50051|| maps to %q, want %q", got, xdsclient.OriginalDst)
	}
	if got, ok := first.Clusters["inbound|9090||"]; ok {
		t.Errorf("the header-routed ORIGINAL_DST cluster maps to %q, want it left out", got)
	}
	pconn, err := grpc.NewClient(paddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pconn.Close() })
	coord := angzarr.NewBusinessCoordinatorClient(pconn)
	command := func(when string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := coord.Handle(ctx, createCart(t)); err != nil {
			t.Fatalf("a command %s: %v", when, err)
		}
	}
	command("with the ORIGINAL_DST clusters")

	roundRobin := istioInbound("inbound|50051||")
	roundRobin.LbPolicy = cluster.Cluster_ROUND_ROBIN
	withEndpoints := istioInbound("inbound|50051||")
	withEndpoints.LoadAssignment = base.GetResources(resource.ClusterType)[controlplane.ClusterLogic].(*cluster.Cluster).GetLoadAssignment()
	logic := istioInbound(controlplane.ClusterLogic)
	for i, tc := range []struct {
		c    *cluster.Cluster
		nack string
	}{
		{roundRobin, "Only 'CLUSTER_PROVIDED' is allowed with cluster type 'ORIGINAL_DST'"},
		{withEndpoints, "ORIGINAL_DST clusters must have no load assignment configured"},
		{logic, "cluster angzarr-logic is ORIGINAL_DST"},
	} {
		if tc.c.LoadAssignment != nil && tc.c.LoadAssignment.ClusterName == "" {
			t.Fatal("the logic cluster has no load assignment to copy")
		}
		if err := snapshots.SetSnapshot(ctx, node, snapshot("bad"+string(rune('0'+i)), proto.Clone(tc.c).(*cluster.Cluster))); err != nil {
			t.Fatal(err)
		}
		for nacked := false; !nacked; {
			select {
			case msg := <-nacks:
				nacked = strings.Contains(msg, tc.nack)
			case <-testutil.Deadline(t):
				t.Fatalf("no NACK saying %q", tc.nack)
			}
		}
		command("after a NACKed update (" + tc.nack + ")")
		// A good update ends the NACKs (go-control-plane's snapshot cache
		// answers each NACK with the same snapshot again).
		if err := snapshots.SetSnapshot(ctx, node, snapshot("good"+string(rune('0'+i)), istioInbound("inbound|50051||"))); err != nil {
			t.Fatal(err)
		}
		waitApplied(t, applied, func(pc xdsclient.ProxyConfig) bool { return pc.ClustersVersion == "good"+string(rune('0'+i)) })
	}
}

func replaced(name string, extra []*cluster.Cluster) bool {
	for _, c := range extra {
		if c.GetName() == name {
			return true
		}
	}
	return false
}
