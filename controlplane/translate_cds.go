package controlplane

import (
	"net"
	"slices"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	upstreamhttp "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

// httpProtocolOptionsKey is where Envoy looks for a cluster's upstream HTTP
// protocol options.
const httpProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// clusterSet builds every cluster of a topology once; classes share the
// same (immutable) cluster messages.
type clusterSet struct {
	common []types.Resource // event service, subscribers, Wasm source
	logic  map[string]*cluster.Cluster
	// coordinators reach each domain's sidecar ingress (CASCADE), by domain.
	coordinators map[string]*cluster.Cluster
	all          []types.Resource
}

func newClusterSet(t *Topology, o Options) *clusterSet {
	cs := &clusterSet{logic: map[string]*cluster.Cluster{}, coordinators: map[string]*cluster.Cluster{}}
	host, port := splitAddress(t.EventService.Address)
	cs.common = append(cs.common, h2Cluster(ClusterEventService, host, port))
	for _, s := range t.Sagas {
		h, p := splitAddress(s.Address)
		cs.common = append(cs.common, h2Cluster(sagaCluster(s.Name), h, p))
	}
	for _, pr := range t.Projectors {
		h, p := splitAddress(pr.Address)
		cs.common = append(cs.common, h2Cluster(projectorCluster(pr.Name), h, p))
	}
	if o.WasmURL != "" {
		h, p, tls := urlHostPort(o.WasmURL)
		c := dnsCluster(ClusterWasmSource, h, p)
		if tls {
			tc, _ := anypb.New(&tlsv3.UpstreamTlsContext{Sni: h})
			c.TransportSocket = &core.TransportSocket{
				Name:       "envoy.transport_sockets.tls",
				ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: tc},
			}
		}
		cs.common = append(cs.common, c)
	}
	cs.all = append(cs.all, cs.common...)
	for _, d := range t.Domains {
		ch, cp := d.coordinator()
		cs.coordinators[d.Name] = h2Cluster(coordinatorCluster(d.Name), ch, cp)
		cs.logic[d.Name] = h2Cluster(ClusterLogic, d.Service, uint32(d.Port))
		// A gateway reaches each domain's logic over the network, through
		// its Service.
		cs.all = append(cs.all,
			h2Cluster(domainLogicCluster(d.Name), d.Service, d.servicePort()),
			internalCluster(domainListener(d.Name)))
	}
	return cs
}

// sidecar returns the clusters of a proxy beside d's business logic: the
// common ones, the local logic and the coordinators of the domains that
// the sagas and process managers fed by d target (where its CASCADE
// commands go).
func (cs *clusterSet) sidecar(t *Topology, d *Domain) []types.Resource {
	out := make([]types.Resource, 0, len(cs.common)+1)
	out = append(out, cs.common...)
	for _, target := range cascadeTargets(t, d.Name) {
		if c, ok := cs.coordinators[target]; ok {
			out = append(out, c)
		}
	}
	return append(out, cs.logic[d.Name])
}

// cascadeTargets lists, sorted, the target domains of the sagas and
// process managers whose sources include domain.
func cascadeTargets(t *Topology, domain string) []string {
	var out []string
	add := func(sources, targets []string) {
		if slices.Contains(sources, domain) {
			for _, target := range targets {
				if !slices.Contains(out, target) {
					out = append(out, target)
				}
			}
		}
	}
	for _, s := range t.Sagas {
		add(s.Sources, s.Targets)
	}
	for _, pm := range t.ProcessManagers {
		add(pm.Sources, pm.Targets)
	}
	slices.Sort(out)
	return out
}

// gateway returns the clusters of a standalone Envoy fronting every domain.
func (cs *clusterSet) gateway() []types.Resource { return cs.all }

// dnsCluster is a cluster of one host:port, resolved by DNS unless the host
// is an IP literal.
func dnsCluster(name, host string, port uint32) *cluster.Cluster {
	typ := cluster.Cluster_STRICT_DNS
	if net.ParseIP(host) != nil {
		typ = cluster.Cluster_STATIC
	}
	return &cluster.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: typ},
		ConnectTimeout:       durationpb.New(2e9),
		LoadAssignment: &endpoint.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints: []*endpoint.LocalityLbEndpoints{{
				LbEndpoints: []*endpoint.LbEndpoint{{
					HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{
						Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
							Address:       host,
							PortSpecifier: &core.SocketAddress_PortValue{PortValue: port},
						}}},
					}},
				}},
			}},
		},
	}
}

// h2Cluster is a dnsCluster speaking HTTP/2 (gRPC) upstream.
func h2Cluster(name, host string, port uint32) *cluster.Cluster {
	c := dnsCluster(name, host, port)
	c.TypedExtensionProtocolOptions = http2Options()
	return c
}

// internalCluster reaches the internal listener of that name (a gateway's
// per-domain listener) over HTTP/2.
func internalCluster(listenerName string) *cluster.Cluster {
	return &cluster.Cluster{
		Name:                          listenerName,
		ClusterDiscoveryType:          &cluster.Cluster_Type{Type: cluster.Cluster_STATIC},
		ConnectTimeout:                durationpb.New(2e9),
		TypedExtensionProtocolOptions: http2Options(),
		LoadAssignment: &endpoint.ClusterLoadAssignment{
			ClusterName: listenerName,
			Endpoints: []*endpoint.LocalityLbEndpoints{{
				LbEndpoints: []*endpoint.LbEndpoint{{
					HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{
						Address: &core.Address{Address: &core.Address_EnvoyInternalAddress{EnvoyInternalAddress: &core.EnvoyInternalAddress{
							AddressNameSpecifier: &core.EnvoyInternalAddress_ServerListenerName{ServerListenerName: listenerName},
						}}},
					}},
				}},
			}},
		},
	}
}

func http2Options() map[string]*anypb.Any {
	opts, _ := anypb.New(&upstreamhttp.HttpProtocolOptions{
		UpstreamProtocolOptions: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &core.Http2ProtocolOptions{}},
		}},
	})
	return map[string]*anypb.Any{httpProtocolOptionsKey: opts}
}
