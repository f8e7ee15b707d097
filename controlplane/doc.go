// Package controlplane is Angzarr Mesh's xDS control plane. It reads one
// declarative topology (domains, sagas, projectors; see Topology) from a YAML
// file and/or Kubernetes workloads annotated `angzarr.io/domain: <name>`,
// translates it into Envoy configuration and serves it over gRPC xDS with
// go-control-plane:
//
//   - ECDS: a TypedExtensionConfig carrying the Wasm HTTP filter and its JSON
//     plugin configuration (filter/config) for the workload's domain;
//   - CDS/LDS/RDS for standalone Envoy and `angzarr proxy`;
//   - the fan-out subscriptions the event service needs, as custom
//     resources served from LinearCaches: angzarr.FanoutConfig (one
//     resource, complete in every state-of-the-world response) and
//     angzarr.Subscription (one per subscriber, for delta clients).
//
// Each connecting node is mapped to a workload and domain (see Identify); a
// node without a domain gets a pass-through filter. Every snapshot is
// validated before it is served (Consistent, ValidateAll on every resource
// and on everything packed in an Any, the plugin configuration decoded by the
// filter's own decoder); an invalid topology is rejected with an error that
// lists every problem, and the last good configuration keeps serving.
//
// Translation is pure (Translate) and golden-tested; Run wires the sources,
// the caches and the gRPC server together. The clients live apart, in
// package xdsclient, so that the event service and the proxy do not import
// the server: xdsclient.DecodeFilter unpacks an ECDS resource,
// xdsclient.ProxyClient is the xDS client of a proxy without Envoy
// (package xdsproxy builds `angzarr proxy --xds` from them), and
// xdsclient.FanoutClient is the event service's client for its fan-out
// configuration (the shape of eventsvc/fanout's Source). The names of the
// served resources are defined there too, and aliased here.
//
// Files: topology.go and validate.go (the model), translate*.go and
// verify.go (pure translation and snapshot checks), node.go (identity),
// publisher.go and callbacks.go (caches, per-node snapshots, stream
// bookkeeping), source_file.go and source_k8s.go (sources), server.go,
// module_server.go and metrics.go (what is served), tracing.go (span
// names: controlplane.load_topology, .translate, .publish,
// .publish_fanout, .ack, .nack), controlplane.go (Config, Run).
package controlplane
