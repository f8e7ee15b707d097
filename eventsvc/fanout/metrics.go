package fanout

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// metrics are the dispatcher's OpenTelemetry instruments.
type metrics struct {
	deliveries  metric.Int64Counter
	deadLetters metric.Int64Counter
	sagaCmds    metric.Int64Counter
	lagSeconds  metric.Float64Histogram

	sagaDuration      metric.Float64Histogram
	sagaRetries       metric.Int64Counter
	sagaCompensations metric.Int64Counter
	projectorDuration metric.Float64Histogram
	busPublish        metric.Float64Histogram
	pmDuration        metric.Float64Histogram
	pmConflicts       metric.Int64Counter
	leases            metric.Int64Counter
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
	if ms.sagaCmds, err = m.Int64Counter("angzarr.fanout.saga_commands", metric.WithDescription("Saga command executions by outcome (ok, retry, refused: compensated, failed: parked after the last attempt, replayed).")); err != nil {
		return nil, err
	}
	if ms.lagSeconds, err = m.Float64Histogram("angzarr.fanout.lag", metric.WithUnit("s"),
		metric.WithDescription("Time from an event's append to its delivery."),
		metric.WithExplicitBucketBoundaries(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30)); err != nil {
		return nil, err
	}
	durations := metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
	if ms.sagaDuration, err = m.Float64Histogram("angzarr.saga.duration", metric.WithUnit("s"), durations,
		metric.WithDescription("Saga delivery of one log entry, every attempt and the commands included, by saga, source domain and outcome (ok, failed).")); err != nil {
		return nil, err
	}
	if ms.sagaRetries, err = m.Int64Counter("angzarr.saga.retry.total",
		metric.WithDescription("Saga delivery attempts after the first, by saga and source domain.")); err != nil {
		return nil, err
	}
	if ms.sagaCompensations, err = m.Int64Counter("angzarr.saga.compensation.total",
		metric.WithDescription("Compensations of refused saga commands by saga, source domain, outcome (compensated by the origin aggregate, recorded, dead_lettered, escalated, stopped) and fallback (true when the saga's fallback applied).")); err != nil {
		return nil, err
	}
	if ms.projectorDuration, err = m.Float64Histogram("angzarr.projector.duration", metric.WithUnit("s"), durations,
		metric.WithDescription("Projector delivery of one log entry, every attempt included, by projector, source domain and outcome (ok, failed).")); err != nil {
		return nil, err
	}
	if ms.busPublish, err = m.Float64Histogram("angzarr.bus.publish.duration", metric.WithUnit("s"), durations,
		metric.WithDescription("Time from an event's append to the log to its successful delivery, by subscriber, kind and source domain.")); err != nil {
		return nil, err
	}
	if ms.pmDuration, err = m.Float64Histogram("angzarr.pm.duration", metric.WithUnit("s"), durations,
		metric.WithDescription("Process manager delivery of one log entry (load, Handle, append, commands, every attempt included) by process manager, source domain and outcome (ok, failed).")); err != nil {
		return nil, err
	}
	if ms.pmConflicts, err = m.Int64Counter("angzarr.pm.conflict.total",
		metric.WithDescription("Process manager steps decided again because another step of the workflow was stored first, by process manager.")); err != nil {
		return nil, err
	}
	if ms.leases, err = m.Int64Counter("angzarr.fanout.lease.acquired",
		metric.WithDescription("Partition leases this replica acquired (a start, a rebalance or a handover), by domain.")); err != nil {
		return nil, err
	}
	return &ms, nil
}

// leaseAcquired counts one partition lease taken by this replica.
func (m *metrics) leaseAcquired(ctx context.Context, domain string) {
	m.leases.Add(ctx, 1, metric.WithAttributes(attribute.String("domain", domain)))
}

// pmConflict counts one step decided again after a write conflict.
func (m *metrics) pmConflict(ctx context.Context, subscriber string) {
	m.pmConflicts.Add(ctx, 1, metric.WithAttributes(attribute.String("subscriber", subscriber)))
}

// handled records one delivery of a log entry to sub (every attempt): its
// duration and, for sagas, the retries.
func (m *metrics) handled(ctx context.Context, sub *pb.Subscription, domain string, d time.Duration, attempts int, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "failed"
	}
	name := attribute.String("subscriber", sub.GetName())
	dom := attribute.String("domain", domain)
	switch sub.GetKind() {
	case pb.SubscriberKind_SUBSCRIBER_KIND_PROCESS_MANAGER:
		m.pmDuration.Record(ctx, d.Seconds(), metric.WithAttributes(name, dom, attribute.String("outcome", outcome)))
		return
	case pb.SubscriberKind_SUBSCRIBER_KIND_SAGA:
		m.sagaDuration.Record(ctx, d.Seconds(), metric.WithAttributes(name, dom, attribute.String("outcome", outcome)))
		if attempts > 1 {
			m.sagaRetries.Add(ctx, int64(attempts-1), metric.WithAttributes(name, dom))
		}
		return
	}
	m.projectorDuration.Record(ctx, d.Seconds(), metric.WithAttributes(name, dom, attribute.String("outcome", outcome)))
}

// published records the time from an event's append to its delivery.
func (m *metrics) published(ctx context.Context, sub *pb.Subscription, domain string, d time.Duration) {
	kind := "projector"
	switch sub.GetKind() {
	case pb.SubscriberKind_SUBSCRIBER_KIND_SAGA:
		kind = "saga"
	case pb.SubscriberKind_SUBSCRIBER_KIND_PROCESS_MANAGER:
		kind = "process_manager"
	}
	m.busPublish.Record(ctx, d.Seconds(), metric.WithAttributes(attribute.String("subscriber", sub.GetName()), attribute.String("kind", kind), attribute.String("domain", domain)))
}

// compensation counts one outcome of a refused saga command's
// compensation: compensated (by the origin aggregate's events), recorded,
// dead_lettered, escalated, stopped; fallback tells the saga's fallback
// from the origin's request.
func (m *metrics) compensation(ctx context.Context, subscriber, domain, outcome string, fallback bool) {
	m.sagaCompensations.Add(ctx, 1, metric.WithAttributes(attribute.String("subscriber", subscriber), attribute.String("domain", domain),
		attribute.String("outcome", outcome), attribute.Bool("fallback", fallback)))
}

func (m *metrics) delivered(ctx context.Context, subscriber, outcome string) {
	m.deliveries.Add(ctx, 1, metric.WithAttributes(attribute.String("subscriber", subscriber), attribute.String("outcome", outcome)))
}

func (m *metrics) deadLetter(ctx context.Context, subscriber string) {
	m.deadLetters.Add(ctx, 1, metric.WithAttributes(attribute.String("subscriber", subscriber)))
}

// command counts one execution of a saga command by outcome: ok, retry
// (a transient failure, tried again), refused (a business refusal, not
// retried: compensated), failed (parked after the last attempt), replayed
// (a parked command sent again successfully).
func (m *metrics) command(ctx context.Context, subscriber, outcome string) {
	m.sagaCmds.Add(ctx, 1, metric.WithAttributes(attribute.String("subscriber", subscriber), attribute.String("outcome", outcome)))
}

func (m *metrics) lag(ctx context.Context, subscriber string, d time.Duration) {
	m.lagSeconds.Record(ctx, d.Seconds(), metric.WithAttributes(attribute.String("subscriber", subscriber)))
}
