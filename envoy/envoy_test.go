// Package envoy_test checks envoy/bootstrap.yaml against Envoy's own API:
// decoded strictly (YAML -> JSON -> protojson) into the v3 Bootstrap,
// ValidateAll-clean including every message packed in an Any, its ADS
// cluster pointing at the control plane's default port, and the resources
// the control plane serves this node consistent with it. Envoy itself is
// not installable here; this is what proves the bootstrap.
package envoy_test

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/bootstrap/internal_listener/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/angzarr-mesh/angzarr/controlplane"
	"github.com/angzarr-mesh/angzarr/examples/go/shop"
)

func loadBootstrap(t *testing.T) *bootstrapv3.Bootstrap {
	t.Helper()
	raw, err := os.ReadFile("bootstrap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSONStrict(raw)
	if err != nil {
		t.Fatal(err)
	}
	b := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal(js, b); err != nil {
		t.Fatalf("bootstrap.yaml is not an Envoy v3 Bootstrap: %v", err)
	}
	return b
}

// TestBootstrapIsValid decodes and validates the bootstrap.
func TestBootstrapIsValid(t *testing.T) {
	if err := controlplane.ValidateDeep(loadBootstrap(t)); err != nil {
		t.Error(err)
	}
}

// TestBootstrapPointsAtTheControlPlane: ADS goes to a static cluster at the
// control plane's default port; CDS and LDS come over ADS.
func TestBootstrapPointsAtTheControlPlane(t *testing.T) {
	b := loadBootstrap(t)
	dr := b.GetDynamicResources()
	if dr.GetCdsConfig().GetAds() == nil || dr.GetLdsConfig().GetAds() == nil {
		t.Error("CDS and LDS must come over ADS")
	}
	gs := dr.GetAdsConfig().GetGrpcServices()
	if len(gs) != 1 || gs[0].GetEnvoyGrpc() == nil {
		t.Fatalf("ADS services %v", gs)
	}
	name := gs[0].GetEnvoyGrpc().GetClusterName()
	_, port, _ := strings.Cut(controlplane.DefaultListen, ":")
	found := false
	for _, c := range b.GetStaticResources().GetClusters() {
		if c.GetName() != name {
			continue
		}
		found = true
		sa := c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
		if got := sa.GetPortValue(); strings.TrimSpace(port) != "" && fmt.Sprint(got) != port {
			t.Errorf("ADS cluster port %d, control plane default %s", got, port)
		}
		if c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"] == nil {
			t.Error("the ADS cluster must speak HTTP/2 (gRPC)")
		}
	}
	if !found {
		t.Errorf("no static cluster %q", name)
	}
}

// TestServedConfigFitsTheBootstrap: for this bootstrap's node, the control
// plane serves a gateway whose internal listeners need the internal
// listener extension, which the bootstrap enables; and the served
// resources verify.
func TestServedConfigFitsTheBootstrap(t *testing.T) {
	b := loadBootstrap(t)
	raw, err := os.ReadFile("../examples/topology.yaml")
	if err != nil {
		t.Fatal(err)
	}
	top, err := controlplane.DecodeTopology(raw)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := controlplane.Translate(top, controlplane.Options{WasmFile: "/etc/angzarr/filter.wasm"})
	if err != nil {
		t.Fatal(err)
	}
	if err := controlplane.VerifyTranslation(tr); err != nil {
		t.Fatal(err)
	}
	class := controlplane.ClassOf(b.GetNode(), top)
	if class.Flavour != controlplane.FlavourEnvoy || class.Domain != "" {
		t.Fatalf("the bootstrap's node is %v, want a standalone gateway", class)
	}
	internal := false
	for _, r := range tr.Snapshots[class].Resources[types.Listener].Items {
		if r.Resource.(*listener.Listener).GetInternalListener() != nil {
			internal = true
		}
	}
	enabled := false
	for _, e := range b.GetBootstrapExtensions() {
		if e.GetName() == "envoy.bootstrap.internal_listener" {
			enabled = true
		}
	}
	if internal && !enabled {
		t.Error("the gateway uses internal listeners but the bootstrap does not enable them")
	}
}

// TestLocalTopology: topology-local.yaml decodes and puts every shop
// component on the port `shop --component all --listen 127.0.0.1:50051`
// gives it, with the same subscriptions.
func TestLocalTopology(t *testing.T) {
	raw, err := os.ReadFile("topology-local.yaml")
	if err != nil {
		t.Fatal(err)
	}
	top, err := controlplane.DecodeTopology(raw)
	if err != nil {
		t.Fatal(err)
	}
	addr := map[string]string{}
	subs := map[string][]string{}
	for _, d := range top.Domains {
		addr["logic:"+d.Name] = fmt.Sprintf("%s:%d", d.Service, d.Port)
		for _, u := range d.Upcasters {
			addr[fmt.Sprintf("upcaster:%s %v", d.Name, u.Types)] = u.Address
		}
	}
	for _, s := range top.Sagas {
		addr["saga:"+s.Name] = s.Address
		subs["saga:"+s.Name] = append(slices.Clone(s.Sources), s.Targets...)
	}
	for _, p := range top.Projectors {
		addr["projector:"+p.Name] = p.Address
		subs["projector:"+p.Name] = p.Domains
	}
	for _, p := range top.ProcessManagers {
		addr["process-manager:"+p.Name] = p.Address
		subs["process-manager:"+p.Name] = append(slices.Clone(p.Sources), p.Targets...)
	}
	for i, c := range shop.All() {
		ref := c.Ref()
		if c.Kind == shop.Upcaster {
			ref = fmt.Sprintf("upcaster:%s %v", c.Domain, c.Upcasts) // the topology lists it under its domain
		}
		if want := fmt.Sprintf("127.0.0.1:%d", 50051+i); addr[ref] != want {
			t.Errorf("%s at %q, the shop binary serves it on %s", ref, addr[ref], want)
		}
		if c.Kind != shop.Logic && c.Kind != shop.Upcaster && !slices.Equal(subs[ref], append(slices.Clone(c.Subscribes), c.Targets...)) {
			t.Errorf("%s: topology %v, component %v + %v", ref, subs[ref], c.Subscribes, c.Targets)
		}
	}
}

// TestCIRecipes: the CI jobs for users' CI are YAML and run the lanes that
// exist (controlplane's TestRealEnvoyLane and filter/e2e's TestCommandPath,
// which read ENVOY_BIN through envoytest); they cannot run here.
func TestCIRecipes(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"ci/real-envoy-lane.yml", "-run 'TestRealEnvoyLane'"},
		{"ci/real-envoy-lane.yml", "-run 'TestCommandPath$' -v ./filter/e2e"},
		{"ci/real-envoy-lane.yml", "ENVOY_BIN="},
		{"ci/real-envoy-lane.yml", "-run 'TestCompletedOrderEarnsLoyaltyPointsAndShipsExactlyOnce$' -v ./internal/shope2e"},
		{"../istio/ci/kind-istio-shop.yml", "kubectl apply -f istio/shop.yaml"},
	} {
		raw, err := os.ReadFile(tc.file)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := yaml.UnmarshalStrict(raw, &doc); err != nil {
			t.Errorf("%s: %v", tc.file, err)
		}
		if doc["jobs"] == nil || !strings.Contains(string(raw), tc.want) {
			t.Errorf("%s: no jobs, or %q missing", tc.file, tc.want)
		}
	}
	for file, want := range map[string][]string{
		"../controlplane/envoy_lane_test.go": {"func TestRealEnvoyLane(", "envoytest.Binary()"},
		"../filter/e2e/e2e_test.go":          {"func TestCommandPath(", "EachLane("},
		"../filter/e2e/lane.go":              {"envoytest.Binary()"},
		"envoytest/envoytest.go":             {`os.Getenv(EnvBin)`, `EnvBin = "ENVOY_BIN"`},
		"../internal/shope2e/saga_test.go":   {"func TestCompletedOrderEarnsLoyaltyPointsAndShipsExactlyOnce(", "eachLane("},
		"../internal/shope2e/lane_test.go":   {"envoytest.Binary()", "envoytest.Start("},
	} {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if !strings.Contains(string(src), w) {
				t.Errorf("%s lacks %q: a lane the recipe runs is gone", file, w)
			}
		}
	}
}
