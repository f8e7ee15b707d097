package server

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// metrics are the server's OpenTelemetry instruments.
type metrics struct {
	appends       metric.Int64Counter
	events        metric.Int64Counter
	appendSeconds metric.Float64Histogram
	loads         metric.Int64Counter
	loadSeconds   metric.Float64Histogram
	subscriptions metric.Int64UpDownCounter

	outcomes map[string]outcomeOpts // cached attribute sets by outcome
}

// outcomeOpts are an outcome's attribute set as the options of Add and
// Record, held in slices so that passing them allocates nothing.
type outcomeOpts struct {
	add    []metric.AddOption
	record []metric.RecordOption
}

func newOutcomeOpts(o metric.MeasurementOption) outcomeOpts {
	return outcomeOpts{add: []metric.AddOption{o}, record: []metric.RecordOption{o}}
}

var outcomeNames = []string{"ok", "duplicate", "conflict", "invalid", "unavailable", "error"}

func newMetrics(mp metric.MeterProvider) (*metrics, error) {
	if mp == nil {
		mp = noop.NewMeterProvider()
	}
	m := mp.Meter("github.com/angzarr-mesh/angzarr/eventsvc")
	var (
		ms  metrics
		err error
	)
	buckets := metric.WithExplicitBucketBoundaries(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)
	if ms.appends, err = m.Int64Counter("angzarr.eventsvc.appends", metric.WithDescription("Append calls by outcome (ok, duplicate, conflict, invalid, unavailable, error).")); err != nil {
		return nil, err
	}
	if ms.events, err = m.Int64Counter("angzarr.eventsvc.appended_events", metric.WithDescription("Events stored.")); err != nil {
		return nil, err
	}
	if ms.appendSeconds, err = m.Float64Histogram("angzarr.eventsvc.append.duration", metric.WithUnit("s"), metric.WithDescription("Append latency."), buckets); err != nil {
		return nil, err
	}
	if ms.loads, err = m.Int64Counter("angzarr.eventsvc.loads", metric.WithDescription("Load calls by outcome.")); err != nil {
		return nil, err
	}
	if ms.loadSeconds, err = m.Float64Histogram("angzarr.eventsvc.load.duration", metric.WithUnit("s"), metric.WithDescription("Load latency."), buckets); err != nil {
		return nil, err
	}
	if ms.subscriptions, err = m.Int64UpDownCounter("angzarr.eventsvc.subscriptions", metric.WithDescription("Open Synchronize streams.")); err != nil {
		return nil, err
	}
	ms.outcomes = map[string]outcomeOpts{}
	for _, o := range outcomeNames {
		ms.outcomes[o] = newOutcomeOpts(metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", o))))
	}
	return &ms, nil
}

func (m *metrics) observe(ctx context.Context, c metric.Int64Counter, h metric.Float64Histogram, start time.Time, outcome string) {
	opts, ok := m.outcomes[outcome]
	if !ok {
		opts = newOutcomeOpts(metric.WithAttributes(attribute.String("outcome", outcome)))
	}
	c.Add(ctx, 1, opts.add...)
	h.Record(ctx, time.Since(start).Seconds(), opts.record...)
}
