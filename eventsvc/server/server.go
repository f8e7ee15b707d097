package server

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Options configure a Server.
type Options struct {
	// Limits bound appends; zero fields take their defaults.
	Limits store.Limits
	// PollInterval is how often a live Synchronize looks for appends made
	// through other eventsvc replicas. Default 200ms.
	PollInterval time.Duration
	// Tail, when set, is the store's blocking read of a log's tail (Redis):
	// a live Synchronize of a domain blocks on it instead of polling.
	// Default none: poll every PollInterval.
	Tail store.TailWatcher
	// Logger receives the server's logs. Default slog.Default().
	Logger *slog.Logger
	// MeterProvider provides the metric instruments. Default: no metrics.
	MeterProvider metric.MeterProvider
}

// Server implements angzarr.EventQuery and angzarr.EventStore.
type Server struct {
	pb.UnimplementedEventQueryServer
	pb.UnimplementedEventStoreServer

	store   store.Store
	limits  store.Limits
	poll    time.Duration
	log     *slog.Logger
	metrics *metrics
	notify  *notifier
	tails   *tails

	stopOnce sync.Once
	stopping chan struct{} // closed by Shutdown
}

var (
	_ pb.EventQueryServer = (*Server)(nil)
	_ pb.EventStoreServer = (*Server)(nil)
)

// New returns a server over st.
func New(st store.Store, opts Options) (*Server, error) {
	if err := opts.Limits.Validate(); err != nil {
		return nil, err
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 200 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	m, err := newMetrics(opts.MeterProvider)
	if err != nil {
		return nil, err
	}
	s := &Server{store: st, limits: opts.Limits.WithDefaults(), poll: opts.PollInterval, log: opts.Logger, metrics: m, notify: newNotifier(), stopping: make(chan struct{})}
	s.tails = newTails(opts.Tail, st.Partitions(), s.notify.notify, opts.Logger)
	return s, nil
}

// Register registers both services on g.
func (s *Server) Register(g grpc.ServiceRegistrar) {
	pb.RegisterEventQueryServer(g, s)
	pb.RegisterEventStoreServer(g, s)
}

// Shutdown ends every open Synchronize stream with UNAVAILABLE (the client
// should reconnect to another replica) so a graceful stop need not wait for
// them. Unary calls are unaffected.
func (s *Server) Shutdown() {
	s.stopOnce.Do(func() { close(s.stopping) })
}

// fail maps err to a status, logging what is not the caller's fault.
func (s *Server) fail(ctx context.Context, method string, err error) error {
	st := toStatus(err)
	switch status.Code(st) {
	case codes.Unavailable:
		s.log.WarnContext(ctx, "store unavailable", "method", method, "err", err)
	case codes.Internal:
		s.log.ErrorContext(ctx, "internal error", "method", method, "err", err)
	}
	return st
}

// outcome names an error for metrics.
func outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, store.ErrConflict):
		return "conflict"
	case errors.Is(err, store.ErrInvalid):
		return "invalid"
	case errors.Is(err, store.ErrUnavailable):
		return "unavailable"
	}
	return "error"
}
