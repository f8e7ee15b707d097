package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/angzarr-mesh/angzarr/controlplane/xdsclient"
	"github.com/angzarr-mesh/angzarr/eventsvc"
	"github.com/angzarr-mesh/angzarr/internal/identity"
)

func newEventsvcCmd() *cobra.Command {
	var (
		cfg  eventsvc.Config
		logs logFlags
		xds  string
		node string
		id   identityFlags
		gogc int
	)
	cmd := &cobra.Command{
		Use:   "eventsvc",
		Short: "Run the event service (EventQuery, EventStore and fan-out over gRPC)",
		Long: `eventsvc serves angzarr.EventQuery and angzarr.EventStore over gRPC, with
gRPC health and server reflection, on a SQLite file or on Redis / Redis Cluster.
With --fanout it delivers every domain's events to the configured sagas and
projectors (at least once, retried with backoff, dead-lettered after
--fanout-max-attempts; see angzarr dlq and angzarr replay):

  angzarr eventsvc --store sqlite:./events.db
  angzarr eventsvc --store redis://127.0.0.1:6379/0 --listen :1313 --metrics-listen :9090
  angzarr eventsvc --store redis+cluster://10.0.0.1:6379,10.0.0.2:6379,10.0.0.3:6379
  angzarr eventsvc --store sqlite:./events.db --fanout fanout.yaml --fanout-max-attempts 8
  angzarr eventsvc --store redis://127.0.0.1:6379/0 --xds 127.0.0.1:18000   # fan-out from the control plane

Every call is authorized: with --cert/--key/--ca the service serves mTLS and
decides each call from the access policy of the fan-out configuration (the
topology's identities); with --identity-from-sidecar it takes the caller from
the x-forwarded-client-cert header of the Istio sidecar in front of it.
--insecure serves plaintext without authorization and says so at start.

It also serves angzarr.CommandGateway: commands executed through the domains'
coordinators named by the fan-out configuration, streaming what they cause.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if cfg.Logger, err = logs.logger(); err != nil {
				return err
			}
			if gogc != 0 && (cmd.Flags().Changed("gc-percent") || os.Getenv("GOGC") == "") {
				debug.SetGCPercent(gogc)
			}
			cfg.Identity = id.cfg
			if cfg.IdentityFromSidecar {
				if id.cfg != (identity.Config{}) {
					return errors.New("--identity-from-sidecar: the sidecar terminates mTLS; no --cert/--key/--ca/--insecure")
				}
			} else if err := id.cfg.Validate(); err != nil {
				return err
			}
			stop, err := startTelemetry(cmd.Context(), "angzarr-eventsvc", nil, cfg.Logger)
			if err != nil {
				return err
			}
			defer stop()
			if xds != "" {
				if cfg.Fanout != "" {
					return errors.New("--xds and --fanout both configure the fan-out: choose one")
				}
				// The same identity towards the control plane; plaintext
				// behind a sidecar (it adds mTLS) or with --insecure.
				dial := grpc.WithTransportCredentials(insecure.NewCredentials())
				if !cfg.IdentityFromSidecar && !id.cfg.Insecure {
					files, err := identity.LoadFiles(id.cfg.CertFile, id.cfg.KeyFile, id.cfg.CAFile, id.cfg.TrustDomain)
					if err != nil {
						return err
					}
					dial = identity.DialOption(files, identity.ID{})
				}
				conn, err := grpc.NewClient(xds, dial)
				if err != nil {
					return fmt.Errorf("--xds: %w", err)
				}
				defer conn.Close()
				cfg.FanoutSource = &xdsclient.FanoutClient{Conn: conn, Node: &core.Node{Id: node, Cluster: "angzarr-eventsvc"},
					Logger: cfg.Logger.With("component", "fanout-xds")}
			}
			return eventsvc.Run(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Store, "store", "sqlite:angzarr-events.db", "store URL: sqlite:PATH | redis://HOST:PORT/DB | redis+cluster://H1:P1,H2:P2,...")
	f.StringVar(&cfg.Listen, "listen", eventsvc.DefaultListen, "gRPC listen address")
	f.StringVar(&cfg.MetricsListen, "metrics-listen", "", "serve Prometheus metrics at /metrics on this address (off when empty)")
	f.IntVar(&cfg.Limits.MaxPages, "max-pages", 0, "most pages per append (0: 1000)")
	f.IntVar(&cfg.Limits.MaxEventBytes, "max-event-bytes", 0, "largest event or snapshot in bytes (0: 1 MiB)")
	f.IntVar(&cfg.Limits.LoadPageBytes, "load-page-bytes", 0, "most bytes of one page of a loaded history; longer histories load in pages (0: 1 MiB, at most 2 MiB)")
	f.IntVar(&cfg.Limits.MaxHistoryBytes, "max-history-bytes", 0, "most bytes of an aggregate's events after its snapshot; an append without a snapshot beyond it is refused (0: 4 MiB, -1: no bound)")
	f.Uint32Var(&cfg.RedisPartitions, "redis-partitions", 0, "log partitions per domain on Redis, fixed once data exists (0: 16)")
	f.DurationVar(&cfg.PollInterval, "poll-interval", 0, "how often subscriptions look for appends through other replicas (0: 200ms)")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 0, "graceful stop bound (0: 10s)")
	f.StringVar(&cfg.Fanout, "fanout", "", "fan-out configuration file (angzarr.FanoutConfig as YAML or JSON: sagas, projectors, domain addresses), re-read on change")
	f.IntVar(&cfg.FanoutMaxAttempts, "fanout-max-attempts", 0, "deliveries of an event to a subscriber before it is dead-lettered (0: 5)")
	f.DurationVar(&cfg.FanoutBackoff, "fanout-backoff", 0, "wait after a failed delivery, doubling per attempt (0: 100ms)")
	f.DurationVar(&cfg.FanoutBackoffMax, "fanout-backoff-max", 0, "longest wait between delivery attempts (0: 10s)")
	f.IntVar(&cfg.FanoutConcurrency, "fanout-concurrency", 0, "aggregates of a fetched batch each subscriber delivers in parallel (0: 8)")
	f.DurationVar(&cfg.FanoutLeaseTTL, "fanout-lease-ttl", 0, "lifetime of a replica's partition leases without renewal, on Redis: a dead replica's partitions move to the others after it (0: 5s)")
	f.StringVar(&cfg.FanoutReplicaID, "fanout-replica-id", "", "this replica's id in the partition leases, unique per process (default: host name and random bytes)")
	f.StringVar(&cfg.FanoutEscalationWebhook, "fanout-escalation-webhook", "", "http(s) URL that receives a POST (angzarr.SagaFailed as JSON) of every escalated saga refusal")
	f.StringVar(&xds, "xds", "", "control plane HOST:PORT: take the fan-out configuration (angzarr.FanoutConfig) over xDS, live")
	f.StringVar(&node, "node", "angzarr-eventsvc", "with --xds: this replica's node id")
	f.IntVar(&gogc, "gc-percent", eventsvc.DefaultGCPercent, "the Go garbage collector's target percentage (GOGC; the GOGC environment variable wins over the default, -1 turns the collector off, 0 leaves the runtime's setting)")
	f.BoolVar(&cfg.IdentityFromSidecar, "identity-from-sidecar", false, "behind an Istio sidecar that terminates mTLS: serve plaintext and take each caller's identity from its x-forwarded-client-cert header (the port must be reachable only through the sidecar)")
	id.add(f)
	logs.add(f)
	return cmd
}
