package devmesh

import (
	"errors"
	"fmt"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"sigs.k8s.io/yaml"

	"github.com/angzarr-mesh/angzarr/controlplane"
	"github.com/angzarr-mesh/angzarr/envoy"
)

// EnvoyBootstraps is, by domain, the bootstrap of the real Envoy that
// serves as the domain's proxy in the mesh c with EnvoyProxies:
// envoy/bootstrap.yaml with the domain as node id and ADS from the mesh's
// control plane (plaintext: EnvoyProxies needs Insecure), its admin on a
// port Envoy picks. It checks, as far as that is possible without Envoy,
// that the Envoys would serve the mesh: the generated topology decodes,
// translates and verifies; each proxy's node is identified as its domain's
// sidecar and gets its ingress listener on the proxy's port (not one port
// for all six); and each bootstrap is decoded back strictly and validated
// against Envoy's API (controlplane.ValidateDeep, every Any included).
func (c Config) EnvoyBootstraps() (map[string][]byte, error) {
	c = c.withDefaults()
	if !c.EnvoyProxies {
		return nil, errors.New("bootstraps of Envoy proxies: the mesh runs its own proxies (EnvoyProxies is not set)")
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	plan := c.plan()
	raw, err := yaml.Marshal(c.topology(plan))
	if err != nil {
		return nil, err
	}
	topo, err := controlplane.DecodeTopology(raw)
	if err != nil {
		return nil, fmt.Errorf("generated topology: %w", err)
	}
	tr, err := controlplane.Translate(topo, controlplane.Options{WasmFile: c.Filter})
	if err != nil {
		return nil, fmt.Errorf("generated topology: %w", err)
	}
	if err := controlplane.VerifyTranslation(tr); err != nil {
		return nil, fmt.Errorf("generated topology: %w", err)
	}
	var xds string
	for _, s := range plan {
		if s.kind == kindControlPlane {
			xds = s.addr(c.Host)
		}
	}
	validate := func(b *bootstrapv3.Bootstrap) error { return controlplane.ValidateDeep(b) }
	out := map[string][]byte{}
	for _, s := range plan {
		if s.kind != kindProxy {
			continue
		}
		class := controlplane.ClassOf(&core.Node{Id: s.domain}, topo)
		if class.Domain != s.domain {
			return nil, fmt.Errorf("%s: node %q would serve domain %q", s.name, s.domain, class.Domain)
		}
		snap, ok := tr.Snapshots[class]
		if !ok {
			return nil, fmt.Errorf("%s: no configuration for class %s", s.name, class)
		}
		l, _ := snap.GetResources(resource.ListenerType)[controlplane.ListenerIngress].(*listener.Listener)
		if got := l.GetAddress().GetSocketAddress().GetPortValue(); got != uint32(s.port) {
			return nil, fmt.Errorf("%s: the control plane would give its Envoy the ingress port %d, not its own %d", s.name, got, s.port)
		}
		js, err := envoy.BootstrapFor(s.domain, xds, 0, nil, validate)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		out[s.domain] = js
	}
	return out, nil
}
