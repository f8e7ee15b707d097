package xdsclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"strconv"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"
)

// ProxyConfig is the configuration a proxy without Envoy (`angzarr proxy
// --xds`) takes from the control plane, as Envoy would: the Wasm filter
// with its plugin configuration (ECDS), the clusters it calls (CDS) and
// the stream timeouts of its ingress listener (LDS).
type ProxyConfig struct {
	// FilterVersion and ClustersVersion are the xDS versions of the two
	// parts.
	FilterVersion, ClustersVersion string
	// Filter is the extension config named FilterName.
	Filter *Filter
	// Clusters maps cluster names to HOST:PORT, for every cluster with one
	// socket-address endpoint (the logic is ClusterLogic, the event
	// service ClusterEventService), and to OriginalDst for every
	// ORIGINAL_DST cluster a callout can reach no host of (see
	// OriginalDst).
	Clusters map[string]string
	// Timeouts are the ingress listener's HttpConnectionManager stream
	// timeouts; nil until the listener arrived (it is optional: the
	// filter and the clusters make a configuration complete).
	Timeouts *StreamTimeouts
	// ListenersVersion is the xDS version of Timeouts.
	ListenersVersion string
}

// StreamTimeouts are Envoy's HttpConnectionManager stream_idle_timeout,
// request_timeout and request_headers_timeout, as Envoy reads them: an
// unset field is Envoy's default (Default* below), a zero one disables the
// timeout (reported as a negative duration, as wasmhost.Config takes it).
type StreamTimeouts struct {
	StreamIdle, Request, RequestHeaders time.Duration
	// BufferLimitBytes is the listener's per_connection_buffer_limit_bytes
	// (Envoy's default, 1 MiB, when unset).
	BufferLimitBytes int
}

// Envoy's defaults for unset HttpConnectionManager timeouts: 5 minutes of
// stream idleness, no request or request headers timeout.
const (
	envoyDefaultStreamIdle = 5 * time.Minute
	envoyNone              = time.Duration(-1)
)

// ProxyClient is the xDS client of a proxy without Envoy. Over one ADS
// stream it subscribes to every cluster and to the extension config
// FilterName, and calls Apply with each new complete configuration (once
// both parts have arrived, then on every change of either). A
// configuration Apply accepts is ACKed; one that does not decode, or that
// Apply refuses, is NACKed with the error and the proxy keeps the previous
// one. A broken stream is reopened with backoff.
type ProxyClient struct {
	// Conn is a connection to the control plane. Required.
	Conn grpc.ClientConnInterface
	// Node identifies the proxy: its id is the workload name (or carries
	// ANGZARR_DOMAIN metadata). Required.
	Node *core.Node
	// Apply installs a configuration; an error NACKs it. Required.
	Apply func(context.Context, ProxyConfig) error
	// Logger receives the client's logs. Default slog.Default().
	Logger *slog.Logger
}

// Run watches the control plane until ctx is done (then it returns nil).
func (c *ProxyClient) Run(ctx context.Context) error {
	if c.Conn == nil || c.Node == nil || c.Apply == nil {
		return errors.New("controlplane: ProxyClient needs Conn, Node and Apply")
	}
	log := c.Logger
	if log == nil {
		log = slog.Default()
	}
	var applied ProxyConfig
	backoff := 100 * time.Millisecond
	for {
		start := time.Now()
		err := c.stream(ctx, &applied)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) > 10*time.Second {
			backoff = 100 * time.Millisecond
		}
		log.Warn("xDS stream ended; reconnecting", "node", c.Node.GetId(), "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// stream runs one ADS stream; applied is the last accepted configuration.
func (c *ProxyClient) stream(ctx context.Context, applied *ProxyConfig) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := discovery.NewAggregatedDiscoveryServiceClient(c.Conn).StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	names := map[string][]string{resource.ClusterType: nil, resource.ExtensionConfigType: {FilterName}, resource.ListenerType: {ListenerIngress}}
	acked := map[string]string{
		resource.ClusterType:         applied.ClustersVersion,
		resource.ExtensionConfigType: applied.FilterVersion,
		resource.ListenerType:        applied.ListenersVersion,
	}
	first := true
	// The listener first: its timeouts then come before the first complete
	// configuration (the server answers in order).
	for _, typ := range []string{resource.ListenerType, resource.ClusterType, resource.ExtensionConfigType} {
		req := &discovery.DiscoveryRequest{TypeUrl: typ, ResourceNames: names[typ], VersionInfo: acked[typ]}
		if first {
			req.Node, first = c.Node, false
		}
		if err := s.Send(req); err != nil {
			return err
		}
	}
	next := *applied
	for {
		resp, err := s.Recv()
		if err != nil {
			return err
		}
		typ := resp.GetTypeUrl()
		cand := next
		err = DecodeResponse(resp, &cand)
		// A listener response matters only when its timeouts changed.
		changed := typ != resource.ListenerType || !equalTimeouts(cand.Timeouts, next.Timeouts)
		if err == nil && changed && cand.Filter != nil && cand.Clusters != nil {
			err = c.Apply(ctx, cand)
		}
		req := &discovery.DiscoveryRequest{TypeUrl: typ, ResourceNames: names[typ], ResponseNonce: resp.GetNonce()}
		if err != nil {
			req.VersionInfo = acked[typ]
			req.ErrorDetail = &rpcstatus.Status{Code: int32(codes.InvalidArgument), Message: err.Error()}
		} else {
			next = cand
			if next.Filter != nil && next.Clusters != nil {
				*applied = next
			}
			acked[typ] = resp.GetVersionInfo()
			req.VersionInfo = acked[typ]
		}
		if err := s.Send(req); err != nil {
			return err
		}
	}
}

// DecodeResponse applies one discovery response of the types ProxyClient
// subscribes to (the filter's ECDS resource, the clusters, the ingress
// listener) to cfg.
func DecodeResponse(resp *discovery.DiscoveryResponse, cfg *ProxyConfig) error {
	switch typ := resp.GetTypeUrl(); typ {
	case resource.ExtensionConfigType:
		return decodeFilterResponse(resp, cfg)
	case resource.ClusterType:
		return decodeClustersResponse(resp, cfg)
	case resource.ListenerType:
		return decodeListenersResponse(resp, cfg)
	default:
		return fmt.Errorf("unexpected type %s", typ)
	}
}

func decodeFilterResponse(resp *discovery.DiscoveryResponse, cfg *ProxyConfig) error {
	for _, a := range resp.GetResources() {
		tec := &core.TypedExtensionConfig{}
		if err := a.UnmarshalTo(tec); err != nil {
			return fmt.Errorf("extension config: %w", err)
		}
		if tec.GetName() != FilterName {
			continue
		}
		f, err := DecodeFilter(tec)
		if err != nil {
			return err
		}
		cfg.Filter, cfg.FilterVersion = f, resp.GetVersionInfo()
		return nil
	}
	return fmt.Errorf("no extension config %q in the response", FilterName)
}

// OriginalDst is ProxyConfig.Clusters' address of an ORIGINAL_DST
// cluster (wasmhost.OriginalDst): Istio's inbound|<port>|| in its default
// passthrough mode, or any the control plane sends. Its load balancer
// takes the upstream host from the downstream connection's original
// destination, a filter state object, dynamic metadata or a request header
// (Envoy's OriginalDstCluster::LoadBalancer::chooseHost); a Wasm callout
// has none of the first three (it runs on the root context). A cluster
// that takes its host from a header (original_dst_lb_config.use_http_header)
// could be reached by a callout carrying that header; the proxy does not
// model that and leaves such a cluster out, as it does clusters without
// one socket-address endpoint.
const OriginalDst = "ORIGINAL_DST"

func decodeClustersResponse(resp *discovery.DiscoveryResponse, cfg *ProxyConfig) error {
	out := map[string]string{}
	for _, a := range resp.GetResources() {
		c := &cluster.Cluster{}
		if err := a.UnmarshalTo(c); err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
		if c.GetType() == cluster.Cluster_ORIGINAL_DST {
			ok, err := originalDst(c)
			if err != nil {
				return err
			}
			if ok {
				out[c.GetName()] = OriginalDst
			}
			continue
		}
		eps := c.GetLoadAssignment().GetEndpoints()
		if len(eps) != 1 || len(eps[0].GetLbEndpoints()) != 1 {
			continue
		}
		sa := eps[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
		if sa == nil {
			continue // an internal listener's cluster: not for this proxy
		}
		out[c.GetName()] = net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue())))
	}
	if _, ok := out[ClusterEventService]; !ok {
		return fmt.Errorf("no %s cluster in the response", ClusterEventService)
	}
	cfg.Clusters, cfg.ClustersVersion = maps.Clone(out), resp.GetVersionInfo()
	return nil
}

// originalDst checks an ORIGINAL_DST cluster as Envoy's
// OriginalDstClusterFactory::createClusterImpl does (an error NACKs the
// response, where Envoy refuses that cluster) and reports whether the
// proxy models it (no host for a callout: not use_http_header).
func originalDst(c *cluster.Cluster) (bool, error) {
	if c.GetLbPolicy() != cluster.Cluster_CLUSTER_PROVIDED {
		return false, fmt.Errorf("cluster %q: LB policy %s is not valid for Cluster type ORIGINAL_DST. Only 'CLUSTER_PROVIDED' is allowed with cluster type 'ORIGINAL_DST'",
			c.GetName(), c.GetLbPolicy())
	}
	if c.GetLoadAssignment() != nil {
		return false, fmt.Errorf("cluster %q: ORIGINAL_DST clusters must have no load assignment configured", c.GetName())
	}
	lb := c.GetOriginalDstLbConfig()
	if !lb.GetUseHttpHeader() && lb.GetHttpHeaderName() != "" {
		return false, fmt.Errorf("cluster %q: ORIGINAL_DST cluster: invalid config http_header_name=%s and use_http_header is false", c.GetName(), lb.GetHttpHeaderName())
	}
	return !lb.GetUseHttpHeader(), nil
}

// decodeListenersResponse reads the stream timeouts of the ingress
// listener's HttpConnectionManager.
func decodeListenersResponse(resp *discovery.DiscoveryResponse, cfg *ProxyConfig) error {
	for _, a := range resp.GetResources() {
		l := &listener.Listener{}
		if err := a.UnmarshalTo(l); err != nil {
			return fmt.Errorf("listener: %w", err)
		}
		if l.GetName() != ListenerIngress {
			continue
		}
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				m := &hcm.HttpConnectionManager{}
				if f.GetTypedConfig().GetTypeUrl() != "type.googleapis.com/"+string(m.ProtoReflect().Descriptor().FullName()) {
					continue
				}
				if err := f.GetTypedConfig().UnmarshalTo(m); err != nil {
					return fmt.Errorf("listener %s: %w", l.GetName(), err)
				}
				cfg.Timeouts = &StreamTimeouts{
					StreamIdle:       envoyTimeout(m.GetStreamIdleTimeout(), envoyDefaultStreamIdle),
					Request:          envoyTimeout(m.GetRequestTimeout(), envoyNone),
					RequestHeaders:   envoyTimeout(m.GetRequestHeadersTimeout(), envoyNone),
					BufferLimitBytes: 1 << 20,
				}
				if b := l.GetPerConnectionBufferLimitBytes(); b != nil {
					cfg.Timeouts.BufferLimitBytes = int(b.GetValue())
				}
				cfg.ListenersVersion = resp.GetVersionInfo()
				return nil
			}
		}
		return fmt.Errorf("listener %s has no HttpConnectionManager", l.GetName())
	}
	// No ingress listener for this node: the timeouts stay as they are.
	cfg.ListenersVersion = resp.GetVersionInfo()
	return nil
}

func equalTimeouts(a, b *StreamTimeouts) bool {
	return a == b || (a != nil && b != nil && *a == *b)
}

// envoyTimeout reads an HttpConnectionManager timeout: unset is def, zero
// is none (negative).
func envoyTimeout(d *durationpb.Duration, def time.Duration) time.Duration {
	switch {
	case d == nil:
		return def
	case d.AsDuration() <= 0:
		return envoyNone
	}
	return d.AsDuration()
}
