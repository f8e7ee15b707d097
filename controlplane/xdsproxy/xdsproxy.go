// Package xdsproxy is `angzarr proxy --xds HOST:PORT --node ID`: a wasmhost
// proxy that takes its filter module, plugin configuration and clusters
// from the control plane over xDS, as Envoy does, and applies every change
// live. The node id is the workload name the topology maps to a domain (or
// the node carries ANGZARR_DOMAIN metadata).
//
// The first configuration creates the wasmhost Host (its upstream is the
// cluster controlplane.ClusterLogic); later ones swap the plugin
// (Host.UpdatePlugin: new streams use the new VMs), the clusters
// (Host.SetClusters) and the upstream when the business logic moved
// (Host.SetUpstream) and the ingress listener's stream timeouts
// (Host.SetStreamTimeouts). A configuration that cannot be applied is NACKed and
// the previous one keeps running. An ORIGINAL_DST cluster (Istio's
// inbound|<port>||) becomes a wasmhost.OriginalDst cluster, which no
// callout can reach, as in Envoy; a business logic cluster that is
// ORIGINAL_DST is NACKed (nothing redirects connections to this proxy).
package xdsproxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	wasm "github.com/envoyproxy/go-control-plane/envoy/extensions/wasm/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/angzarr-mesh/angzarr/controlplane"
	"github.com/angzarr-mesh/angzarr/controlplane/xdsclient"
	"github.com/angzarr-mesh/angzarr/wasmhost"
)

// Config configures an xDS-fed proxy.
type Config struct {
	// XDS is the control plane's HOST:PORT. Required.
	XDS string
	// Node is the proxy's node id. Required.
	Node string
	// Metadata is the node metadata (e.g. {"ANGZARR_DOMAIN": "order"}).
	// Optional.
	Metadata map[string]any
	// Host is the template of the wasmhost configuration: Listen,
	// AdminListen, WASIProfile, VMs, FailOpen, LogLevel, Logger and the
	// stream timeouts are used; Plugin (with allow_on_headers_stop_iteration),
	// FilterPath, Upstream and Clusters come from xDS.
	Host wasmhost.Config
	// Applied, when set, is called after each configuration is applied.
	Applied func(xdsclient.ProxyConfig)
	// XDSDial is the transport of the connection to the control plane
	// (internal/identity.DialOption for mTLS). Default plaintext.
	XDSDial grpc.DialOption
}

// Validate reports every problem of the configuration at once.
func (c *Config) Validate() error {
	var errs []error
	if c.XDS == "" {
		errs = append(errs, errors.New("xds: the control plane's HOST:PORT is required"))
	}
	if c.Node == "" {
		errs = append(errs, errors.New("node: an id is required"))
	}
	if _, err := structpb.NewStruct(c.Metadata); err != nil {
		errs = append(errs, fmt.Errorf("metadata: %w", err))
	}
	return errors.Join(errs...)
}

// Run serves the proxy on cfg.Host.Listen (and the admin endpoint on
// cfg.Host.AdminListen) until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("xdsproxy: %w", err)
	}
	addr := cfg.Host.Listen
	if addr == "" {
		addr = "127.0.0.1:15001"
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("xdsproxy: %w", err)
	}
	var admin net.Listener
	if cfg.Host.AdminListen != "" {
		if admin, err = net.Listen("tcp", cfg.Host.AdminListen); err != nil {
			lis.Close()
			return fmt.Errorf("xdsproxy: admin: %w", err)
		}
	}
	return Serve(ctx, lis, admin, cfg)
}

// Serve serves the proxy on lis (and the admin endpoint on admin, when not
// nil) until ctx is done. Traffic is accepted once the first
// configuration has arrived.
func Serve(ctx context.Context, lis, admin net.Listener, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		lis.Close()
		if admin != nil {
			admin.Close()
		}
		return fmt.Errorf("xdsproxy: %w", err)
	}
	log := cfg.Host.Logger
	if log == nil {
		log = slog.Default()
	}
	md, _ := structpb.NewStruct(cfg.Metadata)
	dial := cfg.XDSDial
	if dial == nil {
		dial = grpc.WithTransportCredentials(insecure.NewCredentials())
	}
	conn, err := grpc.NewClient(cfg.XDS, dial)
	if err != nil {
		lis.Close()
		return fmt.Errorf("xdsproxy: %w", err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p := &proxy{cfg: cfg, log: log, lis: lis, admin: admin, ctx: ctx, modules: map[string][]byte{}}
	client := &xdsclient.ProxyClient{
		Conn:   conn,
		Node:   &core.Node{Id: cfg.Node, Cluster: "angzarr-proxy", Metadata: md},
		Apply:  p.apply,
		Logger: log,
	}
	log.Info("angzarr proxy waiting for its configuration over xDS", "xds", cfg.XDS, "node", cfg.Node, "listen", lis.Addr().String())
	err = client.Run(ctx)
	cancel()
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.host == nil {
		lis.Close()
		if admin != nil {
			admin.Close()
		}
	} else {
		p.host.Close()
	}
	return errors.Join(err, p.serveErr)
}

// proxy holds the Host once the first configuration arrived.
type proxy struct {
	cfg        Config
	log        *slog.Logger
	lis, admin net.Listener
	ctx        context.Context

	mu       sync.Mutex
	host     *wasmhost.Host
	upstream string
	modules  map[string][]byte // by sha256 or URL
	wg       sync.WaitGroup
	serveErr error
}

// apply installs a configuration: creates the Host the first time, then
// swaps plugin and clusters live.
func (p *proxy) apply(ctx context.Context, pc xdsclient.ProxyConfig) error {
	module, err := p.module(ctx, pc.Filter)
	if err != nil {
		return err
	}
	upstream := pc.Clusters[controlplane.ClusterLogic]
	if upstream == "" {
		return fmt.Errorf("no %s cluster: node %q is not mapped to a domain (a proxy needs a business logic upstream)", controlplane.ClusterLogic, p.cfg.Node)
	}
	if upstream == xdsclient.OriginalDst {
		// Envoy forwards to an ORIGINAL_DST cluster where the downstream
		// connection was headed before iptables redirected it; nothing
		// redirects connections to this proxy, so their original
		// destination is the proxy itself.
		return fmt.Errorf("cluster %s is ORIGINAL_DST: this proxy receives no redirected connections, so it has no original destination to forward commands to", controlplane.ClusterLogic)
	}
	clusters := hostClusters(pc.Clusters)
	plugin := wasmhost.Plugin{Module: module, Name: pc.Filter.Name, RootID: pc.Filter.RootID, VMID: pc.Filter.VMID,
		Configuration: pc.Filter.Configuration, AllowOnHeadersStopIteration: pc.Filter.AllowOnHeadersStopIteration,
		FailurePolicy: failurePolicy(pc.Filter.FailurePolicy), ReloadBackoff: pc.Filter.ReloadBackoff}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.host == nil {
		hc := p.cfg.Host
		hc.Plugin, hc.FilterPath, hc.Upstream, hc.Clusters = plugin, "", upstream, clusters
		hc.NodeID = p.cfg.Node
		hc.NodeMetadata = p.cfg.Metadata
		if t := pc.Timeouts; t != nil {
			hc.StreamIdleTimeout, hc.RequestTimeout, hc.RequestHeadersTimeout = t.StreamIdle, t.Request, t.RequestHeaders
			hc.BufferLimitBytes = t.BufferLimitBytes
		}
		h, err := wasmhost.New(ctx, hc)
		if err != nil {
			return err
		}
		p.host, p.upstream = h, upstream
		p.serve(h)
	} else {
		if err := p.host.SetClusters(clusters); err != nil {
			return err
		}
		if upstream != p.upstream {
			if err := p.host.SetUpstream(upstream); err != nil {
				return err
			}
			p.log.Info("business logic moved", "from", p.upstream, "to", upstream)
			p.upstream = upstream
		}
		if err := p.host.UpdatePlugin(ctx, plugin); err != nil {
			return err
		}
		if t := pc.Timeouts; t != nil {
			// The request headers timeout stays the listener's first.
			p.host.SetStreamTimeouts(t.StreamIdle, t.Request)
		}
	}
	p.log.Info("configuration applied", "filter_version", pc.FilterVersion, "clusters_version", pc.ClustersVersion,
		"domains", pc.Filter.Config.Domains)
	if p.cfg.Applied != nil {
		p.cfg.Applied(pc)
	}
	return nil
}

// hostClusters is the xDS clusters as wasmhost takes them: HOST:PORT, and
// wasmhost.OriginalDst for an ORIGINAL_DST cluster (callouts to it find no
// host, as in Envoy).
func hostClusters(in map[string]string) map[string]string {
	out := make(map[string]string, len(in))
	for name, addr := range in {
		if addr == xdsclient.OriginalDst {
			addr = wasmhost.OriginalDst
		}
		out[name] = addr
	}
	return out
}

// serve starts serving traffic (and admin) on the Host.
func (p *proxy) serve(h *wasmhost.Host) {
	run := func(f func() error) {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			if err := f(); err != nil && p.ctx.Err() == nil {
				p.mu.Lock()
				p.serveErr = errors.Join(p.serveErr, err)
				p.mu.Unlock()
			}
		}()
	}
	run(func() error { return h.Serve(p.ctx, p.lis) })
	if p.admin != nil {
		run(func() error { return h.ServeAdmin(p.ctx, p.admin) })
	}
}

// module returns the filter's .wasm: a local file, or fetched from its URL
// and checked against the pushed sha256 (cached by digest).
func (p *proxy) module(ctx context.Context, f *xdsclient.Filter) ([]byte, error) {
	if f.File != "" {
		return os.ReadFile(f.File)
	}
	p.mu.Lock()
	b, ok := p.modules[f.SHA256+"|"+f.URL]
	p.mu.Unlock()
	if ok {
		return b, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.URL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch filter module: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch filter module %s: %s", f.URL, resp.Status)
	}
	b, err = io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("fetch filter module: %w", err)
	}
	if f.SHA256 != "" {
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); got != f.SHA256 {
			return nil, fmt.Errorf("filter module %s: sha256 %s, want %s", f.URL, got, f.SHA256)
		}
	}
	p.mu.Lock()
	p.modules = map[string][]byte{f.SHA256 + "|" + f.URL: b}
	p.mu.Unlock()
	return b, nil
}

// failurePolicy maps the Wasm filter's failure policy to wasmhost's
// (UNSPECIFIED is Envoy's default, FAIL_CLOSED).
func failurePolicy(p wasm.FailurePolicy) wasmhost.FailurePolicy {
	switch p {
	case wasm.FailurePolicy_FAIL_OPEN:
		return wasmhost.FailOpen
	case wasm.FailurePolicy_FAIL_RELOAD:
		return wasmhost.FailReload
	}
	return wasmhost.FailClosed
}
