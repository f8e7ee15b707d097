//go:build !wasip1

package e2e

import (
	"testing"

	"github.com/angzarr-mesh/angzarr/filter/config"
	"github.com/angzarr-mesh/angzarr/wasmhost"
)

// Istio's names of the clusters the filter calls (not valid :authority
// values: Envoy's async gRPC client would send them as such).
const (
	istioEventService = "outbound|1313||angzarr-eventsvc.angzarr.svc.cluster.local"
	istioLogic        = "inbound|50051||"
)

// TestIstioClusterNames: under Istio's cluster names the filter's callouts
// carry the authorities of its configuration (envoy_grpc.authority), so
// the peer accepts them; wasmhost, like Envoy, would otherwise send the
// cluster name, which fails every Load and Append UNAVAILABLE.
func TestIstioClusterNames(t *testing.T) {
	s := Start(t, Options{Profile: wasmhost.WASIEnvoyCurrent, Filter: wasmPath, Config: config.Config{
		EventServiceCluster:  istioEventService,
		BusinessLogicCluster: istioLogic,
		Authorities: map[string]string{
			istioEventService: "angzarr-eventsvc.angzarr.svc.cluster.local",
			istioLogic:        "counter.default.svc.cluster.local",
		},
	}})
	cl := s.Coordinator()
	root := newRoot(t)
	if _, err := cl.Handle(ctxT(t), command(root, 0, 5)); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Handle(ctxT(t), command(root, 1, 2)); err != nil {
		t.Fatal(err)
	}
	if pages := stored(t, s, root); len(pages) != 2 || sum(t, pages) != 7 {
		t.Fatalf("stored %v", pages)
	}
}
