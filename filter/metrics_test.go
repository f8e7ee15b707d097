package filter

import (
	"strings"
	"testing"
	"time"
)

// TestCommandMetricIDsCached: command counts each domain's outcomes and
// latencies under their own names whatever the order of the domains, and
// a metric the host refuses to define is tried again (and logged) on the
// next command rather than remembered as missing.
func TestCommandMetricIDsCached(t *testing.T) {
	h := newFakeHost()
	m := newMetrics(h)
	// "bad domain" is configured, but the fake host refuses names with a space.
	m.configure([]string{"counter", "cart", "bad domain"}, nil)
	for _, c := range []struct {
		domain string
		o      Outcome
	}{
		{"counter", OutcomeOK}, {"cart", OutcomeOK}, {"counter", OutcomeOK}, {"counter", OutcomeAborted},
		{"cart", OutcomeRejected}, {"", OutcomeInvalid}, {"counter", OutcomeOK},
	} {
		m.command(c.domain, c.o, 3*time.Microsecond)
	}
	for name, want := range map[string]int64{
		"angzarr.commands.counter.ok": 3, "angzarr.commands.counter.aborted": 1, "angzarr.commands.cart.ok": 1,
		"angzarr.commands.cart.rejected": 1, "angzarr.commands.unknown.invalid": 1,
	} {
		if got := h.metricVal[name]; got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
	if got := len(h.hist["angzarr.command_latency_us.counter"]); got != 4 {
		t.Errorf("counter latencies: %d, want 4", got)
	}
	if got := h.hist["angzarr.command_latency_us.cart"]; len(got) != 2 || got[0] != 3 {
		t.Errorf("cart latencies: %v, want [3 3]", got)
	}

	// The fake host refuses names with a space.
	logs := len(h.logs)
	m.command("bad domain", OutcomeInvalid, time.Microsecond)
	m.command("bad domain", OutcomeInvalid, time.Microsecond)
	refused := 0
	for _, l := range h.logs[logs:] {
		if strings.Contains(l, "cannot define metric") {
			refused++
		}
	}
	if refused != 4 {
		t.Errorf("%d refused definitions logged, want 4 (counter and histogram, twice): %q", refused, h.logs[logs:])
	}
	m.command("counter", OutcomeOK, time.Microsecond)
	if got := h.metricVal["angzarr.commands.counter.ok"]; got != 4 {
		t.Errorf("counter ok after a refused domain = %d, want 4", got)
	}
}

// TestUnknownDomainsShareOneLabel: a domain the configuration does not name
// (an unserved one, or none) never becomes part of a metric name, whichever
// metric records it, and does not grow the filter's own caches; a cascade
// target the configuration names does.
func TestUnknownDomainsShareOneLabel(t *testing.T) {
	h := newFakeHost()
	m := newMetrics(h)
	m.configure([]string{"counter"}, map[string]string{"cart": "outbound|cart"})
	for i := range 100 {
		d := strings.Repeat("x", i+1)
		m.command(d, OutcomeInvalid, time.Microsecond)
		m.conflict(d)
		m.retry(d)
		m.cascadeDepth(d, 1)
		m.cascadeHop(d, time.Microsecond)
		m.cascadeRefused(d, "depth")
	}
	m.command("", OutcomeInvalid, time.Microsecond)
	m.command("counter", OutcomeOK, time.Microsecond)
	m.cascadeHop("cart", time.Microsecond)
	want := map[string]bool{
		"angzarr.commands.unknown.invalid": true, "angzarr.command_latency_us.unknown": true,
		"angzarr.conflicts.unknown": true, "angzarr.retries.unknown": true,
		"angzarr.cascade_depth.unknown": true, "angzarr.cascade_command_latency_us.unknown": true,
		"angzarr.cascade_refused.unknown.depth": true,
		"angzarr.commands.counter.ok":           true, "angzarr.command_latency_us.counter": true,
		"angzarr.cascade_command_latency_us.cart": true,
		// The first command samples the heap; the GC pause histogram is
		// defined with the configuration.
		metricHeapLive: true, metricHeapTotal: true, metricGCPause: true,
	}
	for name := range h.metricIDs {
		if !want[name] {
			t.Errorf("unexpected metric %.80q", name)
		}
	}
	if len(h.metricIDs) != len(want) {
		t.Errorf("%d metrics defined, want %d", len(h.metricIDs), len(want))
	}
	if got := h.metricVal["angzarr.commands.unknown.invalid"]; got != 101 {
		t.Errorf("unknown-domain commands = %d, want 101", got)
	}
	if len(m.commands) != 2 {
		t.Errorf("command metric cache holds %d domains, want 2 (unknown, counter)", len(m.commands))
	}
}

// TestHeapGaugesSumTheVMs: Envoy shares a gauge by name across its
// workers' VMs, so each VM adds the change in its own heap: the gauge is
// the sum over the VMs, and a VM's new sample replaces its old one
// instead of overwriting the others'.
func TestHeapGaugesSumTheVMs(t *testing.T) {
	h := newFakeHost()
	heap := func(live, total uint64) func(*metrics) (uint64, uint64, bool) {
		return func(*metrics) (uint64, uint64, bool) { return live, total, true }
	}
	a, b := newMetrics(h), newMetrics(h)
	a.readHeap = heap(10, 100)
	a.sampleHeap()
	b.readHeap = heap(20, 200)
	b.sampleHeap()
	if live, total := h.metricVal[metricHeapLive], h.metricVal[metricHeapTotal]; live != 30 || total != 300 {
		t.Fatalf("two VMs: live %d, total %d; want 30, 300", live, total)
	}
	a.readHeap = heap(5, 150)
	a.sampleHeap()
	if live, total := h.metricVal[metricHeapLive], h.metricVal[metricHeapTotal]; live != 25 || total != 350 {
		t.Fatalf("after VM a shrank: live %d, total %d; want 25, 350", live, total)
	}
}
