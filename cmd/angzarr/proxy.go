package main

import (
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"github.com/angzarr-mesh/angzarr/controlplane/xdsproxy"
	"github.com/angzarr-mesh/angzarr/internal/identity"
	"github.com/angzarr-mesh/angzarr/wasmhost"
)

// newProxyCmd is `angzarr proxy`: the local proxy-wasm host (wasmhost)
// running the filter .wasm the way Envoy does.
func newProxyCmd() *cobra.Command {
	var (
		cfg          wasmhost.Config
		pluginConfig string
		vmConfig     string
		clusters     []string
		profile      string
		xds          string
		domain       string
		logs         logFlags
		id           identityFlags
	)
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "Run the Wasm filter in a local h2c gRPC proxy (proxy-wasm host, Envoy semantics)",
		Long: `Run the Wasm filter in a local h2c gRPC proxy that implements the
proxy-wasm ABI the way Envoy does.

Static: --upstream, --filter, --plugin-config and --cluster configure it.
With --xds HOST:PORT --node ID it takes the filter module, its plugin
configuration, the upstream and the clusters from the control plane, as
Envoy does, and applies every change live.

With --cert/--key/--ca the listener requires client certificates of the
trust domain (and sets x-forwarded-client-cert for the filter, as Envoy
does), and the clusters and the control plane are reached over mTLS with
the same certificate; the business-logic upstream stays the pod's own
cleartext. --insecure runs plaintext and logs a warning.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.WASIProfile = wasmhost.WASIProfile(profile)
			// As in Envoy, a timeout of 0 is none (wasmhost: negative).
			for _, d := range []*time.Duration{&cfg.StreamIdleTimeout, &cfg.RequestTimeout, &cfg.RequestHeadersTimeout} {
				if *d <= 0 {
					*d = -1
				}
			}
			var err error
			if cfg.Logger, err = logs.logger(); err != nil {
				return err
			}
			// Before wasmhost.New: the host takes the global tracer provider
			// Setup installs (none without an OTLP endpoint: no proxy spans)
			// for its request and callout spans.
			stop, err := startTelemetry(cmd.Context(), "angzarr-proxy", nil, cfg.Logger)
			if err != nil {
				return err
			}
			defer stop()
			if err := id.cfg.Validate(); err != nil {
				return err
			}
			files, err := id.cfg.Load("proxy", cfg.Logger)
			if err != nil {
				return err
			}
			xdsDial := identity.DialOption(files, identity.ID{})
			if files != nil {
				// mTLS on the listener (callers get the
				// x-forwarded-client-cert the filter trusts) and to every
				// cluster but the pod's own logic.
				cfg.ListenerTLS, cfg.ListenerID = identity.ServerTLS(files), files.ID().String()
				cfg.ClusterTLS = identity.ClientTLS(files, identity.ID{})
			}
			if xds != "" {
				if cfg.Upstream != "" || cfg.FilterPath != "" || pluginConfig != "" || len(clusters) > 0 {
					return fmt.Errorf("--xds takes the upstream, filter, plugin config and clusters from the control plane: drop --upstream, --filter, --plugin-config and --cluster")
				}
				var md map[string]any
				if domain != "" {
					md = map[string]any{"ANGZARR_DOMAIN": domain}
				}
				return xdsproxy.Run(cmd.Context(), xdsproxy.Config{XDS: xds, Node: cfg.NodeID, Metadata: md, Host: cfg, XDSDial: xdsDial})
			}
			if cfg.Upstream == "" || cfg.FilterPath == "" {
				return fmt.Errorf("--upstream and --filter are required (or --xds HOST:PORT --node ID)")
			}
			if pluginConfig != "" {
				b, err := os.ReadFile(pluginConfig)
				if err != nil {
					return fmt.Errorf("plugin config: %w", err)
				}
				cfg.Plugin.Configuration = b
			}
			if vmConfig != "" {
				b, err := os.ReadFile(vmConfig)
				if err != nil {
					return fmt.Errorf("vm config: %w", err)
				}
				cfg.Plugin.VMConfiguration = b
			}
			cfg.Clusters = map[string]string{}
			for _, c := range clusters {
				name, addr, err := wasmhost.ParseCluster(c)
				if err != nil {
					return err
				}
				cfg.Clusters[name] = addr
			}
			h, err := wasmhost.New(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			return h.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Listen, "listen", "127.0.0.1:15001", "h2c listen address")
	f.StringVar(&cfg.Upstream, "upstream", "", "upstream HOST:PORT (HTTP/2 prior knowledge)")
	f.StringVar(&cfg.FilterPath, "filter", "", "path of the filter .wasm")
	f.StringVar(&pluginConfig, "plugin-config", "", "file with the plugin configuration (buffer 7)")
	f.StringVar(&vmConfig, "vm-config", "", "file with the VM configuration (buffer 6)")
	f.StringArrayVar(&clusters, "cluster", nil, "callout cluster NAME=HOST:PORT (repeatable)")
	f.StringVar(&cfg.AdminListen, "admin-listen", "", "admin listen address (/stats/prometheus, /ready)")
	f.BoolVar(&cfg.FailOpen, "fail-open", false, "pass traffic through when the plugin fails (default: fail closed)")
	f.StringVar(&profile, "wasi-profile", string(wasmhost.WASIEnvoyCurrent), "WASI profile: envoy-1.33 or envoy-current")
	f.IntVar(&cfg.VMs, "vms", runtime.GOMAXPROCS(0), "number of VMs (one per worker)")
	f.StringVar(&cfg.Plugin.RootID, "root-id", "", "plugin root id")
	f.StringVar(&cfg.Plugin.Name, "plugin-name", "angzarr", "plugin name")
	f.StringVar(&cfg.Plugin.VMID, "vm-id", "", "plugin vm id (scope of shared data and queues)")
	f.DurationVar(&cfg.StreamIdleTimeout, "stream-idle-timeout", wasmhost.DefaultStreamIdleTimeout, "reset a stream on which nothing moved for this long (Envoy's stream_idle_timeout; 0: none)")
	f.DurationVar(&cfg.RequestTimeout, "request-timeout", wasmhost.DefaultRequestTimeout, "end a request whose body did not arrive within this time (Envoy's request_timeout; 0: none, for long client streams)")
	f.DurationVar(&cfg.RequestHeadersTimeout, "request-headers-timeout", wasmhost.DefaultRequestHeadersTimeout, "time to read an HTTP/1.1 request's headers (Envoy's request_headers_timeout; 0: none)")
	f.BoolVar(&cfg.Plugin.AllowOnHeadersStopIteration, "allow-on-headers-stop-iteration", false, "a plugin that stops the request headers still gets the body (Envoy's PluginConfig field; needed by the filter's hold_request_headers; with --xds it comes from the control plane)")
	f.StringVar(&cfg.NodeID, "node", "", "node id (property node.id; with --xds, the workload the control plane maps to a domain)")
	f.StringVar(&cfg.NodeID, "node-id", "", "alias of --node")
	_ = f.MarkHidden("node-id")
	f.StringVar(&xds, "xds", "", "control plane HOST:PORT: take the filter, plugin config, upstream and clusters over xDS")
	id.add(f)
	logs.add(f)
	f.StringVar(&domain, "domain", "", "with --xds: the domain this proxy serves (node metadata ANGZARR_DOMAIN), when the topology does not map the node id")
	return cmd
}
