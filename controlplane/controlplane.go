package controlplane

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/kubernetes"

	"github.com/angzarr-mesh/angzarr/internal/identity"
)

// DefaultListen is the default xDS address.
const DefaultListen = ":18000"

// Config configures the control plane. At least one source is required:
// a topology file, Kubernetes, or both (the file declares, annotated
// workloads add to it).
type Config struct {
	// Topology is the path of the topology YAML file. It is watched: a
	// saved change is pushed as a new version within a second. Optional
	// when Kubernetes is set.
	Topology string
	// Kubernetes enables the Kubernetes source: "in-cluster", or the path
	// of a kubeconfig file. "" disables it unless KubernetesClient is set.
	Kubernetes string
	// KubernetesClient is used instead of connecting with Kubernetes (the
	// tests pass client-go's fake clientset).
	KubernetesClient kubernetes.Interface
	// Namespace limits the Kubernetes source to one namespace; "" watches
	// every namespace.
	Namespace string
	// EventService is the event service's host:port when there is no
	// topology file (Kubernetes only). Ignored with a topology file.
	EventService string
	// Listen is the xDS gRPC address. Default ":18000".
	Listen string
	// MetricsListen is the address of the Prometheus /metrics endpoint
	// (OpenTelemetry metrics through the Prometheus exporter), Run only. ""
	// disables it.
	MetricsListen string
	// MetricsListener, when set, serves the Prometheus /metrics endpoint on
	// this listener (Serve closes it): for a caller that takes its ports
	// before anything starts (angzarr dev) and calls New and Serve. Not
	// with MetricsListen. Default: none.
	MetricsListener net.Listener
	// Filter says where proxies load the Wasm module from and which port
	// a standalone Envoy's ingress listens on.
	Filter Options
	// ServeModule is the path of a filter module the control plane serves
	// itself over HTTP at /filter.wasm on ServeModuleListen (Filter.WasmURL
	// then points at it). With a URL and no Filter.WasmSHA256, the digest
	// is computed from this file. Optional.
	ServeModule string
	// ServeModuleListen is the address the module is served on. Default
	// ":8080" when ServeModule is set.
	ServeModuleListen string
	// PollInterval is how often the topology file is checked. Default
	// 200ms.
	PollInterval time.Duration
	// Logger receives the control plane's logs. Default slog.Default().
	Logger *slog.Logger
	// MeterProvider receives the metrics. Default: the Prometheus exporter
	// when MetricsListen or MetricsListener is set, else the global
	// provider. When set, neither is served (the caller exports; Serve
	// closes MetricsListener).
	MeterProvider metric.MeterProvider
	// SchemaRegistry is host:port of the event service whose schema
	// registry the domains' descriptors are registered with
	// (Domain.Descriptors). Default: the topology's event service.
	SchemaRegistry string
	// SchemaInterval is how often the descriptors are registered again
	// besides every topology change (files change, binaries roll out).
	// Default 30s; negative: only on topology changes.
	SchemaInterval time.Duration
	// TracerProvider receives the spans of topology loads, translations,
	// publications and the proxies' ACKs and NACKs (controlplane.*, see
	// tracing.go). Default: the global provider (otel.GetTracerProvider).
	TracerProvider trace.TracerProvider
	// Identity is the control plane's workload identity: with certificate
	// files xDS is served over mTLS to workloads of its trust domain;
	// Identity.Insecure serves plaintext and logs a warning. The zero value
	// is plaintext without a warning, for tests that build a Config
	// in-process; `angzarr controlplane` requires --cert/--key/--ca or
	// --insecure.
	Identity identity.Config
}

// Validate reports every problem of the configuration at once.
func (c *Config) Validate() error {
	var errs []error
	kube := c.Kubernetes != "" || c.KubernetesClient != nil
	if c.Topology == "" && !kube {
		errs = append(errs, errors.New("no source: give a topology file, Kubernetes, or both"))
	}
	if c.Topology == "" && kube {
		if err := checkAddress(c.EventService); err != nil {
			errs = append(errs, fmt.Errorf("event service (needed without a topology file): %w", err))
		}
	}
	if c.PollInterval < 0 {
		errs = append(errs, errors.New("poll interval: must not be negative"))
	}
	if c.MetricsListen != "" && c.MetricsListener != nil {
		errs = append(errs, errors.New("metrics: an address and a listener are both set"))
	}
	if err := c.Filter.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Identity != (identity.Config{}) {
		if err := c.Identity.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ControlPlane reconciles its sources into xDS snapshots and serves them.
type ControlPlane struct {
	cfg    Config
	log    *slog.Logger
	tracer trace.Tracer
	pub    *Publisher
	kube   kubernetes.Interface
	// promReg and promShutdown are the Prometheus exporter's registry and
	// meter provider shutdown when MetricsListener is served (else nil).
	promReg      *prometheus.Registry
	promShutdown func(context.Context) error
	schemas      *schemaGuard

	mu        sync.Mutex
	applied   *Topology  // last topology applied
	file      *Topology  // last good topology file
	workloads []Workload // last Kubernetes workloads
	haveFile  bool
	haveKube  bool
	lastErr   error
}

// New validates the configuration and builds a control plane. It connects
// to Kubernetes when asked to, but starts nothing.
func New(cfg Config) (*ControlPlane, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("controlplane: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	var promReg *prometheus.Registry
	var promShutdown func(context.Context) error
	if cfg.MeterProvider == nil && cfg.MetricsListener != nil {
		var err error
		if cfg.MeterProvider, promReg, promShutdown, err = prometheusProvider(); err != nil {
			return nil, fmt.Errorf("controlplane: %w", err)
		}
	}
	if cfg.MeterProvider == nil {
		cfg.MeterProvider = otel.GetMeterProvider()
	}
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = otel.GetTracerProvider()
	}
	tracer := cfg.TracerProvider.Tracer(tracerName)
	cp := &ControlPlane{cfg: cfg, log: cfg.Logger, tracer: tracer, kube: cfg.KubernetesClient,
		promReg: promReg, promShutdown: promShutdown}
	if cp.kube == nil && cfg.Kubernetes != "" {
		k, err := NewKubernetesClient(cfg.Kubernetes)
		if err != nil {
			return nil, fmt.Errorf("controlplane: %w", err)
		}
		cp.kube = k
	}
	var pub *Publisher
	m, err := newMetrics(cfg.MeterProvider, func() int64 { return pub.connectedNodes() })
	if err != nil {
		return nil, fmt.Errorf("controlplane: metrics: %w", err)
	}
	pub = newPublisher(cfg.Logger, cfg.Filter, m, tracer)
	cp.pub = pub
	if cp.schemas, err = newSchemaGuard(cfg.Logger, cfg.Topology, cfg.SchemaRegistry, cfg.MeterProvider); err != nil {
		return nil, fmt.Errorf("controlplane: metrics: %w", err)
	}
	return cp, nil
}

// Publisher is the control plane's cache layer.
func (cp *ControlPlane) Publisher() *Publisher { return cp.pub }

// LastError is the problem with the last topology the sources produced
// (nil when it was applied).
func (cp *ControlPlane) LastError() error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.lastErr
}

// Serve runs the sources and serves xDS on lis (and the metrics on
// Config.MetricsListener) until ctx is done.
func (cp *ControlPlane) Serve(ctx context.Context, lis net.Listener) error {
	// The identity first: nothing starts with certificates that do not load.
	var files *identity.Files
	if cp.cfg.Identity != (identity.Config{}) {
		var err error
		if files, err = cp.cfg.Identity.Load("controlplane", cp.log); err != nil {
			lis.Close()
			return fmt.Errorf("controlplane: %w", err)
		}
		if files != nil {
			cp.log.Info("xDS over mTLS", "identity", files.ID().String())
		}
	}
	// The schema registry is called with the control plane's identity.
	cp.schemas.registryDial = identity.DialOption(files, identity.ID{})
	g, ctx := errgroup.WithContext(ctx)
	if mlis := cp.cfg.MetricsListener; mlis != nil {
		if cp.promReg == nil { // a MeterProvider of the caller's
			mlis.Close()
		} else {
			cp.log.Info("metrics", "addr", mlis.Addr().String(), "path", "/metrics")
			g.Go(func() error { return serveMetrics(ctx, mlis, cp.promReg, cp.promShutdown) })
		}
	}
	if cp.cfg.Topology != "" {
		g.Go(func() error {
			watchFile(ctx, cp.cfg.Topology, cp.cfg.PollInterval, cp.fileChanged)
			return nil
		})
	}
	if cp.kube != nil {
		g.Go(func() error {
			err := watchKubernetes(ctx, cp.kube, cp.cfg.Namespace, cp.log, cp.workloadsChanged)
			if err != nil && ctx.Err() == nil {
				return fmt.Errorf("kubernetes source: %w", err)
			}
			return nil
		})
	}
	g.Go(func() error { return serveXDS(ctx, lis, cp.pub, identity.ServerOption(files)) })
	if iv := cmp.Or(cp.cfg.SchemaInterval, 30*time.Second); iv > 0 {
		g.Go(func() error { cp.recheckSchemas(ctx, iv); return nil })
	}
	defer cp.schemas.close()
	return g.Wait()
}

// Run serves the control plane on cfg.Listen (metrics on
// cfg.MetricsListen, the filter module on cfg.ServeModuleListen) until ctx
// is done.
func Run(ctx context.Context, cfg Config) error {
	var module []byte
	if cfg.ServeModule != "" {
		var sum string
		var err error
		if module, sum, err = moduleDigest(cfg.ServeModule); err != nil {
			return fmt.Errorf("controlplane: %w", err)
		}
		if cfg.Filter.WasmURL != "" && cfg.Filter.WasmSHA256 == "" {
			cfg.Filter.WasmSHA256 = sum
		}
		if cfg.ServeModuleListen == "" {
			cfg.ServeModuleListen = ":8080"
		}
	}
	if cfg.MetricsListen != "" && cfg.MeterProvider == nil && cfg.MetricsListener == nil {
		mlis, err := net.Listen("tcp", cfg.MetricsListen)
		if err != nil {
			return fmt.Errorf("controlplane: metrics listener: %w", err)
		}
		cfg.MetricsListener, cfg.MetricsListen = mlis, "" // served by Serve
	}
	closeMetrics := func() {
		if cfg.MetricsListener != nil {
			cfg.MetricsListener.Close()
		}
	}
	cp, err := New(cfg)
	if err != nil {
		closeMetrics()
		return err
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		closeMetrics()
		return fmt.Errorf("controlplane: %w", err)
	}
	cp.log.Info("control plane serving xDS", "addr", lis.Addr().String(), "topology", cfg.Topology,
		"kubernetes", cfg.Kubernetes != "" || cfg.KubernetesClient != nil)
	g, gctx := errgroup.WithContext(ctx)
	if module != nil {
		mlis, err := net.Listen("tcp", cfg.ServeModuleListen)
		if err != nil {
			lis.Close()
			closeMetrics()
			return fmt.Errorf("controlplane: module listener: %w", err)
		}
		cp.log.Info("serving the filter module", "addr", mlis.Addr().String(), "path", ModulePath, "sha256", cfg.Filter.WasmSHA256)
		g.Go(func() error { return serveModule(gctx, mlis, module) })
	}
	g.Go(func() error { return cp.Serve(gctx, lis) })
	return g.Wait()
}

// fileChanged decodes a new version of the topology file, in the span
// controlplane.load_topology.
func (cp *ControlPlane) fileChanged(data []byte, err error) {
	ctx, span := cp.tracer.Start(context.Background(), spanLoadTopology, trace.WithAttributes(
		attribute.String("source", "file"), attribute.String("path", cp.cfg.Topology), attribute.Int("bytes", len(data))))
	var t *Topology
	if err == nil {
		t, err = DecodeTopology(data)
	}
	if err != nil {
		err = fmt.Errorf("topology file %s: %w", cp.cfg.Topology, err)
		cp.reject(ctx, err)
		endSpan(span, outcomeRejected, err)
		return
	}
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.file, cp.haveFile = t, true
	cp.reconcileLocked(ctx, span)
}

// workloadsChanged takes the annotated Kubernetes workloads, in the span
// controlplane.load_topology.
func (cp *ControlPlane) workloadsChanged(ws []Workload) {
	ctx, span := cp.tracer.Start(context.Background(), spanLoadTopology, trace.WithAttributes(
		attribute.String("source", "kubernetes"), attribute.Int("workloads", len(ws))))
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.workloads, cp.haveKube = ws, true
	cp.reconcileLocked(ctx, span)
}

// reconcileLocked merges the sources and applies the result, once every
// enabled source has reported (so no annotated workload is ever served as
// pass-through merely because its source was slower). It ends span, the
// load that led to it, with the outcome.
func (cp *ControlPlane) reconcileLocked(ctx context.Context, span trace.Span) {
	if (cp.cfg.Topology != "" && !cp.haveFile) || (cp.kube != nil && !cp.haveKube) {
		endSpan(span, outcomeWaiting, nil)
		return
	}
	base := cp.file
	if base == nil {
		base = &Topology{APIVersion: TopologyAPIVersion, Kind: TopologyKind,
			Metadata: Metadata{Name: "kubernetes"}, EventService: EventService{Address: cp.cfg.EventService}}
	}
	merged := mergeWorkloads(base, cp.workloads)
	span.SetAttributes(attribute.Int("domains", len(merged.Domains)), attribute.Int("sagas", len(merged.Sagas)),
		attribute.Int("projectors", len(merged.Projectors)))
	if err := cp.schemas.check(ctx, merged); err != nil {
		err = fmt.Errorf("topology rejected, still serving version %q: %w", cp.pub.Version(), err)
		cp.pub.metrics.snapshots.Add(ctx, 1, resultAttr(resultRejected))
		cp.lastErr = err
		cp.log.Error("topology rejected; the last good configuration keeps serving", "version", cp.pub.Version(), "err", err)
		endSpan(span, outcomeRejected, err)
		return
	}
	version, unchanged, err := cp.pub.apply(ctx, merged)
	span.SetAttributes(attribute.String("version", version))
	if err != nil {
		cp.lastErr = err
		cp.log.Error("topology rejected; the last good configuration keeps serving", "version", version, "err", err)
		endSpan(span, outcomeRejected, err)
		return
	}
	outcome := outcomeApplied
	if unchanged {
		outcome = outcomeUnchanged
	}
	endSpan(span, outcome, nil)
	cp.lastErr, cp.applied = nil, merged
	cp.log.Info("topology applied", "version", version, "domains", len(merged.Domains),
		"sagas", len(merged.Sagas), "projectors", len(merged.Projectors), "workloads", len(cp.workloads))
	if !unchanged {
		var untyped []string
		for _, d := range merged.Domains {
			if len(d.EventTypes) == 0 {
				untyped = append(untyped, d.Name)
			}
		}
		if len(untyped) > 0 {
			cp.log.Info("domains declaring no eventTypes: their filters refuse every Record", "domains", untyped)
		}
	}
}

// recheckSchemas registers the applied topology's descriptors again every
// interval: a descriptor file may change, a new binary may roll out. A
// refusal then is logged and counted, and the registry shows it (angzarr
// schema status); the running configuration is left as it is. After a
// check that could not reach the registry (it may start after the control
// plane) the next one comes sooner: 1s, doubling up to the interval.
func (cp *ControlPlane) recheckSchemas(ctx context.Context, interval time.Duration) {
	timer := time.NewTimer(interval)
	defer timer.Stop()
	wait := time.Second
	for {
		select {
		case <-ctx.Done():
			return
		case <-cp.schemas.kick:
			timer.Reset(wait)
			wait = min(2*wait, interval)
			continue
		case <-timer.C:
		}
		cp.mu.Lock()
		t := cp.applied
		cp.mu.Unlock()
		timer.Reset(interval)
		if t == nil {
			continue
		}
		err := cp.schemas.check(ctx, t)
		if len(cp.schemas.kick) == 0 {
			wait = time.Second // registered everything: back to the start of the back-off
		}
		if err != nil {
			cp.log.Error("schema registry refused descriptors of running logic: stored events of the domain may be misread", "err", err)
		}
	}
}

// reject records a topology that could not even be decoded.
func (cp *ControlPlane) reject(ctx context.Context, err error) {
	cp.pub.metrics.snapshots.Add(ctx, 1, resultAttr(resultRejected))
	cp.mu.Lock()
	cp.lastErr = err
	cp.mu.Unlock()
	cp.log.Error("topology rejected; the last good configuration keeps serving", "version", cp.pub.Version(), "err", err)
}
