// Package devmesh is `angzarr dev`: the whole mesh on one machine, in one
// process, for a first run and for demos.
//
//	err := devmesh.Run(ctx, devmesh.Config{Out: os.Stdout}) // until ctx is done
//
// It starts, each logging with attribute component=<name>:
//
//   - eventsvc: the event service on SQLite (DataDir/events.db, kept across
//     restarts), its fan-out dispatcher fed by the control plane over xDS
//     (xdsclient.FanoutClient as eventsvc.Config.FanoutSource);
//   - controlplane: the control plane on DataDir/topology.yaml, generated on
//     every start: the shop of examples/topology.yaml (same domains, sagas,
//     projector and defaults) with every address on Host and the ports of
//     the plan, because examples/topology.yaml names Kubernetes services;
//   - proxy/<domain>: one wasmhost proxy per domain fed over xDS (node id =
//     domain) with the filter module Filter (build/angzarr-filter.wasm);
//     the control plane gives it the clusters angzarr-logic (its domain's
//     logic) and angzarr-eventsvc;
//   - logic/<domain>, saga/<name>, projector/<name>: the example shop
//     in-process (examples/go/shop), except logic/customer, which is the
//     Python customer (a subprocess) when Python with grpc is installed.
//
// Ports: BasePort (13100) + 0 event service, +1 control plane, +2 and +3
// their Prometheus /metrics endpoints (eventsvc-metrics,
// controlplane-metrics), +10..15 proxies (customer, product, cart,
// inventory, order, fulfillment), +20..25 their admin endpoints (/ready,
// /stats/prometheus), +30..40 logic, sagas, projector and process manager
// in the order of shop.All() (50 ports are set aside); Ports overrides single components. Every port is taken before
// anything starts, and every one that is in use is reported with its
// component and what to do (PortError).
//
// Once everything is ready (the event service is healthy, the fan-out
// configuration applied, every proxy configured, Python listening) it
// prints the endpoint table to Out and writes DataDir/endpoints.json
// (package endpoints), which the client verbs read; the file is removed on
// shutdown. A lock file keeps a second mesh off the same data directory.
//
// The control plane names each domain's service as the coordinator saga
// commands go to (in Istio its inbound sidecar runs the filter); locally
// that port is the bare business logic, so the mesh points every domain at
// its proxy in each FanoutConfig it receives (fanoutSource).
package devmesh
