package upcast_test

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// BenchmarkLoadUpcast (make bench): Load of a 1,000-event history on SQLite
// through the decorator, without upcasters and with an upcaster (a real
// gRPC server on loopback) that takes every event, in the same run. It
// prints the ratio of loads/s with to without (target >= 0.5: one batched
// call per Load, not one per event).
func BenchmarkLoadUpcast(b *testing.B) {
	const events = 1000
	history := make([]*anypb.Any, events)
	for i := range history {
		history[i] = mustAny(b, fmt.Sprintf("event %04d with some payload to carry: %s", i, "0123456789abcdef0123456789abcdef"))
	}
	measure := func(b *testing.B, withUpcaster bool) float64 {
		f := newFixture(b, history...)
		if withUpcaster {
			if err := f.tab.Apply(config(&pb.UpcasterEndpoint{Address: serve(b, &fakeUpcaster{conv: toV2}), Types: []string{v1}})); err != nil {
				b.Fatal(err)
			}
		}
		ctx := b.Context()
		if _, err := f.st.Load(ctx, f.agg, store.LoadQuery{}); err != nil { // warm up
			b.Fatal(err)
		}
		const window = 2 * time.Second
		n, start := 0, time.Now()
		for time.Since(start) < window {
			l, err := f.st.Load(ctx, f.agg, store.LoadQuery{})
			if err != nil || len(l.Pages) != events {
				b.Fatalf("Load: %v (%d pages)", err, len(l.Pages))
			}
			n++
		}
		return float64(n) / time.Since(start).Seconds()
	}
	for b.Loop() {
		plain := measure(b, false)
		upcast := measure(b, true)
		fmt.Printf("\nLoad of a %d-event history (SQLite, in process): %.0f loads/s without upcasters, %.0f with one upcasting every event (gRPC, loopback): ratio %.2f (target >= 0.5)\n",
			events, plain, upcast, upcast/plain)
		b.ReportMetric(plain, "loads/s-plain")
		b.ReportMetric(upcast, "loads/s-upcast")
		b.ReportMetric(upcast/plain, "ratio")
	}
}
