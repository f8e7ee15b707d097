package controlplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// metrics owns the control plane's OpenTelemetry instruments.
type metrics struct {
	pushes    metric.Int64Counter
	nacks     metric.Int64Counter
	snapshots metric.Int64Counter
	translate metric.Float64Histogram
	denied    metric.Int64Counter
}

// Attribute values of angzarr.controlplane.snapshots.
const (
	resultApplied   = "applied"
	resultUnchanged = "unchanged"
	resultRejected  = "rejected"
)

// newMetrics creates the instruments on mp (a no-op provider when nil);
// connected reports the number of connected nodes when observed.
func newMetrics(mp metric.MeterProvider, connected func() int64) (*metrics, error) {
	if mp == nil {
		mp = noop.NewMeterProvider()
	}
	m := mp.Meter("github.com/angzarr-mesh/angzarr/controlplane")
	var err error
	out := &metrics{}
	if out.pushes, err = m.Int64Counter("angzarr.controlplane.pushes",
		metric.WithDescription("xDS responses sent to proxies, by type URL"),
		metric.WithUnit("{response}")); err != nil {
		return nil, err
	}
	if out.nacks, err = m.Int64Counter("angzarr.controlplane.nacks",
		metric.WithDescription("xDS responses a proxy rejected (NACK), by type URL"),
		metric.WithUnit("{response}")); err != nil {
		return nil, err
	}
	if out.snapshots, err = m.Int64Counter("angzarr.controlplane.snapshots",
		metric.WithDescription("topology versions processed, by result (applied, unchanged, rejected)"),
		metric.WithUnit("{snapshot}")); err != nil {
		return nil, err
	}
	if out.denied, err = m.Int64Counter("angzarr.controlplane.xds.denied",
		metric.WithDescription("xDS requests refused because the client's certificate may not have the configuration asked for, by reason"),
		metric.WithUnit("{request}")); err != nil {
		return nil, err
	}
	if out.translate, err = m.Float64Histogram("angzarr.controlplane.translate.duration",
		metric.WithDescription("time to translate, verify and publish a topology"),
		metric.WithUnit("s")); err != nil {
		return nil, err
	}
	if _, err = m.Int64ObservableGauge("angzarr.controlplane.connected_nodes",
		metric.WithDescription("proxies with an open xDS stream"),
		metric.WithUnit("{node}"),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(connected())
			return nil
		})); err != nil {
		return nil, err
	}
	return out, nil
}

func reasonAttr(reason string) metric.MeasurementOption {
	return metric.WithAttributes(attribute.String("reason", reason))
}

func typeAttr(typeURL string) metric.MeasurementOption {
	return metric.WithAttributes(attribute.String("type_url", typeURL))
}

func resultAttr(result string) metric.MeasurementOption {
	return metric.WithAttributes(attribute.String("result", result))
}

// prometheusProvider is a meter provider exporting through OpenTelemetry's
// Prometheus exporter into a registry of its own (plus the Go runtime and
// process collectors).
func prometheusProvider() (metric.MeterProvider, *prometheus.Registry, func(context.Context) error, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	return mp, reg, mp.Shutdown, nil
}

// serveMetrics serves the registry at /metrics on lis until ctx is done.
func serveMetrics(ctx context.Context, lis net.Listener, reg *prometheus.Registry, shutdown func(context.Context) error) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := errors.Join(srv.Shutdown(sctx), shutdown(sctx))
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
