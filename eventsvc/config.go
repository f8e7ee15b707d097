package eventsvc

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
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
	// Limits bound appends; zero fields take their defaults (1000 pages per
	// append, 1 MiB per event).
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
}

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
	}
	if err := c.Limits.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.PollInterval < 0 {
		errs = append(errs, fmt.Errorf("poll interval %v: must not be negative", c.PollInterval))
	}
	if c.ShutdownTimeout < 0 {
		errs = append(errs, fmt.Errorf("shutdown timeout %v: must not be negative", c.ShutdownTimeout))
	}
	return errors.Join(errs...)
}
