package main

import (
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/angzarr-mesh/angzarr/controlplane"
)

// newControlplaneCmd is `angzarr controlplane`: the xDS control plane.
func newControlplaneCmd() *cobra.Command {
	var (
		cfg    controlplane.Config
		filter string
		logs   logFlags
		id     identityFlags
	)
	cmd := &cobra.Command{
		Use:   "controlplane",
		Short: "Serve the topology to Envoy, Istio sidecars, angzarr proxy and the event service over xDS",
		Long: `controlplane reads the topology (a YAML file, watched, and/or Kubernetes
workloads annotated angzarr.io/domain) and serves it over gRPC xDS: the Wasm
filter and its plugin configuration over ECDS, clusters, listeners and routes
for standalone Envoy, and the fan-out subscriptions for the event service.

  angzarr controlplane --topology examples/topology.yaml --filter-wasm /etc/angzarr/filter.wasm
  angzarr controlplane --kubernetes in-cluster --event-service angzarr-eventsvc.angzarr-system.svc.cluster.local:1313 \
      --filter-wasm https://artifacts.example.com/filter.wasm --filter-sha256 <hex>

xDS is served over mTLS with --cert/--key/--ca (clients of the same trust
domain), or plaintext with --insecure.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if strings.HasPrefix(filter, "http://") || strings.HasPrefix(filter, "https://") {
				cfg.Filter.WasmURL = filter
			} else {
				cfg.Filter.WasmFile = filter
			}
			var err error
			if cfg.Logger, err = logs.logger(); err != nil {
				return err
			}
			if err := id.cfg.Validate(); err != nil {
				return err
			}
			cfg.Identity = id.cfg
			stop, err := startTelemetry(cmd.Context(), "angzarr-controlplane", nil, cfg.Logger)
			if err != nil {
				return err
			}
			defer stop()
			return controlplane.Run(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Topology, "topology", "", "topology YAML file, watched for changes")
	f.StringVar(&cfg.Kubernetes, "kubernetes", "", `watch annotated workloads: "in-cluster" or a kubeconfig path (off when empty)`)
	f.StringVar(&cfg.Namespace, "namespace", "", "limit the Kubernetes source to one namespace (all when empty)")
	f.StringVar(&cfg.EventService, "event-service", "", "event service HOST:PORT when there is no topology file")
	f.StringVar(&cfg.Listen, "listen", controlplane.DefaultListen, "xDS gRPC listen address")
	f.StringVar(&cfg.MetricsListen, "metrics-listen", "", "serve Prometheus metrics at /metrics on this address (off when empty)")
	f.StringVar(&filter, "filter-wasm", "", "the filter module as proxies load it: a file path on the proxy, or an http(s) URL")
	f.StringVar(&cfg.Filter.WasmSHA256, "filter-sha256", "", "hex SHA-256 of the module (required with a URL)")
	f.StringVar(&cfg.ServeModule, "serve-filter", "", "serve this filter module file at /filter.wasm (point --filter-wasm at it; the sha256 is computed)")
	f.StringVar(&cfg.ServeModuleListen, "serve-filter-listen", ":8080", "address for --serve-filter")
	f.Uint32Var(&cfg.Filter.IngressPort, "ingress-port", controlplane.DefaultIngressPort, "port of a standalone Envoy's ingress listener")
	f.BoolVar(&cfg.Filter.ReleaseRequestHeaders, "release-request-headers", false, "the filter lets a command's headers go at once on every proxy (Envoy < 1.35 gets this anyway, read from its xDS node): a body that never ends then holds a stream of the logic until the request timeout")
	f.DurationVar(&cfg.PollInterval, "poll-interval", controlplane.DefaultPollInterval, "how often the topology file is checked")
	f.StringVar(&cfg.SchemaRegistry, "schema-registry", "", "event service HOST:PORT whose schema registry the domains' descriptors are registered with (default: the topology's event service)")
	f.DurationVar(&cfg.SchemaInterval, "schema-interval", 30*time.Second, "how often the domains' descriptors are registered again besides every topology change (negative: only on changes)")
	id.add(f)
	logs.add(f)
	_ = cmd.MarkFlagRequired("filter-wasm")
	return cmd
}
