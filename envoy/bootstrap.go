// Package envoy holds the bootstrap of a standalone Envoy fed by the
// control plane (bootstrap.yaml) and makes it for a given node and control
// plane address: the real-Envoy test lane runs Envoy with it, and every run
// decodes and validates it against Envoy's API.
package envoy

import (
	_ "embed"
	"errors"
	"fmt"
	"net"
	"strconv"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/bootstrap/internal_listener/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"
)

//go:embed bootstrap.yaml
var bootstrapYAML []byte

// Bootstrap decodes bootstrap.yaml strictly (YAML -> JSON -> protojson, no
// unknown fields) into Envoy's v3 Bootstrap.
func Bootstrap() (*bootstrapv3.Bootstrap, error) {
	js, err := yaml.YAMLToJSONStrict(bootstrapYAML)
	if err != nil {
		return nil, fmt.Errorf("bootstrap.yaml: %w", err)
	}
	b := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal(js, b); err != nil {
		return nil, fmt.Errorf("bootstrap.yaml is not an Envoy v3 Bootstrap: %w", err)
	}
	return b, nil
}

// BootstrapFor is bootstrap.yaml for node id node, its ADS cluster pointed
// at the control plane at xds (HOST:PORT) and its admin on 127.0.0.1:admin
// (0: a port Envoy picks; run it with --admin-address-path to learn it),
// as JSON for `envoy -c`. The result is decoded back strictly and checked
// with validate (controlplane.ValidateDeep in the tests).
func BootstrapFor(node, xds string, admin int, validate func(*bootstrapv3.Bootstrap) error) ([]byte, error) {
	b, err := Bootstrap()
	if err != nil {
		return nil, err
	}
	host, portText, err := net.SplitHostPort(xds)
	if err != nil {
		return nil, fmt.Errorf("control plane address %q: %w", xds, err)
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("control plane port %q: %w", portText, err)
	}
	b.Node.Id = node
	adminAddr := b.GetAdmin().GetAddress().GetSocketAddress()
	if adminAddr == nil {
		return nil, errors.New("bootstrap.yaml: no admin socket address")
	}
	adminAddr.PortSpecifier = portValue(uint32(admin))
	ads := b.GetDynamicResources().GetAdsConfig().GetGrpcServices()
	if len(ads) != 1 || ads[0].GetEnvoyGrpc() == nil {
		return nil, errors.New("bootstrap.yaml: ADS is not one envoy_grpc service")
	}
	found := false
	for _, c := range b.GetStaticResources().GetClusters() {
		if c.GetName() != ads[0].GetEnvoyGrpc().GetClusterName() {
			continue
		}
		sa := c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
		sa.Address = host
		sa.PortSpecifier = portValue(uint32(port))
		found = true
	}
	if !found {
		return nil, errors.New("bootstrap.yaml: no static cluster for ADS")
	}
	js, err := protojson.Marshal(b)
	if err != nil {
		return nil, err
	}
	back := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal(js, back); err != nil {
		return nil, fmt.Errorf("generated bootstrap: %w", err)
	}
	if validate != nil {
		if err := validate(back); err != nil {
			return nil, fmt.Errorf("generated bootstrap: %w", err)
		}
	}
	return js, nil
}

func portValue(p uint32) *core.SocketAddress_PortValue {
	return &core.SocketAddress_PortValue{PortValue: p}
}
