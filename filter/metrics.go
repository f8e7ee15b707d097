package filter

import (
	"fmt"
	rtmetrics "runtime/metrics"
	"time"
)

// Outcome is how a command ended, the label of the commands counter.
type Outcome string

// Command outcomes.
const (
	OutcomeOK            Outcome = "ok"
	OutcomeDuplicate     Outcome = "duplicate"
	OutcomeInvalid       Outcome = "invalid"
	OutcomeAborted       Outcome = "aborted"
	OutcomeRejected      Outcome = "rejected"
	OutcomeUnavailable   Outcome = "unavailable"
	OutcomeDenied        Outcome = "denied"
	OutcomeTooLarge      Outcome = "too_large"
	OutcomeUnimplemented Outcome = "unimplemented"
	OutcomeError         Outcome = "error"
	// OutcomeSyncFailed: the command's events were stored, but its
	// synchronous part (a projector, a saga, a cascaded command) failed.
	OutcomeSyncFailed Outcome = "sync_failed"
	// OutcomeCascadeRefused: a cascaded command exceeded the depth limit or
	// revisited an aggregate of its cascade; nothing was stored.
	OutcomeCascadeRefused Outcome = "cascade_refused"
)

// Metric names. Envoy turns the dots into its stat hierarchy; the domain and
// outcome are name segments because proxy-wasm metrics carry no tags.
//
// No name is built from a string the client chose: a domain segment is a
// domain the plugin configuration names (served, or a cascade's
// coordinator), and every other domain, an unserved one or none, is
// counted as unknownDomain (label). Projector and saga names come from
// the configuration; outcomes and reasons are constants.
const (
	metricCommands  = "angzarr.commands.%s.%s"        // domain, outcome: counter
	metricLatency   = "angzarr.command_latency_us.%s" // domain: histogram (µs)
	metricConflicts = "angzarr.conflicts.%s"          // domain: counter
	metricRetries   = "angzarr.retries.%s"            // domain: counter
	// Sync modes.
	metricProjectorCalls   = "angzarr.sync_projector_calls.%s.%s"    // projector, ok|error: counter
	metricProjectorLatency = "angzarr.sync_projector_latency_us.%s"  // projector: histogram (µs)
	metricSagaCalls        = "angzarr.sync_saga_calls.%s.%s"         // saga, ok|error: counter
	metricCascadeDepth     = "angzarr.cascade_depth.%s"              // domain: histogram of the depth each CASCADE command ran at
	metricCascadeHop       = "angzarr.cascade_command_latency_us.%s" // target domain: histogram (µs) of one cascaded command
	metricCascadeRefused   = "angzarr.cascade_refused.%s.%s"         // domain, depth|cycle: counter
	// The Go heap of all the filter's VMs in the proxy, sampled every
	// heapSampleEvery commands: live bytes after the last GC, and all
	// memory the Go runtime mapped. Envoy shares a metric by name across
	// its workers' VMs, so a value one VM sets would be overwritten by the
	// next (last writer wins): each VM adds what changed since it last
	// reported instead, and the gauge is the sum over the VMs.
	metricHeapLive  = "angzarr.filter.heap_live_bytes"      // gauge
	metricHeapTotal = "angzarr.filter.runtime_memory_bytes" // gauge
	// The filter collects its garbage itself, between streams, on the
	// worker's thread (internal/abi/gc.go): each collection's pause.
	metricGCPause = "angzarr.filter.gc_pause_us" // histogram (µs)
)

// unknownDomain is the domain segment of every command whose domain the
// configuration does not know: refused commands for any domain a client
// makes up share it, so they cannot add metrics.
const unknownDomain = "unknown"

// heapSampleEvery is how many finished commands pass between heap samples.
const heapSampleEvery = 256

// metrics owns the filter's instruments. They are defined on first use
// (never during _initialize, where proxy_define_metric would trap the VM)
// and cached by name.
type metrics struct {
	host     Host
	ids      map[string]uint32
	finished uint64
	samples  []rtmetrics.Sample
	// commands caches the per-domain metric ids command records for every
	// command, so that no name is formatted on that path; last is the
	// domain of the previous command.
	commands map[string]*commandIDs
	last     *commandIDs
	// known are the domains the configuration names: the only domains
	// that become name segments.
	known map[string]bool
	// heapSent is what this VM has added to the heap gauges so far;
	// readHeap reads the heap (runtime/metrics; tests replace it).
	heapSent [2]uint64
	readHeap func(m *metrics) (live, total uint64, ok bool)
}

// commandIDs are the ids of one domain's commands counters and latency
// histogram, once defined.
type commandIDs struct {
	domain   string
	outcomes map[Outcome]uint32
	latency  uint32
	// hasLatency: latency is defined.
	hasLatency bool
}

func newMetrics(h Host) *metrics {
	return &metrics{host: h, ids: map[string]uint32{}, commands: map[string]*commandIDs{}, known: map[string]bool{}}
}

// configure takes the domains of a new configuration: those it serves and
// those its cascades reach.
func (m *metrics) configure(domains []string, coordinators map[string]string) {
	m.known = make(map[string]bool, len(domains)+len(coordinators))
	for _, d := range domains {
		m.known[d] = true
	}
	for d := range coordinators {
		m.known[d] = true
	}
	m.last = nil
	// Defined before any collection, so that the set of metric names does
	// not change while the proxy serves.
	m.id(MetricHistogram, metricGCPause)
}

// gcPause records one garbage collection's pause.
func (m *metrics) gcPause(d time.Duration) {
	m.histogram(metricGCPause, uint64(d/time.Microsecond))
}

// label is the name segment of a domain: the domain itself when the
// configuration knows it, else unknownDomain.
func (m *metrics) label(domain string) string {
	if m.known[domain] {
		return domain
	}
	return unknownDomain
}

// id returns the metric's id, defining it the first time.
func (m *metrics) id(t MetricType, name string) (uint32, bool) {
	if id, ok := m.ids[name]; ok {
		return id, true
	}
	id, err := m.host.DefineMetric(t, name)
	if err != nil {
		m.host.Log(LogWarn, "angzarr: cannot define metric "+name+": "+err.Error())
		return 0, false
	}
	m.ids[name] = id
	return id, true
}

func (m *metrics) inc(name string) {
	if id, ok := m.id(MetricCounter, name); ok {
		_ = m.host.IncrementMetric(id, 1)
	}
}

// command counts a finished command and records its latency.
func (m *metrics) command(domain string, o Outcome, d time.Duration) {
	c := m.last
	if c == nil || c.domain != domain {
		// Keyed by label: an unknown domain must not grow the map either.
		label := m.label(domain)
		if c = m.commands[label]; c == nil {
			c = &commandIDs{domain: label, outcomes: map[Outcome]uint32{}}
			m.commands[label] = c
		}
		m.last = c
	}
	id, ok := c.outcomes[o]
	if !ok {
		if id, ok = m.id(MetricCounter, fmt.Sprintf(metricCommands, c.domain, string(o))); ok {
			c.outcomes[o] = id
		}
	}
	if ok {
		_ = m.host.IncrementMetric(id, 1)
	}
	if !c.hasLatency {
		c.latency, c.hasLatency = m.id(MetricHistogram, fmt.Sprintf(metricLatency, c.domain))
	}
	if c.hasLatency && d >= 0 {
		_ = m.host.RecordMetric(c.latency, uint64(d/time.Microsecond))
	}
	m.finished++
	if m.finished%heapSampleEvery == 1 {
		m.sampleHeap()
	}
}

// sampleHeap adds to the heap gauges what changed in this VM's heap since
// it last reported (runtime/metrics does not stop the world).
func (m *metrics) sampleHeap() {
	read := m.readHeap
	if read == nil {
		read = readRuntimeHeap
	}
	live, total, ok := read(m)
	if !ok {
		return
	}
	values := [2]uint64{live, total}
	for i, name := range [2]string{metricHeapLive, metricHeapTotal} {
		v := values[i]
		id, ok := m.id(MetricGauge, name) // defined from the first sample on
		if delta := int64(v) - int64(m.heapSent[i]); ok && delta != 0 && m.host.IncrementMetric(id, delta) == nil {
			m.heapSent[i] = v
		}
	}
}

// readRuntimeHeap reads the live heap and the runtime's mapped memory.
func readRuntimeHeap(m *metrics) (live, total uint64, ok bool) {
	if m.samples == nil {
		m.samples = []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/total:bytes"}}
	}
	rtmetrics.Read(m.samples)
	for _, s := range m.samples {
		if s.Value.Kind() != rtmetrics.KindUint64 {
			return 0, 0, false
		}
	}
	return m.samples[0].Value.Uint64(), m.samples[1].Value.Uint64(), true
}

// conflict counts a write conflict reported by the event service.
func (m *metrics) conflict(domain string) { m.inc(fmt.Sprintf(metricConflicts, m.label(domain))) }

// retry counts a transparent reload-and-retry of an auto_resequence command.
func (m *metrics) retry(domain string) { m.inc(fmt.Sprintf(metricRetries, m.label(domain))) }

// okLabel is the label of a call's outcome.
func okLabel(ok bool) string {
	if ok {
		return "ok"
	}
	return "error"
}

func (m *metrics) histogram(name string, v uint64) {
	if id, ok := m.id(MetricHistogram, name); ok {
		_ = m.host.RecordMetric(id, v)
	}
}

// projector counts a synchronous projector call and records its latency.
func (m *metrics) projector(name string, ok bool, d time.Duration) {
	m.inc(fmt.Sprintf(metricProjectorCalls, name, okLabel(ok)))
	if d >= 0 {
		m.histogram(fmt.Sprintf(metricProjectorLatency, name), uint64(d/time.Microsecond))
	}
}

// saga counts a synchronous saga call.
func (m *metrics) saga(name string, ok bool) { m.inc(fmt.Sprintf(metricSagaCalls, name, okLabel(ok))) }

// cascadeDepth records the depth a CASCADE command ran at.
func (m *metrics) cascadeDepth(domain string, depth int) {
	m.histogram(fmt.Sprintf(metricCascadeDepth, m.label(domain)), uint64(depth))
}

// cascadeHop records the latency of one cascaded command.
func (m *metrics) cascadeHop(target string, d time.Duration) {
	if d >= 0 {
		m.histogram(fmt.Sprintf(metricCascadeHop, m.label(target)), uint64(d/time.Microsecond))
	}
}

// cascadeRefused counts a cascaded command refused for depth or a cycle.
func (m *metrics) cascadeRefused(domain, why string) {
	m.inc(fmt.Sprintf(metricCascadeRefused, m.label(domain), why))
}
