package controlplane

import (
	"slices"
	"strings"
	"testing"

	"github.com/angzarr-mesh/angzarr/controlplane/xdsclient"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	wasm "github.com/envoyproxy/go-control-plane/envoy/extensions/wasm/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/structpb"
	sigsyaml "sigs.k8s.io/yaml"
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
			Identity{Flavour: FlavourIstio, Namespace: "shop", Workload: "order", Domain: "order", Source: "workload"}},
		{"istio sidecar of an annotated workload", istioNode("invoice-1", "billing", "invoice", nil),
			Identity{Flavour: FlavourIstio, Namespace: "billing", Workload: "invoice", Domain: "invoice", Source: "workload"}},
		{"istio sidecar in another namespace", istioNode("order-1", "staging", "order", nil),
			Identity{Flavour: FlavourIstio, Namespace: "staging", Workload: "order", Domain: "", Source: ""}},
		{"istio sidecar without a domain", istioNode("web-1", "shop", "web", nil),
			Identity{Flavour: FlavourIstio, Namespace: "shop", Workload: "web", Domain: "", Source: ""}},
		{"explicit ISTIO_META_ANGZARR_DOMAIN", istioNode("web-1", "shop", "web", map[string]any{MetaDomain: "cart"}),
			Identity{Flavour: FlavourIstio, Namespace: "shop", Workload: "web", Domain: "cart", Source: "metadata"}},
		{"domain label", istioNode("web-1", "shop", "web", map[string]any{"LABELS": map[string]any{DomainAnnotation: "product"}}),
			Identity{Flavour: FlavourIstio, Namespace: "shop", Workload: "web", Domain: "product", Source: "label"}},
		{"istio node id only", &core.Node{Id: "sidecar~10.0.0.9~cart-abc.shop~shop.svc.cluster.local"},
			Identity{Flavour: FlavourIstio, Namespace: "shop", Workload: "", Domain: "", Source: ""}},
		{"standalone Envoy named after the workload", &core.Node{Id: "inventory"},
			Identity{Flavour: FlavourEnvoy, Namespace: "", Workload: "inventory", Domain: "inventory", Source: "workload"}},
		{"standalone Envoy with metadata", &core.Node{Id: "edge-1", Metadata: meta(map[string]any{MetaDomain: "cart"})},
			Identity{Flavour: FlavourEnvoy, Namespace: "", Workload: "edge-1", Domain: "cart", Source: "metadata"}},
		{"standalone gateway", &core.Node{Id: "edge-1"},
			Identity{Flavour: FlavourEnvoy, Namespace: "", Workload: "edge-1", Domain: "", Source: ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Identify(tc.node, idx); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestOldEnvoyGetsNoHeaderHold: Envoy before 1.35 ignores
// allow_on_headers_stop_iteration, so a filter holding a command's headers
// there would never see its body and the command would hang until its
// request timeout. Such a node (by the build version Envoy sends) gets the
// filter without the hold; 1.35 and later, and proxies that send no
// version (`angzarr proxy`), get it with the hold.
func TestOldEnvoyGetsNoHeaderHold(t *testing.T) {
	checkLeaks(t)
	tp := startPlane(t, shopYAML(t), nil)
	withEnvoy := func(n *core.Node, major, minor uint32) *core.Node {
		n.UserAgentName = "envoy"
		n.UserAgentVersionType = &core.Node_UserAgentBuildVersion{UserAgentBuildVersion: &core.BuildVersion{
			Version: &typev3.SemanticVersion{MajorNumber: major, MinorNumber: minor}}}
		return n
	}
	for _, tc := range []struct {
		name   string
		node   *core.Node
		hold   bool
		policy wasm.FailurePolicy
	}{
		{"Istio 1.24 (Envoy 1.32)", withEnvoy(istioNode("order-1", "shop", "order", nil), 1, 32), false, wasm.FailurePolicy_FAIL_CLOSED},
		{"Envoy 1.33", withEnvoy(istioNode("order-6", "shop", "order", nil), 1, 33), false, wasm.FailurePolicy_FAIL_RELOAD},
		{"Envoy 1.34", withEnvoy(istioNode("order-2", "shop", "order", nil), 1, 34), false, wasm.FailurePolicy_FAIL_RELOAD},
		{"Envoy 1.35", withEnvoy(istioNode("order-3", "shop", "order", nil), 1, 35), true, wasm.FailurePolicy_FAIL_RELOAD},
		{"Envoy 2.0", withEnvoy(istioNode("order-4", "shop", "order", nil), 2, 0), true, wasm.FailurePolicy_FAIL_RELOAD},
		{"no version", istioNode("order-5", "shop", "order", nil), true, wasm.FailurePolicy_FAIL_RELOAD},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := ecdsStream(t, tp.conn, tc.node)
			s.subscribe(resource.ExtensionConfigType, FilterName)
			r := s.next(resource.ExtensionConfigType, wait)
			tec := &core.TypedExtensionConfig{}
			if err := r.GetResources()[0].UnmarshalTo(tec); err != nil {
				t.Fatal(err)
			}
			f, err := xdsclient.DecodeFilter(tec)
			if err != nil {
				t.Fatal(err)
			}
			if f.Config.HoldRequestHeaders != tc.hold || f.AllowOnHeadersStopIteration != tc.hold {
				t.Errorf("hold_request_headers %v, allow_on_headers_stop_iteration %v; want both %v",
					f.Config.HoldRequestHeaders, f.AllowOnHeadersStopIteration, tc.hold)
			}
			// FAIL_RELOAD exists from Envoy 1.33 on; older ones fail closed.
			if f.FailurePolicy != tc.policy || (tc.policy == wasm.FailurePolicy_FAIL_RELOAD) != (f.ReloadBackoff == ReloadBackoff) {
				t.Errorf("failure policy %v, reload back-off %v; want %v", f.FailurePolicy, f.ReloadBackoff, tc.policy)
			}
			if !slices.Equal(f.Config.Domains, []string{"order"}) {
				t.Errorf("domains %v", f.Config.Domains)
			}
		})
	}
}

// TestWorkloadIngressPort: several standalone sidecars on one host (the
// local mesh's Envoy lane) each need their own ingress port; a workload
// entry's ingressPort gives its node that port, other nodes of the domain
// and the gateway keep the control plane's --ingress-port, and a port out
// of range is refused.
func TestWorkloadIngressPort(t *testing.T) {
	topo := loadShop(t)
	order, _ := topo.domain("order")
	order.Workloads = []WorkloadRef{{Name: "order"}, {Name: "order-proxy", IngressPort: 10101}}
	cart, _ := topo.domain("cart")
	cart.Workloads = []WorkloadRef{{Name: "cart-proxy", IngressPort: 10102}}
	tr, err := Translate(topo, Options{WasmFile: testWasmFile, IngressPort: 9000})
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyTranslation(tr); err != nil {
		t.Fatal(err)
	}
	idx := indexWorkloads(topo)
	for _, tc := range []struct {
		node   string
		domain string
		port   uint32
	}{
		{"order-proxy", "order", 10101},
		{"order", "order", 9000},
		{"cart-proxy", "cart", 10102},
		{"inventory", "inventory", 9000},
		{"gateway", "", 9000},
	} {
		id := Identify(&core.Node{Id: tc.node}, idx)
		if id.Domain != tc.domain {
			t.Errorf("%s: domain %q, want %q", tc.node, id.Domain, tc.domain)
		}
		s, ok := tr.Snapshots[id.Class()]
		if !ok {
			t.Fatalf("%s: no snapshot for class %s", tc.node, id.Class())
		}
		l := s.GetResources(resource.ListenerType)[ListenerIngress].(*listener.Listener)
		if got := l.GetAddress().GetSocketAddress().GetPortValue(); got != tc.port {
			t.Errorf("%s (class %s): ingress port %d, want %d", tc.node, id.Class(), got, tc.port)
		}
	}
	// An Istio sidecar of the same workload ignores the port: istiod owns
	// its listeners.
	if id := Identify(istioNode("order-proxy-1", "shop", "order-proxy", nil), idx); id.IngressPort != 0 || id.Domain != "order" {
		t.Errorf("istio sidecar: %+v", id)
	}

	order.Workloads[1].IngressPort = 70000
	if err := topo.Validate(); err == nil || !strings.Contains(err.Error(), "ingressPort") {
		t.Errorf("an ingress port of 70000 validated: %v", err)
	}
}

// TestWorkloadIngressPortOverADS: over a real ADS stream, a standalone
// sidecar whose workload entry sets ingressPort gets its ingress listener
// there, and the other sidecars of the domain the default port.
func TestWorkloadIngressPortOverADS(t *testing.T) {
	checkLeaks(t)
	topo := loadShop(t)
	order, _ := topo.domain("order")
	order.Workloads = []WorkloadRef{{Name: "order"}, {Name: "order-proxy", IngressPort: 10101}}
	raw, err := sigsyaml.Marshal(topo)
	if err != nil {
		t.Fatal(err)
	}
	tp := startPlane(t, raw, nil)
	for node, want := range map[string]uint32{"order-proxy": 10101, "order": DefaultIngressPort} {
		s := adsStream(t, tp.conn, &core.Node{Id: node})
		s.subscribe(resource.ListenerType)
		lds := s.next(resource.ListenerType, wait)
		found := false
		for _, a := range lds.GetResources() {
			l := &listener.Listener{}
			if err := a.UnmarshalTo(l); err != nil {
				t.Fatal(err)
			}
			if l.GetName() == ListenerIngress {
				found = true
				if got := l.GetAddress().GetSocketAddress().GetPortValue(); got != want {
					t.Errorf("node %s: ingress port %d, want %d", node, got, want)
				}
			}
		}
		if !found {
			t.Errorf("node %s: no ingress listener", node)
		}
	}
}
