// Package xdsclient is what takes configuration from the Angzarr control
// plane over ADS: ProxyClient for `angzarr proxy --xds` (the Wasm filter
// over ECDS, its clusters, the ingress listener's timeouts), FanoutClient
// for the event service's fan-out configuration, and DecodeFilter, which
// unpacks the filter an ECDS resource carries the way a proxy applies it.
// It also names the resources the control plane serves, which the server
// (package controlplane) and its clients share. Clients import this
// package, not the server.
package xdsclient

// Names of the resources the control plane serves. The ECDS resource name
// equals the filter name in the listener (or in Istio's EnvoyFilter).
const (
	// FilterName is the Wasm filter's ECDS resource name on a sidecar (an
	// Istio sidecar, a standalone Envoy beside one domain, `angzarr proxy`).
	FilterName = "angzarr-filter"
	// ClusterEventService is the event service's cluster.
	ClusterEventService = "angzarr-eventsvc"
	// ClusterLogic is the local business logic's cluster on a sidecar; it
	// matches the filter's default BusinessLogicCluster.
	ClusterLogic = "angzarr-logic"
	// ClusterWasmSource is the cluster a remote Wasm module is fetched from.
	ClusterWasmSource = "angzarr-wasm-source"
	// ListenerIngress is the listener (and route configuration) that takes
	// angzarr.BusinessCoordinator traffic on a standalone Envoy.
	ListenerIngress = "angzarr-ingress"
	// DomainHeader routes a command to its domain on a gateway when the
	// :authority does not name the domain.
	DomainHeader = "x-angzarr-domain"
	// DefaultIngressPort is the ingress listener's default port.
	DefaultIngressPort = 10000
	// WasmRuntime is the Envoy Wasm runtime the filter runs on.
	WasmRuntime = "envoy.wasm.runtime.v8"
	// SubscriptionTypeURL is the type URL of the per-subscriber fan-out
	// resources (one per saga or projector, named after it). Best consumed
	// with delta xDS, which also reports removed subscribers.
	SubscriptionTypeURL = "type.googleapis.com/angzarr.Subscription"
	// FanoutTypeURL is the type URL of the whole fan-out configuration, one
	// resource named FanoutName: every subscriber in each response, so a
	// state-of-the-world client also sees removals.
	FanoutTypeURL = "type.googleapis.com/angzarr.FanoutConfig"
	// FanoutName is the name of the FanoutConfig resource.
	FanoutName = "angzarr-fanout"
	// WasmTypeURL is the type URL of the Wasm HTTP filter's configuration.
	WasmTypeURL = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
)
