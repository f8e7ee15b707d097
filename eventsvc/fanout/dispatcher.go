package fanout

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	"github.com/angzarr-mesh/angzarr/internal/telemetry"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Store is what the dispatcher needs of the event store: the log's
// partition count, durable checkpoints and the dead-letter log. Both
// backends (sqlite, redis) implement it.
type Store interface {
	// Partitions is the number of partitions of every domain's log.
	Partitions() uint32
	// Append records refused saga commands in the failure domain and
	// process managers' steps in their domains.
	Append(ctx context.Context, req *store.AppendRequest) (*store.AppendResult, error)
	// Load loads a process manager's workflow stream.
	store.Loader
	store.Checkpointer
	store.DeadLetters
}

// Options configure a Dispatcher. Zero fields take their defaults.
type Options struct {
	// MaxAttempts is how many times an entry is delivered before it is
	// dead-lettered. Default 5.
	MaxAttempts int
	// BackoffBase is the wait after the first failed attempt; it doubles per
	// attempt. Default 100ms.
	BackoffBase time.Duration
	// BackoffMax caps the wait between attempts. Default 10s.
	BackoffMax time.Duration
	// PollInterval is how often idle workers look for appends made through
	// other processes (appends through this one wake them at once, see
	// Notify). Default 200ms.
	PollInterval time.Duration
	// LeaseTTL is how long a partition lease lives without renewal, on a
	// store that keeps leases (store.Leaser: Redis): a replica killed
	// with -9 loses its partitions after it, and they are renewed every
	// third of it. Default 5s.
	LeaseTTL time.Duration
	// ReplicaID names this replica in the store's leases; it must be
	// unique per process. Default: the host name and random bytes.
	ReplicaID string
	// BatchSize is the most log entries a worker fetches at once. Default 100.
	BatchSize int
	// Concurrency is how many aggregates of one batch are delivered in
	// parallel. Default 8.
	Concurrency int
	// CallTimeout bounds each gRPC call to a subscriber or coordinator.
	// Default 10s.
	CallTimeout time.Duration
	// DialOptions are used to reach subscribers and coordinators. Default:
	// plaintext (the mesh's sidecar adds mTLS).
	DialOptions []grpc.DialOption
	// EscalationWebhook, when set, is an http(s) URL that receives a POST
	// of every escalated saga refusal (CompensationAction ESCALATE): the
	// angzarr.SagaFailed as JSON (protojson). A failed POST is logged; the
	// escalation's error log and metric happen either way. Default none.
	EscalationWebhook string
	// Logger receives the dispatcher's logs. Default slog.Default().
	Logger *slog.Logger
	// MeterProvider provides the metric instruments. Default: no metrics.
	MeterProvider metric.MeterProvider
	// TracerProvider provides the spans (saga.orchestrate, projector.handle,
	// ...) and, through the gRPC client stats handler added to every
	// connection, the client spans and W3C trace-context headers of the
	// calls to subscribers and coordinators. Default: the global one.
	TracerProvider trace.TracerProvider
}

// Validate reports every problem with the options.
func (o Options) Validate() error {
	var errs []error
	if o.MaxAttempts < 0 {
		errs = append(errs, fmt.Errorf("fanout max attempts %d: must not be negative", o.MaxAttempts))
	}
	for name, d := range map[string]time.Duration{"backoff": o.BackoffBase, "backoff max": o.BackoffMax, "poll interval": o.PollInterval, "call timeout": o.CallTimeout, "lease ttl": o.LeaseTTL} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("fanout %s %v: must not be negative", name, d))
		}
	}
	if o.BackoffBase > 0 && o.BackoffMax > 0 && o.BackoffMax < o.BackoffBase {
		errs = append(errs, fmt.Errorf("fanout backoff max %v is below the backoff %v", o.BackoffMax, o.BackoffBase))
	}
	if o.EscalationWebhook != "" {
		if u, err := url.Parse(o.EscalationWebhook); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("fanout escalation webhook %q: want an http(s) URL", o.EscalationWebhook))
		}
	}
	if o.LeaseTTL > 0 && o.LeaseTTL < 30*time.Millisecond {
		errs = append(errs, fmt.Errorf("fanout lease ttl %v: at least 30ms", o.LeaseTTL))
	}
	if strings.ContainsAny(o.ReplicaID, " \t\r\n") || len(o.ReplicaID) > 200 {
		errs = append(errs, fmt.Errorf("fanout replica id %q: at most 200 characters without spaces", o.ReplicaID))
	}
	if o.BatchSize < 0 || o.Concurrency < 0 {
		errs = append(errs, fmt.Errorf("fanout batch size %d and concurrency %d: must not be negative", o.BatchSize, o.Concurrency))
	}
	return errors.Join(errs...)
}

func (o Options) withDefaults() Options {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = 5
	}
	def(&o.BackoffBase, 100*time.Millisecond)
	def(&o.BackoffMax, 10*time.Second)
	o.BackoffMax = max(o.BackoffMax, o.BackoffBase)
	def(&o.PollInterval, 200*time.Millisecond)
	def(&o.CallTimeout, 10*time.Second)
	def(&o.LeaseTTL, 5*time.Second)
	if o.ReplicaID == "" {
		o.ReplicaID = defaultOwner()
	}
	if o.BatchSize == 0 {
		o.BatchSize = 100
	}
	if o.Concurrency == 0 {
		o.Concurrency = 8
	}
	if o.DialOptions == nil {
		o.DialOptions = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.TracerProvider == nil {
		o.TracerProvider = otel.GetTracerProvider()
	}
	return o
}

// Dispatcher delivers every domain's log to the configured subscribers.
type Dispatcher struct {
	st      Store
	opts    Options
	log     *slog.Logger
	metrics *metrics
	tracer  trace.Tracer
	backoff backoff
	conns   *conns
	wake    *waker
	leases  *leases

	mu      sync.Mutex
	base    context.Context    // Run's context; nil when not running
	runners map[string]*runner // by subscriber name

	domains  atomic.Pointer[map[string]string] // coordinator address by domain
	failures atomic.Pointer[string]            // FanoutConfig.failure_domain
}

// New returns a dispatcher over st; it does nothing until Run.
func New(st Store, opts Options) (*Dispatcher, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	m, err := newMetrics(opts.MeterProvider)
	if err != nil {
		return nil, err
	}
	mp := opts.MeterProvider
	if mp == nil {
		mp = noop.NewMeterProvider()
	}
	dial := append(slices.Clip(opts.DialOptions), grpc.WithStatsHandler(correlationStats{otelgrpc.NewClientHandler(
		otelgrpc.WithTracerProvider(opts.TracerProvider), otelgrpc.WithMeterProvider(mp), otelgrpc.WithPropagators(telemetry.Propagator()))}))
	d := &Dispatcher{
		st: st, opts: opts, log: opts.Logger, metrics: m,
		tracer:  opts.TracerProvider.Tracer(tracerName),
		backoff: backoff{base: opts.BackoffBase, max: opts.BackoffMax},
		conns:   newConns(dial), wake: newWaker(),
		runners: map[string]*runner{},
	}
	d.leases = newLeases(d, st, opts.ReplicaID, opts.LeaseTTL)
	return d, nil
}

// Run applies the configurations src delivers (none when src is nil) and
// runs the subscribers until ctx is done, then stops them and closes the
// connections. A source error ends Run with it.
func (d *Dispatcher) Run(ctx context.Context, src Source) error {
	d.mu.Lock()
	if d.base != nil {
		d.mu.Unlock()
		return errors.New("fanout: dispatcher already running")
	}
	d.base = ctx
	d.mu.Unlock()
	lctx, lcancel := context.WithCancel(ctx)
	leasesDone := make(chan struct{})
	go func() {
		defer close(leasesDone)
		d.leases.run(lctx)
	}()
	defer func() { lcancel(); <-leasesDone }() // after the workers stopped: releases the leases
	defer d.stopAll()

	if src == nil {
		<-ctx.Done()
		return nil
	}
	err := src.Run(ctx, d.Apply)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// stopAll stops every runner and closes the connections.
func (d *Dispatcher) stopAll() {
	d.mu.Lock()
	rs := d.runners
	d.runners = map[string]*runner{}
	d.base = nil
	d.mu.Unlock()
	for _, r := range rs {
		r.stop()
	}
	d.conns.close()
}

// Apply makes cfg the configuration: new subscribers start, removed ones
// stop, changed ones restart from their checkpoints. An invalid
// configuration is refused and the current one stays.
func (d *Dispatcher) Apply(cfg *pb.FanoutConfig) error {
	if err := Validate(cfg); err != nil {
		return fmt.Errorf("fanout: invalid configuration %q: %w", cfg.GetVersion(), err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.base == nil {
		return errors.New("fanout: dispatcher not running")
	}
	domains := map[string]string{}
	for _, e := range cfg.GetDomains() {
		domains[e.GetDomain()] = e.GetAddress()
	}
	d.domains.Store(&domains)
	failures := cmp.Or(cfg.GetFailureDomain(), DefaultFailureDomain)
	d.failures.Store(&failures)
	want := map[string]*pb.Subscription{}
	for _, s := range cfg.GetSubscriptions() {
		want[s.GetName()] = s
	}
	for name, r := range d.runners {
		if s, ok := want[name]; !ok || !proto.Equal(s, r.sub) {
			r.stop()
			delete(d.runners, name)
		}
	}
	sources := map[string]bool{}
	for name, s := range want {
		if _, ok := d.runners[name]; !ok {
			d.runners[name] = d.start(proto.Clone(s).(*pb.Subscription))
		}
		for _, dom := range s.GetSourceDomains() {
			sources[dom] = true
		}
	}
	d.leases.setDomains(sources)
	d.log.Info("fanout configuration applied", "version", cfg.GetVersion(), "subscriptions", len(want), "domains", len(domains))
	return nil
}

// Notify wakes the workers reading domain's log: call it after an append
// to domain (NotifyingStore does).
func (d *Dispatcher) Notify(domain string) { d.wake.notify(domain) }

// subscription returns the current subscription named name.
func (d *Dispatcher) subscription(name string) (*pb.Subscription, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if r, ok := d.runners[name]; ok {
		return r.sub, nil
	}
	return nil, fmt.Errorf("%w %q: not in the fan-out configuration", ErrUnknownSubscriber, name)
}

// endpoint returns the coordinator address of domain. It takes no lock:
// workers call it while Apply may be waiting for them to stop.
func (d *Dispatcher) endpoint(domain string) (string, error) {
	if m := d.domains.Load(); m != nil {
		if a, ok := (*m)[domain]; ok {
			return a, nil
		}
	}
	return "", fmt.Errorf("%w %q", ErrNoEndpoint, domain)
}

// failureDomain is where refused saga commands are recorded.
func (d *Dispatcher) failureDomain() string {
	if f := d.failures.Load(); f != nil {
		return *f
	}
	return DefaultFailureDomain
}

// Subscribers returns the names of the running subscribers.
func (d *Dispatcher) Subscribers() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]string, 0, len(d.runners))
	for name := range d.runners {
		out = append(out, name)
	}
	return out
}
