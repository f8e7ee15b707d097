package controlplane

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	wasmfilter "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	wasm "github.com/envoyproxy/go-control-plane/envoy/extensions/wasm/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/angzarr-mesh/angzarr/filter/config"
)

// clusterNames names, for one flavour of node, the clusters the filter
// calls a projector, a saga and a domain's coordinator through.
type clusterNames struct {
	projector   func(p *Projector) string
	saga        func(s *Saga) string
	coordinator func(d *Domain) string
}

// pluginConfig is the filter's plugin configuration for a workload serving
// domain ("" for pass-through), naming the clusters it calls out to: the
// event service, the logic, and for the sync modes the domain's
// synchronous projectors, the sagas and process managers fed by it and
// the coordinators of their target domains (the domains its CASCADE commands reach directly;
// each of those domains' filters has the coordinators of the next hop).
func pluginConfig(t *Topology, domain, eventCluster, logicCluster string, names clusterNames) *config.Config {
	c := &config.Config{
		EventServiceCluster:  eventCluster,
		BusinessLogicCluster: logicCluster,
		MaxRetries:           t.Defaults.MaxRetries,
		EventServiceTimeout:  t.Defaults.EventServiceTimeout,
		BusinessLogicTimeout: t.Defaults.BusinessLogicTimeout,
		MaxBodyBytes:         t.Defaults.MaxBodyBytes,
		SnapshotEvery:        t.Defaults.SnapshotEvery,
	}
	d, ok := t.domain(domain)
	if !ok {
		return c
	}
	c.Domains = []string{d.Name}
	if d.MaxRetries != 0 {
		c.MaxRetries = d.MaxRetries
	}
	if d.BusinessLogicTimeout != 0 {
		c.BusinessLogicTimeout = d.BusinessLogicTimeout
	}
	if d.SnapshotEvery != 0 {
		c.SnapshotEvery = d.SnapshotEvery
	}
	for i := range t.Projectors {
		p := &t.Projectors[i]
		if p.Synchronous && slices.Contains(p.Domains, d.Name) {
			c.SyncProjectors = append(c.SyncProjectors, config.Projector{Name: p.Name, Cluster: names.projector(p)})
		}
	}
	for i := range t.Sagas {
		s := &t.Sagas[i]
		if !slices.Contains(s.Sources, d.Name) {
			continue
		}
		c.Sagas = append(c.Sagas, config.Saga{Name: s.Name, Cluster: names.saga(s), Targets: sorted(s.Targets)})
		for _, target := range s.Targets {
			if td, ok := t.domain(target); ok {
				if c.Coordinators == nil {
					c.Coordinators = map[string]string{}
				}
				c.Coordinators[target] = names.coordinator(td)
			}
		}
	}
	for i := range t.ProcessManagers {
		pm := &t.ProcessManagers[i]
		if !slices.Contains(pm.Sources, d.Name) {
			continue
		}
		// The event service runs the step (on EventServiceCluster); the
		// filter executes its commands through the targets' coordinators.
		c.ProcessManagers = append(c.ProcessManagers, config.ProcessManager{Name: pm.Name, Targets: sorted(pm.Targets)})
		for _, target := range pm.Targets {
			if td, ok := t.domain(target); ok {
				if c.Coordinators == nil {
					c.Coordinators = map[string]string{}
				}
				c.Coordinators[target] = names.coordinator(td)
			}
		}
	}
	if len(d.EventTypes) > 0 {
		c.EventTypes = map[string][]string{d.Name: sorted(d.EventTypes)}
	}
	callerIdentity(t, d, c)
	return c
}

// istioNames: Istio's outbound clusters of the subscribers' and the
// domains' services (a domain's service reaches its pod's inbound sidecar,
// which runs that domain's filter).
var istioNames = clusterNames{
	projector:   func(p *Projector) string { return istioOutbound(splitAddress(p.Address)) },
	saga:        func(s *Saga) string { return istioOutbound(splitAddress(s.Address)) },
	coordinator: func(d *Domain) string { return istioOutbound(d.coordinator()) },
}

// sidecarNames: the clusters the control plane serves a standalone sidecar
// (a coordinator is Domain.Coordinator: the other domain's proxy).
var sidecarNames = clusterNames{
	projector:   func(p *Projector) string { return projectorCluster(p.Name) },
	saga:        func(s *Saga) string { return sagaCluster(s.Name) },
	coordinator: func(d *Domain) string { return coordinatorCluster(d.Name) },
}

// gatewayNames: on a gateway a coordinator is the domain's internal
// listener, where its filter runs.
var gatewayNames = clusterNames{
	projector:   sidecarNames.projector,
	saga:        sidecarNames.saga,
	coordinator: func(d *Domain) string { return domainListener(d.Name) },
}

// istioFilter is the ECDS resource for an Istio sidecar of a workload
// serving domain ("" for pass-through). Istio names the clusters.
func istioFilter(t *Topology, o Options, domain string) (*core.TypedExtensionConfig, error) {
	host, port := splitAddress(t.EventService.Address)
	logic := ""
	if d, ok := t.domain(domain); ok {
		logic = IstioLogicCluster(uint32(d.Port))
	}
	wasmCluster := ""
	if o.WasmURL != "" {
		h, p, _ := urlHostPort(o.WasmURL)
		wasmCluster = istioOutbound(h, p)
	}
	pc := pluginConfig(t, domain, istioOutbound(host, port), logic, istioNames)
	self := ""
	if d, ok := t.domain(domain); ok {
		self = d.Service
	}
	istioAuthorities(pc, self)
	return wasmExtension(FilterName, o, wasmCluster, pc)
}

// istioAuthorities gives every cluster the filter calls the :authority
// of its calls. Envoy's async gRPC client sends the cluster name unless the
// GrpcService's envoy_grpc.authority is set (source/common/grpc/
// async_client_impl.cc), and the callee's sidecar refuses the `|` of
// Istio's names (istio/istio#27918). An outbound cluster
// ("outbound|port||host") gets its Service's host name; the inbound
// cluster of the workload's own logic gets the workload's Service (self).
func istioAuthorities(pc *config.Config, self string) {
	add := func(cluster string) {
		if cluster == "" || config.ValidAuthority(cluster) {
			return
		}
		parts := strings.Split(cluster, "|")
		host := self
		if len(parts) == 4 && parts[0] == "outbound" && parts[3] != "" {
			host = parts[3]
		}
		if host == "" {
			return // Validate reports it
		}
		if pc.Authorities == nil {
			pc.Authorities = map[string]string{}
		}
		pc.Authorities[cluster] = host
	}
	add(pc.EventServiceCluster)
	add(pc.BusinessLogicCluster)
	for _, p := range pc.SyncProjectors {
		add(p.Cluster)
	}
	for _, s := range pc.Sagas {
		add(s.Cluster)
	}
	for _, c := range pc.Coordinators {
		add(c)
	}
}

// sidecarFilter is the ECDS resource for a standalone Envoy or `angzarr
// proxy` beside the business logic of d.
func sidecarFilter(t *Topology, o Options, d *Domain) (*core.TypedExtensionConfig, error) {
	return wasmExtension(FilterName, o, ClusterWasmSource, pluginConfig(t, d.Name, ClusterEventService, ClusterLogic, sidecarNames))
}

// gatewayFilter is the ECDS resource of d's internal listener on a
// standalone Envoy that fronts every domain.
func gatewayFilter(t *Topology, o Options, d *Domain) (*core.TypedExtensionConfig, error) {
	return wasmExtension(domainFilterName(d.Name), o, ClusterWasmSource, pluginConfig(t, d.Name, ClusterEventService, domainLogicCluster(d.Name), gatewayNames))
}

// ReloadBackoff is the base interval of the filter's FAIL_RELOAD back-off
// (Envoy's default); it doubles up to ten times that while reloading fails.
const ReloadBackoff = time.Second

// wasmExtension packs the Wasm filter (module, failure policy, plugin
// configuration as JSON, header hold) into a TypedExtensionConfig named
// name.
func wasmExtension(name string, o Options, wasmCluster string, pc *config.Config) (*core.TypedExtensionConfig, error) {
	pc.HoldRequestHeaders = !o.ReleaseRequestHeaders
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
	// A VM that fails (a trap, the Go runtime's fatal error) is reloaded
	// after a back-off (FAIL_RELOAD, Envoy >= 1.33; until the reload the
	// worker's requests fail, 503). FAIL_CLOSED, all older Envoys have,
	// would leave that worker's plugin failed, failing every request it
	// takes, until the next configuration push.
	failurePolicy, reload := wasm.FailurePolicy_FAIL_RELOAD, &wasm.ReloadConfig{Backoff: &core.BackoffStrategy{
		BaseInterval: durationpb.New(ReloadBackoff), MaxInterval: durationpb.New(10 * ReloadBackoff)}}
	if o.failClosed {
		failurePolicy, reload = wasm.FailurePolicy_FAIL_CLOSED, nil
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
		FailurePolicy: failurePolicy,
		ReloadConfig:  reload,
		// The filter's body callbacks go on while it holds the request
		// headers (Envoy >= 1.35; see Options.ReleaseRequestHeaders).
		AllowOnHeadersStopIteration: wrapperspb.Bool(!o.ReleaseRequestHeaders),
	}}
	typed, err := anypb.New(w)
	if err != nil {
		return nil, err
	}
	return &core.TypedExtensionConfig{Name: name, TypedConfig: typed}, nil
}
