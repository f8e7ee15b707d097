package controlplane

import (
	"time"

	"github.com/angzarr-mesh/angzarr/filter/config"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	router "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// sidecarListener is the ingress of a standalone Envoy (or `angzarr proxy`)
// beside one domain's business logic: everything goes through the filter
// (ECDS FilterName), then to the local logic.
func sidecarListener(o Options) (*listener.Listener, *route.RouteConfiguration, error) {
	l, err := httpListener(ListenerIngress, o.ingressPort(), FilterName)
	if err != nil {
		return nil, nil, err
	}
	l.PerConnectionBufferLimitBytes = wrapperspb.UInt32(o.bufferLimit)
	r := &route.RouteConfiguration{
		Name: ListenerIngress,
		VirtualHosts: []*route.VirtualHost{{
			Name:    "angzarr-logic",
			Domains: []string{"*"},
			Routes:  []*route.Route{toCluster("logic", prefix("/"), ClusterLogic)},
		}},
	}
	return l, r, nil
}

// gatewayListeners are the listeners and routes of a standalone Envoy that
// fronts every domain: the ingress routes each domain's
// angzarr.BusinessCoordinator traffic (by :authority = domain name, or by the
// x-angzarr-domain header) to the domain's internal listener, where the
// domain's filter runs before the router to its business logic.
func gatewayListeners(t *Topology, o Options) (ls, rs []types.Resource, err error) {
	ingress, err := httpListener(ListenerIngress, o.ingressPort(), "")
	if err != nil {
		return nil, nil, err
	}
	ingress.PerConnectionBufferLimitBytes = wrapperspb.UInt32(o.bufferLimit)
	ls = append(ls, ingress)
	byName := &route.VirtualHost{Name: "by-header", Domains: []string{"*"}}
	rc := &route.RouteConfiguration{Name: ListenerIngress}
	for _, d := range t.Domains {
		rc.VirtualHosts = append(rc.VirtualHosts, &route.VirtualHost{
			Name:    "domain-" + d.Name,
			Domains: []string{d.Name, d.Name + ":*"},
			Routes:  []*route.Route{toCluster(d.Name, prefix("/"), domainListener(d.Name))},
		})
		m := prefix("/")
		m.Headers = []*route.HeaderMatcher{{
			Name: DomainHeader,
			HeaderMatchSpecifier: &route.HeaderMatcher_StringMatch{StringMatch: &matcher.StringMatcher{
				MatchPattern: &matcher.StringMatcher_Exact{Exact: d.Name},
			}},
		}}
		byName.Routes = append(byName.Routes, toCluster(d.Name, m, domainListener(d.Name)))

		internal, err := httpListener(domainListener(d.Name), 0, domainFilterName(d.Name))
		if err != nil {
			return nil, nil, err
		}
		internal.PerConnectionBufferLimitBytes = wrapperspb.UInt32(o.bufferLimit)
		ls = append(ls, internal)
		rs = append(rs, &route.RouteConfiguration{
			Name: domainListener(d.Name),
			VirtualHosts: []*route.VirtualHost{{
				Name:    "angzarr-logic",
				Domains: []string{"*"},
				Routes:  []*route.Route{toCluster("logic", prefix("/"), domainLogicCluster(d.Name))},
			}},
		})
	}
	byName.Routes = append(byName.Routes, &route.Route{
		Name:  "unknown-domain",
		Match: prefix("/"),
		Action: &route.Route_DirectResponse{DirectResponse: &route.DirectResponseAction{
			Status: 404,
			Body: &core.DataSource{Specifier: &core.DataSource_InlineString{
				InlineString: "no domain: set :authority to the domain name or the " + DomainHeader + " header",
			}},
		}},
	})
	rc.VirtualHosts = append(rc.VirtualHosts, byName)
	rs = append([]types.Resource{rc}, rs...)
	return ls, rs, nil
}

// BufferLimitBytes is the per_connection_buffer_limit_bytes of a listener
// whose filter buffers bodies of up to maxBodyBytes (the topology's
// defaults.maxBodyBytes; 0: the filter's default, 4 MiB): that much plus
// 64 KiB for gRPC framing and the data already in flight when the filter
// refuses a body. Envoy buffers a body a filter stopped only up to the
// listener's limit (1 MiB by default, which Istio keeps for sidecars): past
// it a request gets 413 and a response whose headers went on is reset,
// before the filter could answer RESOURCE_EXHAUSTED.
func BufferLimitBytes(maxBodyBytes int) uint32 {
	if maxBodyBytes <= 0 {
		maxBodyBytes = config.DefaultMaxBodyBytes
	}
	return uint32(maxBodyBytes) + 64<<10
}

// The listeners' stream timeouts, wasmhost's defaults: Envoy's own stream
// idle timeout (5 min); a request timeout Envoy does not set by default,
// 30 s for a command's one small message, so a body that never ends does
// not hold the logic for 5 minutes; 10 s to read HTTP/1.1 headers.
const (
	StreamIdleTimeout     = 5 * time.Minute
	RequestTimeout        = 30 * time.Second
	RequestHeadersTimeout = 10 * time.Second
)

// httpListener is an HTTP listener (HTTP/1.1 and h2c) whose routes come
// over ADS (RDS named after the listener). A port of 0 makes it an internal
// listener. With a filter name, the Wasm filter is inserted before the
// router through ECDS (config_discovery over ADS).
func httpListener(name string, port uint32, filter string) (*listener.Listener, error) {
	routerConf, err := anypb.New(&router.Router{})
	if err != nil {
		return nil, err
	}
	var filters []*hcm.HttpFilter
	if filter != "" {
		filters = append(filters, &hcm.HttpFilter{
			Name: filter,
			ConfigType: &hcm.HttpFilter_ConfigDiscovery{ConfigDiscovery: &core.ExtensionConfigSource{
				ConfigSource: adsSource(),
				TypeUrls:     []string{WasmTypeURL},
			}},
		})
	}
	filters = append(filters, &hcm.HttpFilter{
		Name:       wellknown.Router,
		ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: routerConf},
	})
	manager, err := anypb.New(&hcm.HttpConnectionManager{
		CodecType:  hcm.HttpConnectionManager_AUTO,
		StatPrefix: name,
		// The stream timeouts wasmhost applies by default (see
		// wasmhost.Config): a request whose body stops arriving is ended.
		StreamIdleTimeout:     durationpb.New(StreamIdleTimeout),
		RequestTimeout:        durationpb.New(RequestTimeout),
		RequestHeadersTimeout: durationpb.New(RequestHeadersTimeout),
		RouteSpecifier: &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{
			ConfigSource:    adsSource(),
			RouteConfigName: name,
		}},
		HttpFilters: filters,
	})
	if err != nil {
		return nil, err
	}
	l := &listener.Listener{
		Name: name,
		FilterChains: []*listener.FilterChain{{
			Filters: []*listener.Filter{{
				Name:       wellknown.HTTPConnectionManager,
				ConfigType: &listener.Filter_TypedConfig{TypedConfig: manager},
			}},
		}},
	}
	if port == 0 {
		l.ListenerSpecifier = &listener.Listener_InternalListener{InternalListener: &listener.Listener_InternalListenerConfig{}}
	} else {
		l.Address = &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
			Address:       "0.0.0.0",
			PortSpecifier: &core.SocketAddress_PortValue{PortValue: port},
		}}}
	}
	return l, nil
}

// adsSource is "over the same ADS stream".
func adsSource() *core.ConfigSource {
	return &core.ConfigSource{
		ResourceApiVersion:    core.ApiVersion_V3,
		ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}},
	}
}

// Routes must never match on the coordinator's path
// (/angzarr.BusinessCoordinator/...) or on the logic's. The filter rewrites a
// command's :path to /angzarr.BusinessLogic/Handle in its request headers
// callback, and Envoy then clears the route cache and matches the routes
// again (Context::replaceHeaderMapValue calls clearRouteCache; ABI 0.2.1):
// a route keyed on the coordinator path would stop matching after the
// rewrite, one keyed on the logic path would start to. Match on prefix "/",
// :authority or the x-angzarr-domain header only, as every route here does.
func prefix(p string) *route.RouteMatch {
	return &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: p}}
}

func toCluster(name string, m *route.RouteMatch, cluster string) *route.Route {
	return &route.Route{
		Name:  name,
		Match: m,
		Action: &route.Route_Route{Route: &route.RouteAction{
			ClusterSpecifier: &route.RouteAction_Cluster{Cluster: cluster},
		}},
	}
}
