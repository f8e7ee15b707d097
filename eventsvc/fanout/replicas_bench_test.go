package fanout_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/angzarr-mesh/angzarr/internal/testutil"
)

// BenchmarkFanoutReplicas measures, in one run on a Redis Cluster of three
// masters, the fan-out of events appended at 2,000/s (through the
// replicas' gRPC API) to a projector and a saga with one event service
// replica, then with three (two join), then the gap after one of the
// three is killed with SIGKILL: from the kill until every partition was
// delivered again. Figures: delivered events/s and p99 lag (append to
// the projector's receipt) per replica count, handover in ms beside the
// lease TTL. Targets (issue #20): nothing lost or reordered, p99 lag <
// 100ms outside a handover, handover < 2x the lease TTL.
func BenchmarkFanoutReplicas(b *testing.B) {
	const (
		rate   = 2000
		window = 5 * time.Second
		ttl    = time.Second
		parts  = 16
	)
	for range b.N {
		rs := startReplicaSet(b, 1, ttl)
		roots := newRoots(400)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		measure := func(label string) {
			rs.proj.measure(true)
			wctx, stop := context.WithTimeout(ctx, window)
			start := time.Now()
			n := rs.write(wctx, roots, rate, 32)
			stop()
			want, _ := rs.stored(ctx, roots)
			testutil.Eventually(b, "the projector to catch up", func() bool { return rs.proj.caughtUp(want) && rs.saga.caughtUp(want) })
			took := rs.proj.last().Sub(start) // the last delivery, not the read-back of the sequences
			p99 := rs.proj.lagP99()
			rs.proj.measure(false)
			b.ReportMetric(float64(n)/took.Seconds(), "events/s-"+label)
			b.ReportMetric(float64(p99.Microseconds())/1000, "p99-lag-ms-"+label)
			b.Logf("%s: %d events appended in %v (%.0f/s asked), delivered by %v: %.0f events/s, p99 lag %v",
				label, n, window, float64(rate), took.Round(time.Millisecond), float64(n)/took.Seconds(), p99.Round(time.Microsecond))
		}
		measure("1-replica")
		rs.add()
		rs.add()
		testutil.EventuallyWhy(b, func() (bool, string) {
			o := rs.owners(ctx, parts)
			distinct := map[string]bool{}
			for _, x := range o {
				distinct[x] = true
			}
			return len(distinct) == 3 && !distinct[""], fmt.Sprintf("partition owners %v", o)
		})
		measure("3-replicas")

		// Handover: keep writing, kill one, wait for every partition.
		wctx, stop := context.WithCancel(ctx)
		done := make(chan int, 1)
		go func() { done <- rs.write(wctx, roots, rate, 32) }()
		settle := time.Now()
		testutil.Eventually(b, "deliveries under the load before the kill", func() bool { return rs.proj.deliveredSince(settle, parts) })
		rs.procs[0].Kill()
		killed := time.Now()
		testutil.Eventually(b, "every partition delivered after the kill", func() bool {
			return rs.proj.deliveredSince(killed, parts) && rs.saga.deliveredSince(killed, parts)
		})
		gap := time.Since(killed)
		stop()
		<-done
		want, _ := rs.stored(ctx, roots)
		testutil.Eventually(b, "every event after the kill", func() bool { return rs.proj.caughtUp(want) && rs.saga.caughtUp(want) })
		b.ReportMetric(float64(gap.Milliseconds()), "handover-ms")
		b.ReportMetric(float64(ttl.Milliseconds()), "lease-ttl-ms")
		for name, c := range map[string]*orderChecker{"projector": rs.proj, "saga": rs.saga} {
			c.mu.Lock()
			if len(c.early) > 0 {
				b.Errorf("%s got events early (lost or reordered): %v", name, c.early[:min(len(c.early), 5)])
			}
			b.Logf("%s: %d events applied once in order, %d redeliveries skipped", name, c.applied, c.dups)
			c.mu.Unlock()
		}
		b.Logf("handover after kill -9: %v (lease TTL %v, target < %v)", gap.Round(time.Millisecond), ttl, 2*ttl)
		cancel()
	}
}
