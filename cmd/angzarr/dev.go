package main

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/angzarr-mesh/angzarr/internal/devmesh"
)

// newDevCmd is `angzarr dev`: the whole mesh on this machine.
func newDevCmd() *cobra.Command {
	var (
		cfg   devmesh.Config
		ports []string
		logs  logFlags
		otel  bool
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole mesh locally: event service, control plane, one proxy per domain, the example shop",
		Long: `dev runs the local mesh in one process: the event service on SQLite (data in
--data-dir, kept across restarts), the control plane, one proxy per domain
running the Wasm filter with its configuration over xDS, the example shop's
business logic, sagas and projector, and the Python customer when
/usr/bin/python3 has grpc (else the Go customer). Once ready it prints the
endpoints and writes them to DATA-DIR/endpoints.json for angzarr send,
events, dlq and replay. The Python customer, the one subprocess, is
restarted when it exits (back-off from 250ms doubling up to 15s, from
250ms again once it stayed up a minute; logged as "crashed; restarting"),
and every other domain keeps serving meanwhile. Ctrl-C (or SIGTERM) stops
everything, the subprocess included.

Ports: --base-port B puts the event service at B, the control plane at B+1,
their Prometheus /metrics at B+2 and B+3, the proxies at B+10.., their admin
(/stats/prometheus) at B+20.., the shop at B+30..; --port NAME=PORT moves
one component (e.g. --port eventsvc=1313).

  make dev                      # builds the filter and the CLI, then runs this
  angzarr dev --base-port 51000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, p := range ports {
				name, port, err := devmesh.ParsePort(p)
				if err != nil {
					return err
				}
				if cfg.Ports == nil {
					cfg.Ports = map[string]int{}
				}
				cfg.Ports[name] = port
			}
			cfg.Out = cmd.OutOrStdout()
			var err error
			if cfg.Logger, err = logs.logger(); err != nil {
				return err
			}
			var console io.Writer
			if otel {
				console = cmd.ErrOrStderr()
			}
			stop, err := startTelemetry(cmd.Context(), "angzarr-dev", console, cfg.Logger)
			if err != nil {
				return err
			}
			defer stop()
			return devmesh.Run(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", ".angzarr", "data directory: the SQLite store, the generated topology, endpoints.json")
	f.StringVar(&cfg.Filter, "filter", devmesh.DefaultFilter, "the filter module every proxy loads (make filter builds it)")
	f.IntVar(&cfg.BasePort, "base-port", devmesh.DefaultBasePort, "first port of the mesh (it uses the 50 from there)")
	f.StringArrayVar(&ports, "port", nil, "move one component: NAME=PORT (eventsvc, eventsvc-metrics, controlplane, controlplane-metrics, proxy/DOMAIN, proxy-admin/DOMAIN, logic/DOMAIN, saga/NAME, projector/NAME); repeatable")
	f.StringVar(&cfg.Host, "host", devmesh.DefaultHost, "address every component listens on")
	f.StringVar(&cfg.Python, "python", devmesh.DefaultPython, "Python interpreter for the Python customer (used when it can import grpc)")
	f.BoolVar(&cfg.NoPython, "no-python", false, "serve the Go customer even when Python could")
	f.BoolVar(&cfg.Insecure, "insecure", false, "run every component in plaintext without identities or authorization (default: a local CA in DATA-DIR/identity, mTLS everywhere, authorization on; send, events and dlq use its operator certificate)")
	f.StringVar(&cfg.PythonCustomer, "python-customer", devmesh.DefaultPythonCustomer, "the Python customer's server script")
	f.IntVar(&cfg.ProxyVMs, "proxy-vms", 1, "Wasm VMs per proxy")
	f.DurationVar(&cfg.ReadyTimeout, "ready-timeout", devmesh.DefaultReadyTimeout, "how long every component may take to become ready")
	logs.add(f)
	f.BoolVar(&otel, "otel", false, "print every span to stderr, one line each (OTLP export is configured by OTEL_EXPORTER_OTLP_ENDPOINT as for every command)")
	return cmd
}
