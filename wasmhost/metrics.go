package wasmhost

import (
	"context"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/angzarr-mesh/angzarr/internal/proxywasm"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	otelmetric "go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// metricsRegistry owns every metric of the host: the plugin's (defined with
// proxy_define_metric, shared by name across VMs like Envoy's stats) and the
// host's own. It renders them in Prometheus text format the way Envoy's
// /stats/prometheus does: plugin metrics live in Envoy's "wasmcustom"
// namespace, which is exported without the "envoy_" prefix, so a plugin
// counter "angzarr_commands" is exported as angzarr_commands.
type metricsRegistry struct {
	mu     sync.Mutex
	plugin map[string]*metric // by type+name

	streams       atomic.Int64
	activeStreams atomic.Int64
	vmFailures    atomic.Int64
	vmsCreated    atomic.Int64
}

func newMetricsRegistry() *metricsRegistry {
	return &metricsRegistry{plugin: map[string]*metric{}}
}

// histogramBuckets are Envoy's default histogram bucket bounds.
var histogramBuckets = []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}

// metric is one plugin-defined counter, gauge or histogram.
type metric struct {
	typ   proxywasm.MetricType
	name  string
	value atomic.Int64 // counter (as uint64) or gauge

	hmu     sync.Mutex
	buckets []uint64
	sum     float64
	count   uint64
}

func (r *metricsRegistry) define(t proxywasm.MetricType, name string) *metric {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := strconv.Itoa(int(t)) + "/" + name
	m, ok := r.plugin[key]
	if !ok {
		m = &metric{typ: t, name: name}
		if t == proxywasm.MetricHistogram {
			m.buckets = make([]uint64, len(histogramBuckets))
		}
		r.plugin[key] = m
	}
	return m
}

func (m *metric) record(v uint64) {
	m.hmu.Lock()
	defer m.hmu.Unlock()
	for i, b := range histogramBuckets {
		if float64(v) <= b {
			m.buckets[i]++
		}
	}
	m.sum += float64(v)
	m.count++
}

// sanitizeMetricName maps a stat name to a Prometheus name: any character
// outside [a-zA-Z0-9_] becomes '_'. Names not starting with [a-zA-Z_] are
// not exported (Envoy skips them too).
func sanitizeMetricName(name string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') {
			b.WriteByte(c)
		} else {
			b.WriteByte('_')
		}
	}
	s := b.String()
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		return "", false
	}
	return s, true
}

func formatFloat(f float64) string {
	if math.IsInf(f, 1) {
		return "+Inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// writePrometheus renders every metric.
func (r *metricsRegistry) writePrometheus(w io.Writer) {
	r.mu.Lock()
	ms := make([]*metric, 0, len(r.plugin))
	for _, m := range r.plugin {
		ms = append(ms, m)
	}
	r.mu.Unlock()
	sort.Slice(ms, func(i, j int) bool {
		return ms[i].name < ms[j].name || (ms[i].name == ms[j].name && ms[i].typ < ms[j].typ)
	})
	for _, m := range ms {
		name, ok := sanitizeMetricName(m.name)
		if !ok {
			continue
		}
		switch m.typ {
		case proxywasm.MetricCounter:
			fmt.Fprintf(w, "# TYPE %s counter\n%s{} %d\n", name, name, uint64(m.value.Load()))
		case proxywasm.MetricGauge:
			fmt.Fprintf(w, "# TYPE %s gauge\n%s{} %d\n", name, name, m.value.Load())
		case proxywasm.MetricHistogram:
			m.hmu.Lock()
			fmt.Fprintf(w, "# TYPE %s histogram\n", name)
			for i, b := range histogramBuckets {
				fmt.Fprintf(w, "%s_bucket{le=\"%s\"} %d\n", name, formatFloat(b), m.buckets[i])
			}
			fmt.Fprintf(w, "%s_bucket{le=\"+Inf\"} %d\n", name, m.count)
			fmt.Fprintf(w, "%s_sum{} %s\n%s_count{} %d\n", name, formatFloat(m.sum), name, m.count)
			m.hmu.Unlock()
		}
	}
	host := []struct {
		name, typ string
		v         int64
	}{
		{"wasmhost_streams_total", "counter", r.streams.Load()},
		{"wasmhost_active_streams", "gauge", r.activeStreams.Load()},
		{"wasmhost_vm_failures_total", "counter", r.vmFailures.Load()},
		{"wasmhost_vms_created_total", "counter", r.vmsCreated.Load()},
	}
	for _, m := range host {
		fmt.Fprintf(w, "# TYPE %s %s\n%s{} %d\n", m.name, m.typ, m.name, m.v)
	}
}

// commandMetrics are the host's OpenTelemetry instruments: the seed's
// angzarr.command.duration and angzarr.command.total, recorded when a
// stream whose plugin set the angzarr.domain property ends. Unlike the
// plugin's metrics they carry attributes (domain, outcome).
type commandMetrics struct {
	duration otelmetric.Float64Histogram
	total    otelmetric.Int64Counter
	attrs    commandAttrTable
	// reg is the private registry of the default provider, rendered at
	// /stats/prometheus; nil with Config.MeterProvider.
	reg      *prometheus.Registry
	shutdown func(context.Context) error
}

// Names of the instruments (Prometheus: angzarr_command_duration_seconds,
// angzarr_command_total).
const (
	metricCommandDuration = "angzarr.command.duration"
	metricCommandTotal    = "angzarr.command.total"
)

// newCommandMetrics creates the instruments on mp; with a nil mp on a
// meter provider of their own that exports through OpenTelemetry's
// Prometheus exporter into a private registry.
func newCommandMetrics(mp otelmetric.MeterProvider) (*commandMetrics, error) {
	m := &commandMetrics{shutdown: func(context.Context) error { return nil }}
	if mp == nil {
		m.reg = prometheus.NewRegistry()
		exp, err := otelprom.New(otelprom.WithRegisterer(m.reg), otelprom.WithoutTargetInfo())
		if err != nil {
			return nil, fmt.Errorf("wasmhost: prometheus exporter: %w", err)
		}
		p := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
		mp, m.shutdown = p, p.Shutdown
	}
	meter := mp.Meter(tracerScope)
	var err error
	if m.duration, err = meter.Float64Histogram(metricCommandDuration,
		otelmetric.WithDescription("commands through the proxy, from the request's start to the stream's end, by domain and outcome"),
		otelmetric.WithUnit("s"),
		otelmetric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)); err != nil {
		return nil, err
	}
	if m.total, err = meter.Int64Counter(metricCommandTotal,
		otelmetric.WithDescription("commands through the proxy, by domain and outcome"),
		otelmetric.WithUnit("{command}")); err != nil {
		return nil, err
	}
	return m, nil
}

// recordWith counts one finished command with its (domain, outcome)
// options from commandAttrsFor.
func (m *commandMetrics) recordWith(a *commandAttrs, d time.Duration) {
	ctx := context.Background()
	m.duration.Record(ctx, d.Seconds(), a.rec...)
	m.total.Add(ctx, 1, a.add...)
}

// commandAttrs are the measurement options of one (domain, outcome): an
// attribute set is sorted and hashed when built, so it is built once per
// pair rather than per command.
type commandAttrs struct {
	rec []otelmetric.RecordOption
	add []otelmetric.AddOption
}

func newCommandAttrs(domain, outcome string) *commandAttrs {
	o := otelmetric.WithAttributeSet(attribute.NewSet(attribute.String("domain", domain), attribute.String("outcome", outcome)))
	return &commandAttrs{rec: []otelmetric.RecordOption{o}, add: []otelmetric.AddOption{o}}
}

// commandAttrTable holds the commandAttrs by domain and outcome
// (copy-on-write, lock-free reads), up to maxCommandAttrs pairs: domains
// come from requests, so beyond that they are built per command.
type commandAttrTable struct {
	m  atomic.Pointer[map[string]map[string]*commandAttrs]
	mu sync.Mutex
	n  int
}

const maxCommandAttrs = 256

// commandAttrsFor looks the pair up (a []byte key is not copied).
func commandAttrsFor[T string | []byte](t *commandAttrTable, domain, outcome T) *commandAttrs {
	if m := t.m.Load(); m != nil {
		if a, ok := (*m)[string(domain)][string(outcome)]; ok {
			return a
		}
	}
	d, o := string(domain), string(outcome)
	a := newCommandAttrs(d, o)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n >= maxCommandAttrs {
		return a
	}
	var old map[string]map[string]*commandAttrs
	if p := t.m.Load(); p != nil {
		old = *p
	}
	if cur, ok := old[d][o]; ok {
		return cur
	}
	m := make(map[string]map[string]*commandAttrs, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	inner := make(map[string]*commandAttrs, len(old[d])+1)
	for k, v := range old[d] {
		inner[k] = v
	}
	inner[o] = a
	m[d] = inner
	t.m.Store(&m)
	t.n++
	return a
}

// writePrometheus renders the private registry (nothing with
// Config.MeterProvider).
func (m *commandMetrics) writePrometheus(w io.Writer) error {
	if m.reg == nil {
		return nil
	}
	mfs, err := m.reg.Gather()
	if err != nil {
		return err
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return err
		}
	}
	return nil
}
