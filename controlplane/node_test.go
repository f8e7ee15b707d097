package controlplane

import (
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// TestIdentify maps nodes of every kind to their workload and domain.
func TestIdentify(t *testing.T) {
	idx := indexWorkloads(mergeWorkloads(loadShop(t), []Workload{
		{Namespace: "billing", Name: "invoice", Domain: "invoice", Service: "invoice.billing", Port: 9000},
	}))
	meta := func(m map[string]any) *structpb.Struct {
		s, err := structpb.NewStruct(m)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, tc := range []struct {
		name string
		node *core.Node
		want Identity
	}{
		{"istio sidecar of a declared workload", istioNode("order-1", "shop", "order", nil),
			Identity{FlavourIstio, "shop", "order", "order", "workload"}},
		{"istio sidecar of an annotated workload", istioNode("invoice-1", "billing", "invoice", nil),
			Identity{FlavourIstio, "billing", "invoice", "invoice", "workload"}},
		{"istio sidecar in another namespace", istioNode("order-1", "staging", "order", nil),
			Identity{FlavourIstio, "staging", "order", "", ""}},
		{"istio sidecar without a domain", istioNode("web-1", "shop", "web", nil),
			Identity{FlavourIstio, "shop", "web", "", ""}},
		{"explicit ISTIO_META_ANGZARR_DOMAIN", istioNode("web-1", "shop", "web", map[string]any{MetaDomain: "cart"}),
			Identity{FlavourIstio, "shop", "web", "cart", "metadata"}},
		{"domain label", istioNode("web-1", "shop", "web", map[string]any{"LABELS": map[string]any{DomainAnnotation: "product"}}),
			Identity{FlavourIstio, "shop", "web", "product", "label"}},
		{"istio node id only", &core.Node{Id: "sidecar~10.0.0.9~cart-abc.shop~shop.svc.cluster.local"},
			Identity{FlavourIstio, "shop", "", "", ""}},
		{"standalone Envoy named after the workload", &core.Node{Id: "inventory"},
			Identity{FlavourEnvoy, "", "inventory", "inventory", "workload"}},
		{"standalone Envoy with metadata", &core.Node{Id: "edge-1", Metadata: meta(map[string]any{MetaDomain: "cart"})},
			Identity{FlavourEnvoy, "", "edge-1", "cart", "metadata"}},
		{"standalone gateway", &core.Node{Id: "edge-1"},
			Identity{FlavourEnvoy, "", "edge-1", "", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Identify(tc.node, idx); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
