package eventsvc

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	"github.com/angzarr-mesh/angzarr/eventsvc/fanout"
	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	"github.com/angzarr-mesh/angzarr/internal/identity"
)

// Config configures the event service.
type Config struct {
	// Store is the store URL: sqlite:PATH, redis://HOST:PORT/DB or
	// redis+cluster://H1:P1,H2:P2,... Required.
	Store string
	// Listen is the gRPC listen address (Run only). Default "127.0.0.1:1313".
	Listen string
	// MetricsListen, when set, serves Prometheus metrics at /metrics on this
	// address. Default: no metrics endpoint.
	MetricsListen string
	// MetricsListener, when set, serves Prometheus metrics at /metrics on
	// this listener instead (Serve closes it): for a caller that takes its
	// ports before anything starts (angzarr dev). Not with MetricsListen.
	// Default: none.
	MetricsListener net.Listener
	// Limits bound appends, histories and load pages; zero fields take
	// their defaults (1000 pages per append, 1 MiB per event, 4 MiB of
	// events after a snapshot, 1 MiB per load page).
	Limits store.Limits
	// RedisPartitions is the number of log partitions per domain on Redis,
	// fixed once the store holds data. Default 16.
	RedisPartitions uint32
	// PollInterval is how often live subscriptions look for appends made
	// through other replicas. Default 200ms.
	PollInterval time.Duration
	// ShutdownTimeout bounds the graceful stop; then streams are cut.
	// Default 10s.
	ShutdownTimeout time.Duration
	// Logger receives logs. Default slog.Default().
	Logger *slog.Logger
	// TracerProvider provides the spans of the gRPC server, the store and
	// the fan-out. Default: the global one (otel.GetTracerProvider, set up
	// by internal/telemetry in the binaries).
	TracerProvider trace.TracerProvider

	// Fanout is a fan-out configuration file: an angzarr.FanoutConfig in
	// YAML or protojson (subscriptions and domain coordinator addresses),
	// re-read when it changes. Default: none, nothing is fanned out.
	Fanout string
	// FanoutSource, when set, delivers the fan-out configuration instead of
	// the Fanout file (the control plane's xDS source will be one).
	FanoutSource fanout.Source
	// FanoutMaxAttempts is how many times an event is delivered to a
	// subscriber before it goes to the dead-letter log. Default 5.
	FanoutMaxAttempts int
	// FanoutBackoff is the wait after a failed delivery; it doubles per
	// attempt. Default 100ms.
	FanoutBackoff time.Duration
	// FanoutBackoffMax caps the wait between delivery attempts. Default 10s.
	FanoutBackoffMax time.Duration
	// Identity is the event service's workload identity. With certificate
	// files it serves mTLS, authorizes every call from the access policy
	// of the fan-out configuration (angzarr.AccessPolicy; nothing but
	// health checks before one arrives) and its dispatcher presents the
	// certificate to subscribers and coordinators. Identity.Insecure
	// serves plaintext without authorization and logs a warning. The zero
	// value is plaintext without authorization and no warning, for tests
	// that build a Config in-process; `angzarr eventsvc` requires
	// --cert/--key/--ca or --insecure.
	Identity identity.Config
	// IdentityFromSidecar authorizes every call from the identity in the
	// x-forwarded-client-cert header of the sidecar in front of the event
	// service, which terminates mTLS (Istio): the listener is plaintext
	// and must be reachable only through that sidecar. Not with
	// certificate files. Default false.
	IdentityFromSidecar bool
	// FanoutEscalationWebhook, when set, receives a POST of every escalated
	// saga refusal (fanout.Options.EscalationWebhook). Default none.
	FanoutEscalationWebhook string
	// FanoutConcurrency is how many aggregates of one fetched batch each
	// subscriber's worker delivers in parallel
	// (fanout.Options.Concurrency). Default 8.
	FanoutConcurrency int
	// FanoutLeaseTTL is how long a replica's partition leases live without
	// renewal on Redis (fanout.Options.LeaseTTL): after a replica dies,
	// the others take its partitions over within about this time.
	// Default 5s.
	FanoutLeaseTTL time.Duration
	// FanoutReplicaID names this replica in the partition leases
	// (fanout.Options.ReplicaID); unique per process. Default: the host
	// name and random bytes.
	FanoutReplicaID string

	fanoutDial []grpc.DialOption // the dispatcher's credentials, set by Serve
}

// fanoutOptions are the dispatcher's options from the configuration.
func (c Config) fanoutOptions() fanout.Options {
	return fanout.Options{
		MaxAttempts: c.FanoutMaxAttempts, BackoffBase: c.FanoutBackoff, BackoffMax: c.FanoutBackoffMax,
		PollInterval: c.PollInterval, Logger: c.Logger, TracerProvider: c.TracerProvider,
		EscalationWebhook: c.FanoutEscalationWebhook, Concurrency: c.FanoutConcurrency, DialOptions: c.fanoutDial,
		LeaseTTL: c.FanoutLeaseTTL, ReplicaID: c.FanoutReplicaID,
	}
}

// DefaultGCPercent is the Go garbage collector's target percentage (GOGC)
// that `angzarr eventsvc` sets unless told otherwise (--gc-percent, or the
// GOGC environment variable). A call through the event service allocates
// about 16 KB (gRPC's transport most of it) over a live heap of a few MB,
// so at Go's default of 100 the collector runs every few hundred calls;
// at 400 it runs a fifth as often and the heap peaks at about five times
// the live data instead of twice. Measured on the development machine
// (BenchmarkEventService's no-op store, 64 clients): about 25 % less CPU
// per call. GOMEMLIMIT, when set, still bounds the heap.
const DefaultGCPercent = 400

// DefaultListen is the default gRPC listen address.
const DefaultListen = "127.0.0.1:1313"

// Validate reports every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.Store == "" {
		errs = append(errs, errors.New("store: required (sqlite:PATH, redis://HOST:PORT/DB or redis+cluster://H1:P1,...)"))
	} else if _, err := ParseStoreURL(c.Store); err != nil {
		errs = append(errs, err)
	}
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			errs = append(errs, fmt.Errorf("listen %q: %w", c.Listen, err))
		}
	}
	if c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			errs = append(errs, fmt.Errorf("metrics listen %q: %w", c.MetricsListen, err))
		}
		if c.MetricsListener != nil {
			errs = append(errs, errors.New("metrics: an address and a listener are both set"))
		}
	}
	if err := c.Limits.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.PollInterval < 0 {
		errs = append(errs, fmt.Errorf("poll interval %v: must not be negative", c.PollInterval))
	}
	if c.Fanout != "" && c.FanoutSource != nil {
		errs = append(errs, errors.New("fanout: a file and a source are both set"))
	}
	if err := c.fanoutOptions().Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.IdentityFromSidecar {
		if c.Identity.CertFile != "" || c.Identity.KeyFile != "" || c.Identity.CAFile != "" || c.Identity.Insecure {
			errs = append(errs, errors.New("identity from the sidecar: no certificate files and no --insecure (the sidecar terminates mTLS)"))
		}
	} else if c.Identity != (identity.Config{}) {
		if err := c.Identity.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.ShutdownTimeout < 0 {
		errs = append(errs, fmt.Errorf("shutdown timeout %v: must not be negative", c.ShutdownTimeout))
	}
	return errors.Join(errs...)
}
