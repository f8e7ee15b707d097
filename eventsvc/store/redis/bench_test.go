package redis_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/redis"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/storetest"
	"github.com/angzarr-mesh/angzarr/internal/testredis"
)

// BenchmarkReplicatedAppends measures appends/s at 64 clients on one Redis
// Cluster of 3 masters with one replica each (appendonly yes, appendfsync
// always), with min-replicas 0 (the baseline) and 1, alternating in the
// same run. Target: min-replicas 1 at 0.6 or more of the baseline.
func BenchmarkReplicatedAppends(b *testing.B) {
	const clients, perClient, rounds = 64, 150, 3
	ctx := context.Background()
	c := testredis.StartReplicatedCluster(b, 3)
	stores := map[int]*redis.Store{}
	for _, m := range []int{0, 1} {
		st, err := redis.Open(ctx, redis.Options{Addrs: c.Addrs(), Cluster: true, MinReplicas: m})
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		stores[m] = st
	}
	domain := storetest.Domain(b)
	run := func(st *redis.Store) float64 {
		var wg sync.WaitGroup
		start := time.Now()
		for i := 0; i < clients; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				agg := store.Aggregate{Domain: domain, Root: uuid.New()}
				for n := uint32(0); n < perClient; n++ {
					if _, err := st.Append(ctx, &store.AppendRequest{Aggregate: agg, Expected: n, Pages: storetest.Pages(n, 1, "e")}); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		return clients * perClient / time.Since(start).Seconds()
	}
	run(stores[0]) // warm up connections and scripts
	run(stores[1])
	sum := map[int]float64{}
	for r := 0; r < rounds; r++ {
		for _, m := range []int{0, 1} {
			sum[m] += run(stores[m])
		}
	}
	base, repl := sum[0]/rounds, sum[1]/rounds
	fmt.Printf("redis cluster 3 masters x 1 replica, %d clients: min-replicas 0 %.0f appends/s, min-replicas 1 %.0f appends/s, ratio %.2f (target >= 0.6)\n",
		clients, base, repl, repl/base)
	b.ReportMetric(base, "appends/s@min0")
	b.ReportMetric(repl, "appends/s@min1")
	b.ReportMetric(repl/base, "min1/min0")
}

// BenchmarkFailoverLoss runs the failover of TestFailoverLosesNoAcknowledgedAppend
// with min-replicas 0 and 1 and prints what each lost: the figure the
// min-replicas setting exists for.
func BenchmarkFailoverLoss(b *testing.B) {
	for _, m := range []int{0, 1} {
		r := runFailover(b, m)
		fmt.Printf("failover with min-replicas %d: %s\n", m, r)
		b.ReportMetric(float64(r.lost), fmt.Sprintf("lost-acked@min%d", m))
		b.ReportMetric(float64(r.phantoms), fmt.Sprintf("phantoms@min%d", m))
	}
}

// BenchmarkLoad1kBounded: LoadEncoded of a 1,000-event history (100-byte
// events, no snapshot) as the event service asks for it, bounded to a
// 1 MiB page (the load script measures the page), against the same load
// unbounded (one LRANGE, the path before paging), same run:
// go test ./eventsvc/store/redis -run '^$' -bench Load1kBounded
func BenchmarkLoad1kBounded(b *testing.B) {
	ctx := context.Background()
	st, err := redis.Open(ctx, redis.Options{Addrs: []string{testredis.Start(b)}})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	agg := store.Aggregate{Domain: storetest.Domain(b), Root: uuid.New()}
	if _, err := st.Append(ctx, &store.AppendRequest{Aggregate: agg, Pages: storetest.Pages(0, 1000, "s")}); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		max  int
	}{{"unbounded", 0}, {"bounded", store.DefaultLoadPageBytes}, {"unbounded", 0}, {"bounded", store.DefaultLoadPageBytes}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				l, err := st.LoadEncoded(ctx, agg, store.LoadQuery{MaxBytes: c.max})
				if err != nil || l.PageCount() != 1000 || l.More != 0 {
					b.Fatalf("load: %v", err)
				}
			}
		})
	}
}
