package controlplane

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	wasmfilter "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	"sigs.k8s.io/yaml"

	"github.com/angzarr-mesh/angzarr/controlplane/xdsclient"
	"github.com/angzarr-mesh/angzarr/filter/config"
	"github.com/angzarr-mesh/angzarr/proto/angzarr"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

const testWasmFile = "/etc/angzarr/filter.wasm"

// loadShop decodes the example shop topology.
func loadShop(t testing.TB) *Topology {
	t.Helper()
	raw, err := os.ReadFile("../examples/topology.yaml")
	if err != nil {
		t.Fatal(err)
	}
	top, err := DecodeTopology(raw)
	if err != nil {
		t.Fatal(err)
	}
	return top
}

// toYAML renders a message as YAML through protojson, with stable key order.
func toYAML(t testing.TB, m proto.Message) any {
	t.Helper()
	js, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(js, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// dumpSnapshot renders a snapshot as YAML: per type, its version and its
// resources sorted by name.
func dumpSnapshot(t testing.TB, s *cache.Snapshot) []byte {
	t.Helper()
	out := map[string]any{}
	for typ := range types.UnknownType {
		items := s.Resources[typ].Items
		if len(items) == 0 {
			continue
		}
		names := make([]string, 0, len(items))
		for n := range items {
			names = append(names, n)
		}
		sort.Strings(names)
		var list []any
		for _, n := range names {
			list = append(list, toYAML(t, items[n].Resource))
		}
		out[strings.ReplaceAll(typeName(typ), " ", "_")] = map[string]any{
			"version":   s.Resources[typ].Version,
			"resources": list,
		}
	}
	b, err := yaml.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// golden compares got with testdata/golden/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run `go test ./controlplane -run %s -update` to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file; if the change is intended run `go test ./controlplane -run %s -update`\n--- got ---\n%s", path, t.Name(), got)
	}
}

func classFile(c Class) string {
	d := c.Domain
	if d == "" {
		d = "none"
	}
	return string(c.Flavour) + "-" + d + ".yaml"
}

// TestTranslateShopGolden translates the example shop and compares every
// class of node, and the fan-out configuration, with golden files.
func TestTranslateShopGolden(t *testing.T) {
	for _, tc := range []struct {
		dir  string
		opts Options
	}{
		{"shop", Options{WasmFile: testWasmFile}},
		{"shop-remote-wasm", Options{
			WasmURL:     "https://artifacts.example.com:8443/angzarr/filter.wasm",
			WasmSHA256:  strings.Repeat("ab", 32),
			IngressPort: 8080,
		}},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			tr, err := Translate(loadShop(t), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyTranslation(tr); err != nil {
				t.Fatalf("the translation of the shop does not verify: %v", err)
			}
			// Istio and Envoy, without a domain and for each of the six,
			// for Envoy before 1.33, before 1.35 and after.
			if got, want := len(tr.Snapshots), 3*(2+2*6); got != want {
				t.Errorf("%d classes, want %d", got, want)
			}
			for _, c := range tr.Classes() {
				if c.NoHeaderHold {
					continue // TestOldEnvoyGetsNoHeaderHold
				}
				golden(t, filepath.Join(tc.dir, classFile(c)), dumpSnapshot(t, tr.Snapshots[c]))
			}
			fan, err := yaml.Marshal(toYAML(t, tr.Fanout))
			if err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join(tc.dir, "fanout.yaml"), fan)
		})
	}
}

// TestTranslateIsPure translates twice and expects identical versions; a
// change to one domain changes only the classes that depend on it.
func TestTranslateIsPure(t *testing.T) {
	o := Options{WasmFile: testWasmFile}
	a, err := Translate(loadShop(t), o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Translate(loadShop(t), o)
	if err != nil {
		t.Fatal(err)
	}
	if a.Version != b.Version {
		t.Fatalf("same topology, versions %s and %s", a.Version, b.Version)
	}
	changed := loadShop(t)
	d, _ := changed.domain("order")
	d.MaxRetries = 3
	c, err := Translate(changed, o)
	if err != nil {
		t.Fatal(err)
	}
	if c.Version == a.Version {
		t.Fatal("a changed topology kept its version")
	}
	for _, cl := range a.Classes() {
		va := a.Snapshots[cl].GetVersion(ecdsType)
		vc := c.Snapshots[cl].GetVersion(ecdsType)
		affected := cl.Domain == "order" || (cl.Flavour == FlavourEnvoy && cl.Domain == "")
		if affected == (va == vc) {
			t.Errorf("%s: ECDS version %s -> %s, affected by the order change: %v", cl, va, vc, affected)
		}
		if cds := a.Snapshots[cl].GetVersion(cdsType); cds != c.Snapshots[cl].GetVersion(cdsType) {
			t.Errorf("%s: clusters changed (%s) though only a filter setting did", cl, cds)
		}
	}
}

// TestCoordinatorAddress: a domain's coordinator address reaches the
// fan-out configuration, the standalone sidecars' clusters and the Istio
// plugin configuration; the gateway uses its internal listener.
func TestCoordinatorAddress(t *testing.T) {
	top := loadShop(t)
	d, _ := top.domain("customer")
	d.Coordinator = "customer-proxy.shop:10000"
	tr, err := Translate(top, Options{WasmFile: testWasmFile})
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyTranslation(tr); err != nil {
		t.Fatal(err)
	}
	var fan string
	for _, e := range tr.Fanout.GetDomains() {
		if e.GetDomain() == "customer" {
			fan = e.GetAddress()
		}
	}
	if fan != "customer-proxy.shop:10000" || len(tr.Fanout.GetDomains()) != len(top.Domains) {
		t.Fatalf("fan-out domains %v", tr.Fanout.GetDomains())
	}
	plugin := func(c Class) *config.Config {
		for _, r := range tr.Snapshots[c].Resources[types.ExtensionConfig].Items {
			f, err := xdsclient.DecodeFilter(r.Resource.(*core.TypedExtensionConfig))
			if err != nil {
				t.Fatal(err)
			}
			if f.Name == FilterName || f.Name == domainFilterName("order") {
				return f.Config
			}
		}
		t.Fatalf("%s: no order filter", c)
		return nil
	}
	for c, want := range map[Class]string{
		{Flavour: FlavourIstio, Domain: "order"}: "outbound|10000||customer-proxy.shop",
		{Flavour: FlavourEnvoy, Domain: "order"}: "angzarr-coordinator-customer",
		{Flavour: FlavourEnvoy, Domain: ""}:      "angzarr-domain-customer",
	} {
		pc := plugin(c)
		if got, _ := pc.Coordinator("customer"); got != want {
			t.Errorf("%s: customer coordinator %q, want %q", c, got, want)
		}
		if len(pc.Sagas) != 3 || len(pc.SyncProjectors) != 1 || pc.SyncProjectors[0].Name != "order-summary" {
			t.Errorf("%s: sagas %v, projectors %v", c, pc.Sagas, pc.SyncProjectors)
		}
	}
	cl := tr.Snapshots[Class{Flavour: FlavourEnvoy, Domain: "order"}].GetResources(cdsType)["angzarr-coordinator-customer"]
	sa := cl.(*cluster.Cluster).GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
	if sa.GetAddress() != "customer-proxy.shop" || sa.GetPortValue() != 10000 {
		t.Fatalf("coordinator cluster %v", sa)
	}
	// No saga or projector is fed by the cart, the checkout process
	// manager is: its CASCADE commands reach the order and inventory.
	if pc := plugin(Class{Flavour: FlavourIstio, Domain: "cart"}); len(pc.Sagas) != 0 || len(pc.SyncProjectors) != 0 ||
		len(pc.ProcessManagers) != 1 || pc.ProcessManagers[0].Name != "checkout" || len(pc.Coordinators) != 2 ||
		pc.Coordinators["order"] == "" || pc.Coordinators["inventory"] == "" {
		t.Fatalf("cart: %+v", pc)
	}
}

// TestCompensationFallback: a saga's compensationFallback and the event
// service's failureDomain reach the fan-out configuration; unset, they
// stay unset (the event service's defaults).
func TestCompensationFallback(t *testing.T) {
	top := loadShop(t)
	for i := range top.Sagas {
		if top.Sagas[i].Name == "cancellation" {
			top.Sagas[i].CompensationFallback = []string{"escalate", "dead-letter"}
		}
	}
	top.EventService.FailureDomain = "shop-failures"
	tr, err := Translate(top, Options{WasmFile: testWasmFile})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Fanout.GetFailureDomain() != "shop-failures" {
		t.Fatalf("failure domain %q", tr.Fanout.GetFailureDomain())
	}
	for _, s := range tr.Fanout.GetSubscriptions() {
		want := []angzarr.CompensationAction(nil)
		if s.GetName() == "cancellation" {
			want = []angzarr.CompensationAction{angzarr.CompensationAction_COMPENSATION_ACTION_ESCALATE, angzarr.CompensationAction_COMPENSATION_ACTION_DEAD_LETTER}
		}
		if !slices.Equal(s.GetCompensationFallback(), want) {
			t.Errorf("%s: compensation fallback %v, want %v", s.GetName(), s.GetCompensationFallback(), want)
		}
	}
}

// TestProcessManagerSubscription: a process manager reaches the fan-out
// configuration as a PROCESS_MANAGER subscription with its stream domain
// (default its name), sorted sources and targets, LATEST by default and
// its compensation fallback.
func TestProcessManagerSubscription(t *testing.T) {
	top := loadShop(t)
	top.ProcessManagers = append(top.ProcessManagers,
		ProcessManager{Name: "pay", Address: "pay.shop:50051", Sources: []string{"order", "cart", "inventory"}, Targets: []string{"order", "inventory"},
			CompensationFallback: []string{"escalate"}},
		ProcessManager{Name: "returns", Address: "returns.shop:50051", Domain: "returns-flow", Sources: []string{"order"}, Targets: []string{"order"}, StartPosition: StartEarliest})
	if err := top.Validate(); err != nil {
		t.Fatal(err)
	}
	tr, err := Translate(top, Options{WasmFile: testWasmFile})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*angzarr.Subscription{}
	for _, s := range tr.Fanout.GetSubscriptions() {
		got[s.GetName()] = s
	}
	pm := angzarr.SubscriberKind_SUBSCRIBER_KIND_PROCESS_MANAGER
	c, r := got["pay"], got["returns"]
	if c.GetKind() != pm || c.GetDomain() != "pay" || c.GetAddress() != "pay.shop:50051" ||
		!slices.Equal(c.GetSourceDomains(), []string{"cart", "inventory", "order"}) || !slices.Equal(c.GetTargetDomains(), []string{"inventory", "order"}) ||
		c.GetStartPosition() != angzarr.StartPosition_START_POSITION_LATEST ||
		!slices.Equal(c.GetCompensationFallback(), []angzarr.CompensationAction{angzarr.CompensationAction_COMPENSATION_ACTION_ESCALATE}) {
		t.Fatalf("pay: %v", c)
	}
	if r.GetKind() != pm || r.GetDomain() != "returns-flow" || r.GetStartPosition() != angzarr.StartPosition_START_POSITION_EARLIEST {
		t.Fatalf("returns: %v", r)
	}
}

// TestVerifyRejectsBrokenSnapshots breaks translated snapshots in the ways
// verification must catch and expects each to be reported.
func TestVerifyRejectsBrokenSnapshots(t *testing.T) {
	o := Options{WasmFile: testWasmFile}
	for _, tc := range []struct {
		name   string
		break_ func(tr *Translation)
		want   string
	}{
		{"plugin configuration the filter refuses", func(tr *Translation) {
			replaceECDS(t, tr, Class{Flavour: FlavourIstio, Domain: "order"}, `{"domains":["order","order"]}`)
		}, `duplicate domain "order"`},
		{"plugin configuration with an unknown key", func(tr *Translation) {
			replaceECDS(t, tr, Class{Flavour: FlavourEnvoy, Domain: "cart"}, `{"domains":["cart"],"bogus":1}`)
		}, `unknown field "bogus"`},
		{"cluster missing for the plugin configuration", func(tr *Translation) {
			s := tr.Snapshots[Class{Flavour: FlavourEnvoy, Domain: "cart"}]
			delete(s.Resources[types.Cluster].Items, ClusterEventService)
		}, `refers to cluster "angzarr-eventsvc"`},
		{"coordinator cluster missing for a saga target", func(tr *Translation) {
			s := tr.Snapshots[Class{Flavour: FlavourEnvoy, Domain: "order"}]
			delete(s.Resources[types.Cluster].Items, coordinatorCluster("customer"))
		}, `(coordinator of customer) refers to cluster "angzarr-coordinator-customer"`},
		{"route configuration missing", func(tr *Translation) {
			s := tr.Snapshots[Class{Flavour: FlavourEnvoy, Domain: "cart"}]
			delete(s.Resources[types.Route].Items, ListenerIngress)
		}, `mismatched`},
		{"extension config missing for a listener's filter", func(tr *Translation) {
			s := tr.Snapshots[Class{Flavour: FlavourEnvoy, Domain: ""}]
			delete(s.Resources[types.ExtensionConfig].Items, domainFilterName("order"))
		}, `filter "angzarr-filter-order" is discovered over ECDS`},
		{"invalid cluster inside the snapshot", func(tr *Translation) {
			s := tr.Snapshots[Class{Flavour: FlavourEnvoy, Domain: "order"}]
			cl := s.Resources[types.Cluster].Items[ClusterLogic].Resource
			c2 := proto.Clone(cl)
			s.Resources[types.Cluster].Items[ClusterLogic] = types.ResourceWithTTL{Resource: breakCluster(c2)}
		}, `ConnectTimeout`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := Translate(loadShop(t), o)
			if err != nil {
				t.Fatal(err)
			}
			tc.break_(tr)
			err = VerifyTranslation(tr)
			if err == nil {
				t.Fatal("verification passed")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

const (
	ecdsType = "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"
	cdsType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
)

// replaceECDS swaps the plugin configuration of the class's FilterName (or
// only) extension config for raw.
func replaceECDS(t *testing.T, tr *Translation, c Class, raw string) {
	t.Helper()
	s := tr.Snapshots[c]
	for name, r := range s.Resources[types.ExtensionConfig].Items {
		tec := proto.Clone(r.Resource).(*core.TypedExtensionConfig)
		w := &wasmfilter.Wasm{}
		if err := tec.GetTypedConfig().UnmarshalTo(w); err != nil {
			t.Fatal(err)
		}
		conf, err := anypb.New(wrapperspb.String(raw))
		if err != nil {
			t.Fatal(err)
		}
		w.Config.Configuration = conf
		if tec.TypedConfig, err = anypb.New(w); err != nil {
			t.Fatal(err)
		}
		s.Resources[types.ExtensionConfig].Items[name] = types.ResourceWithTTL{Resource: tec}
	}
}

// breakCluster gives a cluster a connect timeout Envoy refuses.
func breakCluster(m proto.Message) *cluster.Cluster {
	c := m.(*cluster.Cluster)
	c.ConnectTimeout = durationpb.New(-1)
	return c
}
