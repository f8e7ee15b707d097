package instrumented

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
)

// Operation names, the operation label of angzarr.storage.duration_seconds.
const (
	opAppend           = "append"
	opLoad             = "load"
	opRange            = "range"
	opByCorrelation    = "by_correlation"
	opRoots            = "roots"
	opReadLog          = "read_log"
	opOpenCheckpoint   = "open_checkpoint"
	opFetch            = "fetch"
	opCommit           = "commit"
	opProgress         = "progress"
	opResetCheckpoint  = "reset_checkpoint"
	opAddDeadLetter    = "add_dead_letter"
	opListDeadLetters  = "list_dead_letters"
	opRemoveDeadLetter = "remove_dead_letter"
)

var operations = []string{opAppend, opLoad, opRange, opByCorrelation, opRoots, opReadLog, opOpenCheckpoint, opFetch, opCommit, opProgress, opResetCheckpoint, opAddDeadLetter, opListDeadLetters, opRemoveDeadLetter}

// Outcome names, the outcome label.
var outcomes = []string{"ok", "duplicate", "conflict", "invalid", "unavailable", "not_found", "canceled", "error"}

// Outcome names the result of a store operation for the outcome label:
// ok, conflict, invalid, unavailable, not_found, canceled or error
// ("duplicate" is an Append that repeated an idempotency key).
func Outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, store.ErrConflict):
		return "conflict"
	case errors.Is(err, store.ErrInvalid):
		return "invalid"
	case errors.Is(err, store.ErrUnavailable):
		return "unavailable"
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrNoCheckpoint):
		return "not_found"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	}
	return "error"
}

// metrics are the decorator's instruments.
type metrics struct {
	duration  metric.Float64Histogram
	stored    metric.Int64Counter
	loaded    metric.Int64Counter
	snapshots metric.Int64Counter
	positions metric.Int64Counter

	// attrs caches the duration's attribute sets by operation and outcome.
	attrs map[[2]string]metric.RecordOption
	// domains caches the counters' domain attribute sets (a set costs a
	// hash of its attributes to build, once per domain instead of once per
	// append); bounded by maxCachedDomains.
	domains  sync.Map // string → metric.AddOption
	ndomains atomic.Int32
	// backend is the backend label.
	backend attribute.KeyValue
}

func newMetrics(mp metric.MeterProvider, backend string) (*metrics, error) {
	if mp == nil {
		mp = noop.NewMeterProvider()
	}
	m := mp.Meter("github.com/angzarr-mesh/angzarr/eventsvc/store/instrumented")
	ms := metrics{backend: attribute.String("backend", backend), attrs: map[[2]string]metric.RecordOption{}}
	var err error
	if ms.duration, err = m.Float64Histogram("angzarr.storage.duration_seconds", metric.WithUnit("s"),
		metric.WithDescription("Storage operation latency by backend, operation and outcome."),
		metric.WithExplicitBucketBoundaries(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)); err != nil {
		return nil, err
	}
	if ms.stored, err = m.Int64Counter("angzarr.events.stored_total", metric.WithDescription("Events stored, by domain.")); err != nil {
		return nil, err
	}
	if ms.loaded, err = m.Int64Counter("angzarr.events.loaded_total", metric.WithDescription("Events loaded to rebuild aggregates (Load), by domain.")); err != nil {
		return nil, err
	}
	if ms.snapshots, err = m.Int64Counter("angzarr.snapshots.stored_total", metric.WithDescription("Snapshots stored, by domain.")); err != nil {
		return nil, err
	}
	if ms.positions, err = m.Int64Counter("angzarr.positions.updated_total", metric.WithDescription("Fan-out checkpoint commits, by subscriber, source domain and outcome.")); err != nil {
		return nil, err
	}
	for _, op := range operations {
		for _, o := range outcomes {
			ms.attrs[[2]string{op, o}] = metric.WithAttributeSet(attribute.NewSet(ms.backend, attribute.String("operation", op), attribute.String("outcome", o)))
		}
	}
	return &ms, nil
}

// observe records one operation's duration.
func (m *metrics) observe(ctx context.Context, op string, start time.Time, outcome string) {
	attrs, ok := m.attrs[[2]string{op, outcome}]
	if !ok {
		attrs = metric.WithAttributes(m.backend, attribute.String("operation", op), attribute.String("outcome", outcome))
	}
	m.duration.Record(ctx, time.Since(start).Seconds(), attrs)
}

// maxCachedDomains bounds the domain attribute sets kept by domainOption:
// domains are few, but they come from requests.
const maxCachedDomains = 1024

// domainOption is the attribute set {domain}, built once per domain.
func (m *metrics) domainOption(domain string) metric.AddOption {
	if o, ok := m.domains.Load(domain); ok {
		return o.(metric.AddOption)
	}
	o := metric.WithAttributeSet(attribute.NewSet(attribute.String("domain", domain)))
	if m.ndomains.Load() < maxCachedDomains {
		if _, loaded := m.domains.LoadOrStore(domain, o); !loaded {
			m.ndomains.Add(1)
		}
	}
	return o
}

// count adds n to c labelled with the domain and, when set, more attributes.
func (m *metrics) count(ctx context.Context, c metric.Int64Counter, n int, domain string, more ...attribute.KeyValue) {
	if n <= 0 {
		return
	}
	if len(more) == 0 {
		c.Add(ctx, int64(n), m.domainOption(domain))
		return
	}
	c.Add(ctx, int64(n), metric.WithAttributes(append(more, attribute.String("domain", domain))...))
}
