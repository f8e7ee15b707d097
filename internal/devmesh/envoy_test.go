package devmesh

import (
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/encoding/protojson"
)

// TestEnvoyBootstraps: a mesh whose proxies are real Envoys gives each
// domain's Envoy a bootstrap with the domain as node id and ADS from the
// mesh's control plane, and its own ingress port (EnvoyBootstraps checks
// what the control plane would serve each node). It refuses a secure mesh
// (the control plane gives standalone Envoys no TLS) and a mesh that runs
// its own proxies. Envoy itself cannot run here.
func TestEnvoyBootstraps(t *testing.T) {
	cfg := Config{BasePort: 41000, Insecure: true, EnvoyProxies: true, Filter: "/opt/angzarr/filter.wasm"}
	bs, err := cfg.EnvoyBootstraps()
	if err != nil {
		t.Fatal(err)
	}
	var domains []string
	for _, s := range cfg.withDefaults().plan() {
		if s.kind == kindProxy {
			domains = append(domains, s.domain)
		}
	}
	if len(bs) != len(domains) || len(domains) < 6 {
		t.Fatalf("%d bootstraps for the proxies of %v", len(bs), domains)
	}
	for _, d := range domains {
		b := &bootstrapv3.Bootstrap{}
		if err := protojson.Unmarshal(bs[d], b); err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		sa := b.GetStaticResources().GetClusters()[0].GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
		if b.GetNode().GetId() != d || sa.GetAddress() != "127.0.0.1" || sa.GetPortValue() != 41001 {
			t.Errorf("%s: node %q, control plane %s:%d; want node %q, 127.0.0.1:41001", d, b.GetNode().GetId(), sa.GetAddress(), sa.GetPortValue(), d)
		}
	}
	topo := cfg.withDefaults().topology(cfg.withDefaults().plan())
	for _, d := range topo.Domains {
		if len(d.Workloads) != 1 || d.Workloads[0].Name != d.Name || d.Workloads[0].IngressPort < 41010 || d.Workloads[0].IngressPort >= 41020 {
			t.Errorf("domain %s: workloads %+v, want its proxy's node with the proxy's port", d.Name, d.Workloads)
		}
	}

	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"secure mesh", Config{BasePort: 41000, EnvoyProxies: true}, "insecure"},
		{"wasmhost proxies", Config{BasePort: 41000, Insecure: true}, "EnvoyProxies is not set"},
	} {
		if _, err := tc.cfg.EnvoyBootstraps(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one saying %q", tc.name, err, tc.want)
		}
	}
}
