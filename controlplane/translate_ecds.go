package controlplane

import (
	"encoding/json"
	"fmt"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	wasmfilter "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	wasm "github.com/envoyproxy/go-control-plane/envoy/extensions/wasm/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/angzarr-mesh/angzarr/filter/config"
)

// WasmTypeURL is the type URL of the Wasm HTTP filter's configuration, the
// only type the ECDS config_discovery of the filter accepts.
const WasmTypeURL = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"

// pluginConfig is the filter's plugin configuration for a workload serving
// domain ("" for pass-through), naming the clusters it calls out to.
func pluginConfig(t *Topology, domain, eventCluster, logicCluster string) *config.Config {
	c := &config.Config{
		EventServiceCluster:  eventCluster,
		BusinessLogicCluster: logicCluster,
		MaxRetries:           t.Defaults.MaxRetries,
		EventServiceTimeout:  t.Defaults.EventServiceTimeout,
		BusinessLogicTimeout: t.Defaults.BusinessLogicTimeout,
		MaxBodyBytes:         t.Defaults.MaxBodyBytes,
	}
	if d, ok := t.domain(domain); ok {
		c.Domains = []string{d.Name}
		if d.MaxRetries != 0 {
			c.MaxRetries = d.MaxRetries
		}
		if d.BusinessLogicTimeout != 0 {
			c.BusinessLogicTimeout = d.BusinessLogicTimeout
		}
	}
	return c
}

// istioFilter is the ECDS resource for an Istio sidecar of a workload
// serving domain ("" for pass-through). Istio names the clusters.
func istioFilter(t *Topology, o Options, domain string) (*core.TypedExtensionConfig, error) {
	host, port := splitAddress(t.EventService.Address)
	logic := ""
	if d, ok := t.domain(domain); ok {
		logic = istioInbound(uint32(d.Port))
	}
	wasmCluster := ""
	if o.WasmURL != "" {
		h, p, _ := urlHostPort(o.WasmURL)
		wasmCluster = istioOutbound(h, p)
	}
	return wasmExtension(FilterName, o, wasmCluster, pluginConfig(t, domain, istioOutbound(host, port), logic))
}

// sidecarFilter is the ECDS resource for a standalone Envoy or `angzarr
// proxy` beside the business logic of d.
func sidecarFilter(t *Topology, o Options, d *Domain) (*core.TypedExtensionConfig, error) {
	return wasmExtension(FilterName, o, ClusterWasmSource, pluginConfig(t, d.Name, ClusterEventService, ClusterLogic))
}

// gatewayFilter is the ECDS resource of d's internal listener on a
// standalone Envoy that fronts every domain.
func gatewayFilter(t *Topology, o Options, d *Domain) (*core.TypedExtensionConfig, error) {
	return wasmExtension(domainFilterName(d.Name), o, ClusterWasmSource, pluginConfig(t, d.Name, ClusterEventService, domainLogicCluster(d.Name)))
}

// wasmExtension packs the Wasm filter (module, fail-closed policy, plugin
// configuration as JSON) into a TypedExtensionConfig named name.
func wasmExtension(name string, o Options, wasmCluster string, pc *config.Config) (*core.TypedExtensionConfig, error) {
	js, err := json.Marshal(pc)
	if err != nil {
		return nil, fmt.Errorf("plugin configuration: %w", err)
	}
	conf, err := anypb.New(wrapperspb.String(string(js)))
	if err != nil {
		return nil, err
	}
	code := &core.AsyncDataSource{}
	if o.WasmURL != "" {
		code.Specifier = &core.AsyncDataSource_Remote{Remote: &core.RemoteDataSource{
			HttpUri: &core.HttpUri{
				Uri:              o.WasmURL,
				HttpUpstreamType: &core.HttpUri_Cluster{Cluster: wasmCluster},
				Timeout:          durationpb.New(30e9),
			},
			Sha256: o.WasmSHA256,
		}}
	} else {
		code.Specifier = &core.AsyncDataSource_Local{Local: &core.DataSource{
			Specifier: &core.DataSource_Filename{Filename: o.WasmFile},
		}}
	}
	w := &wasmfilter.Wasm{Config: &wasm.PluginConfig{
		Name:   name,
		RootId: "angzarr",
		Vm: &wasm.PluginConfig_VmConfig{VmConfig: &wasm.VmConfig{
			VmId:    "angzarr",
			Runtime: WasmRuntime,
			Code:    code,
		}},
		Configuration: conf,
		FailurePolicy: wasm.FailurePolicy_FAIL_CLOSED,
	}}
	typed, err := anypb.New(w)
	if err != nil {
		return nil, err
	}
	return &core.TypedExtensionConfig{Name: name, TypedConfig: typed}, nil
}
