package eventsvc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"time"

	promclient "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"go.opentelemetry.io/otel"
	promexp "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/angzarr-mesh/angzarr/eventsvc/authz"
	"github.com/angzarr-mesh/angzarr/eventsvc/fanout"
	"github.com/angzarr-mesh/angzarr/eventsvc/schemareg"
	"github.com/angzarr-mesh/angzarr/eventsvc/server"
	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/instrumented"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/upcast"
	"github.com/angzarr-mesh/angzarr/internal/identity"
	"github.com/angzarr-mesh/angzarr/internal/telemetry"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Run listens on cfg.Listen and serves until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	addr := cfg.Listen
	if addr == "" {
		addr = DefaultListen
	}
	lis, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("eventsvc: listen: %w", err)
	}
	return Serve(ctx, lis, cfg)
}

// Serve serves gRPC on lis (which it closes) until ctx is done, then stops
// gracefully: new calls are refused, running calls may finish within
// cfg.ShutdownTimeout, open subscriptions are then cut.
func Serve(ctx context.Context, lis net.Listener, cfg Config) error {
	defer lis.Close()
	if cfg.MetricsListener != nil {
		defer cfg.MetricsListener.Close()
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}

	reg := promclient.NewRegistry()
	exp, err := promexp.New(promexp.WithRegisterer(reg))
	if err != nil {
		return fmt.Errorf("eventsvc: metrics: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	defer mp.Shutdown(context.Background()) //nolint:errcheck // best effort at exit

	raw, err := OpenStore(ctx, cfg.Store, cfg.Limits, cfg.RedisPartitions)
	if err != nil {
		return fmt.Errorf("eventsvc: open store: %w", err)
	}
	defer raw.Close()
	inst, err := instrument(raw, cfg, mp)
	if err != nil {
		return err
	}
	files, authorizer, err := security(cfg, log, mp)
	if err != nil {
		return err
	}
	if files != nil {
		cfg.fanoutDial = append(cfg.fanoutDial, identity.DialOption(files, identity.ID{}))
	}
	// Every read, the dispatcher's too, comes back upcast to current
	// versions; the upcasters follow the fan-out configuration and are
	// reached with the event service's identity, as subscribers are.
	upcasters := upcast.NewTable(upcast.Options{DialOptions: cfg.fanoutDial})
	defer upcasters.Close()
	st := upcast.New(inst, upcasters)
	disp, src, err := newDispatcher(st, cfg, log, mp)
	if err != nil {
		return err
	}
	if src != nil {
		src = alsoApply{Source: src, check: upcasters.Check, apply: upcasters.Apply}
	}
	if authorizer != nil && src != nil {
		if cfg.Fanout != "" { // in force before the first call, not after the dispatcher's first apply
			fc, err := fanout.LoadFile(cfg.Fanout)
			if err != nil {
				return fmt.Errorf("eventsvc: %w", err)
			}
			if err := authorizer.Update(fc.GetAccess()); err != nil {
				return fmt.Errorf("eventsvc: %s: access: %w", cfg.Fanout, err)
			}
		}
		src = authorizer.Source(src)
	}
	dctx, dcancel := context.WithCancel(ctx)
	dispatched := make(chan error, 1)
	go func() { dispatched <- disp.Run(dctx, src) }()
	defer func() { dcancel(); <-dispatched }() // before the store closes

	// The schema registry records the types appends use (first use) and
	// judges the descriptors the control plane registers. It keeps its
	// books on the backend itself: its reads and writes are not the
	// application's storage operations, and stay out of their metrics and
	// of the traces of the commands whose first use they record.
	rst, ok := raw.(schemareg.Store)
	if !ok {
		return fmt.Errorf("eventsvc: the %T store cannot keep the schema registry", raw)
	}
	schemas := schemareg.New(rst, schemareg.Options{Logger: log})
	srv, err := server.New(fanout.NotifyingStore{Store: schemareg.Recording{Store: st, R: schemas}, D: disp}, server.Options{Limits: cfg.Limits, PollInterval: cfg.PollInterval, Tail: store.TailWatcherOf(raw), Logger: log, MeterProvider: mp})
	if err != nil {
		return err
	}
	sopts := []grpc.ServerOption{identity.ServerOption(files)}
	if authorizer != nil {
		sopts = append(sopts, grpc.ChainUnaryInterceptor(authorizer.Unary()), grpc.ChainStreamInterceptor(authorizer.Stream()))
	}
	g, gstats, err := newGRPCServer(mp, tracerProvider(cfg), sopts...)
	if err != nil {
		return err
	}
	srv.Register(g)
	disp.Admin().Register(g)
	disp.ProcessManagerCoordinator().Register(g)
	srv.NewGateway(disp).Register(g)
	schemas.Serve(g)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(g, hs)
	for _, name := range []string{"", pb.EventQuery_ServiceDesc.ServiceName, pb.EventStore_ServiceDesc.ServiceName, pb.FanoutAdmin_ServiceDesc.ServiceName, pb.CommandGateway_ServiceDesc.ServiceName, pb.SchemaRegistry_ServiceDesc.ServiceName, pb.ProcessManagerCoordinator_ServiceDesc.ServiceName} {
		hs.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	reflection.Register(g)
	gstats.serve(g)

	errc := make(chan error, 2)
	var metricsSrv *http.Server
	mlis := cfg.MetricsListener
	if cfg.MetricsListen != "" {
		mlis, err = (&net.ListenConfig{}).Listen(ctx, "tcp", cfg.MetricsListen)
		if err != nil {
			return fmt.Errorf("eventsvc: metrics listen: %w", err)
		}
	}
	if mlis != nil {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		log.Info("eventsvc metrics", "addr", mlis.Addr().String())
		go func() {
			if err := metricsSrv.Serve(mlis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("eventsvc: metrics: %w", err)
			}
		}()
	}

	served := make(chan error, 1)
	go func() { served <- g.Serve(lis) }()
	log.Info("eventsvc serving", "addr", lis.Addr().String(), "store", redact(cfg.Store))

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	case runErr = <-served:
		if runErr != nil {
			runErr = fmt.Errorf("eventsvc: serve: %w", runErr)
		}
	case runErr = <-dispatched:
		dispatched <- runErr // for the deferred wait
		if runErr != nil {
			runErr = fmt.Errorf("eventsvc: fanout: %w", runErr)
		}
	}
	log.Info("eventsvc stopping")
	hs.Shutdown()
	srv.Shutdown() // ends open subscriptions, which GracefulStop would wait for
	stopped := make(chan struct{})
	go func() { g.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(cfg.ShutdownTimeout):
		g.Stop()
		<-stopped
	}
	if metricsSrv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = metricsSrv.Shutdown(sctx)
		cancel()
	}
	return runErr
}

// newGRPCServer returns the event service's gRPC server with opts and its
// stats handler (gstats.serve(g) once every service is registered).
// Reused stream workers spare a goroutine (and its stack growth) per call.
// Server spans continue the caller's W3C trace context; health checks are
// left out of spans and metrics.
func newGRPCServer(mp metric.MeterProvider, tp trace.TracerProvider, opts ...grpc.ServerOption) (*grpc.Server, *serverStats, error) {
	h, err := newServerStats(mp, filters.Not(filters.HealthCheck()), otelgrpc.WithTracerProvider(tp), otelgrpc.WithPropagators(telemetry.Propagator()))
	if err != nil {
		return nil, nil, fmt.Errorf("eventsvc: metrics: %w", err)
	}
	g := grpc.NewServer(append(opts, grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0))), grpc.StatsHandler(h))...)
	return g, h, nil
}

// security loads the identity and builds the authorizer: files and an
// authorizer for mTLS, an authorizer alone behind a sidecar, neither for
// plaintext.
func security(cfg Config, log *slog.Logger, mp metric.MeterProvider) (*identity.Files, *authz.Authorizer, error) {
	var files *identity.Files
	switch {
	case cfg.IdentityFromSidecar:
		log.Info("eventsvc: identities from the sidecar's " + identity.XFCCHeader + " header; the listener must be reachable only through it")
	case cfg.Identity == (identity.Config{}):
		return nil, nil, nil
	default:
		var err error
		if files, err = cfg.Identity.Load("eventsvc", log); err != nil {
			return nil, nil, fmt.Errorf("eventsvc: %w", err)
		}
		if files == nil { // --insecure
			return nil, nil, nil
		}
		log.Info("eventsvc: mTLS with authorization", "identity", files.ID().String())
	}
	a, err := authz.New(authz.Options{Resolver: identity.Resolver{TrustXFCC: cfg.IdentityFromSidecar}, Logger: log, MeterProvider: mp})
	if err != nil {
		return nil, nil, err
	}
	return files, a, nil
}

// redact hides a password in a store URL for logs.
func redact(s string) string {
	u, err := ParseStoreURL(s)
	if err != nil || u.Password == "" {
		return s
	}
	return u.Kind + "://***@" + strings.Join(u.Addrs, ",")
}

// tracerProvider is the configured tracer provider or the global one.
func tracerProvider(cfg Config) trace.TracerProvider {
	if cfg.TracerProvider != nil {
		return cfg.TracerProvider
	}
	return otel.GetTracerProvider()
}

// instrument wraps the backend in the storage metrics and spans (the
// store's Instrumented decorator, applied here at composition time).
func instrument(st store.Store, cfg Config, mp metric.MeterProvider) (*instrumented.Store, error) {
	b, ok := st.(instrumented.Backend)
	if !ok {
		return nil, fmt.Errorf("eventsvc: the %T store cannot keep fan-out checkpoints", st)
	}
	kind := "unknown"
	if u, err := ParseStoreURL(cfg.Store); err == nil {
		kind = strings.TrimSuffix(u.Kind, "+cluster")
	}
	return instrumented.New(b, kind, instrumented.Options{MeterProvider: mp, TracerProvider: tracerProvider(cfg)})
}

// alsoApply hands every fan-out configuration to a second taker (the
// upcasters) besides the dispatcher: checked by both before either takes
// it, so that they never hold different configurations.
type alsoApply struct {
	fanout.Source
	check, apply func(*pb.FanoutConfig) error
}

// Run implements fanout.Source.
func (a alsoApply) Run(ctx context.Context, apply func(*pb.FanoutConfig) error) error {
	return a.Source.Run(ctx, func(c *pb.FanoutConfig) error {
		if err := a.check(c); err != nil {
			return err
		}
		if err := apply(c); err != nil {
			return err
		}
		return a.apply(c)
	})
}

// newDispatcher returns the fan-out dispatcher over st and the source of
// its configuration (nil when none is configured: the dispatcher then
// delivers nothing but its admin service still lists dead letters). A
// configuration file is loaded once here so that a bad one fails the start.
func newDispatcher(st store.Store, cfg Config, log *slog.Logger, mp metric.MeterProvider) (*fanout.Dispatcher, fanout.Source, error) {
	fst, ok := st.(fanout.Store)
	if !ok {
		return nil, nil, fmt.Errorf("eventsvc: the %T store cannot keep fan-out checkpoints", st)
	}
	opts := cfg.fanoutOptions()
	opts.Logger, opts.MeterProvider = log, mp
	disp, err := fanout.New(fst, opts)
	if err != nil {
		return nil, nil, err
	}
	src := cfg.FanoutSource
	if cfg.Fanout != "" {
		if _, err := fanout.LoadFile(cfg.Fanout); err != nil {
			return nil, nil, fmt.Errorf("eventsvc: %w", err)
		}
		src = fanout.FileSource{Path: cfg.Fanout, Logger: log}
	}
	return disp, src, nil
}
