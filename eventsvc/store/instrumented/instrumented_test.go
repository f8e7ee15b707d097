package instrumented_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/instrumented"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/sqlite"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/storetest"
	"github.com/angzarr-mesh/angzarr/internal/telemetry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func openSQLite(t *testing.T) *sqlite.Store {
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "events.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// The decorator keeps every semantic of the backend it wraps.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := instrumented.New(openSQLite(t), "sqlite", instrumented.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestSpansAndMetrics(t *testing.T) {
	ctx := context.Background()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(ctx) //nolint:errcheck
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	defer tp.Shutdown(ctx) //nolint:errcheck
	st, err := instrumented.New(openSQLite(t), "sqlite", instrumented.Options{MeterProvider: mp, TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}

	agg := store.Aggregate{Domain: storetest.Domain(t), Root: uuid.New()}
	if _, err := st.Append(ctx, &store.AppendRequest{Aggregate: agg, CorrelationID: "corr-1", Pages: storetest.Pages(0, 2, "e"), Snapshot: storetest.Event("state")}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(ctx, &store.AppendRequest{Aggregate: agg, CorrelationID: "corr-1", Pages: storetest.Pages(0, 1, "e")}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale append: %v", err)
	}
	if _, err := st.Load(telemetry.WithCorrelationID(ctx, "corr-2"), agg, store.LoadQuery{}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.OpenCheckpoint(ctx, "proj", agg.Domain, 0, false); err != nil {
		t.Fatal(err)
	}
	entries, err := st.Fetch(ctx, "proj", agg.Domain, 0, 10)
	if err != nil || len(entries) != 1 {
		t.Fatalf("fetch: %v %v", entries, err)
	}
	if err := st.Commit(ctx, "proj", agg.Domain, 0, []uint64{entries[0].Book.GetPosition().GetOffset()}); err != nil {
		t.Fatal(err)
	}

	got := spans.GetSpans()
	want := []struct{ name, cid, outcome string }{{"aggregate.persist", "corr-1", "ok"}, {"aggregate.persist", "corr-1", "conflict"}, {"aggregate.load_events", "corr-2", "ok"}}
	if len(got) != len(want) {
		t.Fatalf("spans: %d, want %d", len(got), len(want))
	}
	for i, w := range want {
		s := got[i]
		attrs := attrMap(s.Attributes)
		if s.Name != w.name || attrs["domain"] != agg.Domain || attrs["root"] != agg.Root.String() || attrs["correlation_id"] != w.cid || attrs["outcome"] != w.outcome {
			t.Errorf("span %d: %s %v, want %s correlation %s outcome %s", i, s.Name, attrs, w.name, w.cid, w.outcome)
		}
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	sums := map[string]map[string]int64{} // metric -> attrs -> value
	durations := map[string]uint64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					if sums[m.Name] == nil {
						sums[m.Name] = map[string]int64{}
					}
					sums[m.Name][p.Attributes.Encoded(attribute.DefaultEncoder())] += p.Value
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					durations[p.Attributes.Encoded(attribute.DefaultEncoder())] += p.Count
				}
			}
		}
	}
	for name, want := range map[string]map[string]int64{
		"angzarr.events.stored_total":     {"domain=" + agg.Domain: 2},
		"angzarr.snapshots.stored_total":  {"domain=" + agg.Domain: 1},
		"angzarr.events.loaded_total":     {"domain=" + agg.Domain: 0},
		"angzarr.positions.updated_total": {"domain=" + agg.Domain + ",outcome=ok,subscriber=proj": 1},
	} {
		for k, v := range want {
			if sums[name][k] != v {
				t.Errorf("%s{%s} = %d, want %d (all: %v)", name, k, sums[name][k], v, sums[name])
			}
		}
	}
	for k, v := range map[string]uint64{
		"backend=sqlite,operation=append,outcome=ok":       1,
		"backend=sqlite,operation=append,outcome=conflict": 1,
		"backend=sqlite,operation=load,outcome=ok":         1,
		"backend=sqlite,operation=fetch,outcome=ok":        1,
		"backend=sqlite,operation=commit,outcome=ok":       1,
	} {
		if durations[k] != v {
			t.Errorf("angzarr.storage.duration_seconds{%s} count = %d, want %d (all: %v)", k, durations[k], v, durations)
		}
	}
}

func attrMap(kvs []attribute.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value.String()
	}
	return m
}
