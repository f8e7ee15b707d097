package fanout

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// metrics are the dispatcher's OpenTelemetry instruments.
type metrics struct {
	deliveries  metric.Int64Counter
	deadLetters metric.Int64Counter
	sagaCmds    metric.Int64Counter
	lagSeconds  metric.Float64Histogram
}

func newMetrics(mp metric.MeterProvider) (*metrics, error) {
	if mp == nil {
		mp = noop.NewMeterProvider()
	}
	m := mp.Meter("github.com/angzarr-mesh/angzarr/eventsvc/fanout")
	var (
		ms  metrics
		err error
	)
	if ms.deliveries, err = m.Int64Counter("angzarr.fanout.deliveries", metric.WithDescription("Deliveries to subscribers by outcome (ok, retry, failed: out of attempts or refused, replayed).")); err != nil {
		return nil, err
	}
	if ms.deadLetters, err = m.Int64Counter("angzarr.fanout.dead_letters", metric.WithDescription("Log entries parked in the dead-letter log.")); err != nil {
		return nil, err
	}
	if ms.sagaCmds, err = m.Int64Counter("angzarr.fanout.saga_commands", metric.WithDescription("Saga commands executed.")); err != nil {
		return nil, err
	}
	if ms.lagSeconds, err = m.Float64Histogram("angzarr.fanout.lag", metric.WithUnit("s"),
		metric.WithDescription("Time from an event's append to its delivery."),
		metric.WithExplicitBucketBoundaries(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30)); err != nil {
		return nil, err
	}
	return &ms, nil
}

func (m *metrics) delivered(ctx context.Context, subscriber, outcome string) {
	m.deliveries.Add(ctx, 1, metric.WithAttributes(attribute.String("subscriber", subscriber), attribute.String("outcome", outcome)))
}

func (m *metrics) deadLetter(ctx context.Context, subscriber string) {
	m.deadLetters.Add(ctx, 1, metric.WithAttributes(attribute.String("subscriber", subscriber)))
}

func (m *metrics) commands(ctx context.Context, subscriber string, n int) {
	if n > 0 {
		m.sagaCmds.Add(ctx, int64(n), metric.WithAttributes(attribute.String("subscriber", subscriber)))
	}
}

func (m *metrics) lag(ctx context.Context, subscriber string, d time.Duration) {
	m.lagSeconds.Record(ctx, d.Seconds(), metric.WithAttributes(attribute.String("subscriber", subscriber)))
}
