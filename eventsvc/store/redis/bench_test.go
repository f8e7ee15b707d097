package redis_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	goredis "github.com/redis/go-redis/v9"

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

// BenchmarkLoad1kBounded (make bench): LoadEncoded of a 1,000-event
// history (100-byte events, no snapshot) as the event service asks for
// it, bounded to a 1 MiB page (the size key shows it fits: no
// measuring), against the same load unbounded (one LRANGE, the path
// before paging), and against a bounded load of an aggregate without a
// size key (stored before it was kept: the load script measures the
// page), in rounds alternating the three, same run. Prints the means and
// ratios; runs a fixed load once, whatever b.N is.
func BenchmarkLoad1kBounded(b *testing.B) {
	if b.N > 1 {
		b.Skip("runs a fixed load once: use -benchtime 1x")
	}
	ctx := context.Background()
	addr := testredis.Start(b)
	st, err := redis.Open(ctx, redis.Options{Addrs: []string{addr}})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	domain := storetest.Domain(b)
	agg, old := store.Aggregate{Domain: domain, Root: uuid.New()}, store.Aggregate{Domain: domain, Root: uuid.New()}
	for _, a := range []store.Aggregate{agg, old} {
		if _, err := st.Append(ctx, &store.AppendRequest{Aggregate: a, Pages: storetest.Pages(0, 1000, "s")}); err != nil {
			b.Fatal(err)
		}
	}
	c := goredis.NewClient(&goredis.Options{Addr: addr})
	defer c.Close()
	if err := c.Del(ctx, st.SizeKeyOf(old)).Err(); err != nil {
		b.Fatal(err)
	}
	kinds := []struct {
		name string
		agg  store.Aggregate
		max  int
	}{{"unbounded (before paging)", agg, 0}, {"bounded, size key", agg, store.DefaultLoadPageBytes}, {"bounded, measured", old, store.DefaultLoadPageBytes}}
	took := make([]time.Duration, len(kinds))
	const rounds, per = 10, 30
	for r := 0; r < rounds; r++ {
		for k, kind := range kinds {
			start := time.Now()
			for i := 0; i < per; i++ {
				l, err := st.LoadEncoded(ctx, kind.agg, store.LoadQuery{MaxBytes: kind.max})
				if err != nil || l.PageCount() != 1000 || l.More != 0 {
					b.Fatalf("%s: %v", kind.name, err)
				}
			}
			took[k] += time.Since(start)
		}
	}
	fmt.Println("\nRedis LoadEncoded of 1,000 events of 100 bytes, mean of", rounds*per, "each, alternating:")
	for k, kind := range kinds {
		mean := took[k] / (rounds * per)
		fmt.Printf("  %-26s %9v  %.2f× unbounded\n", kind.name, mean, float64(took[k])/float64(took[0]))
		b.ReportMetric(float64(mean.Microseconds()), "us/"+strings.NewReplacer(" ", "-", ",", "", "(", "", ")", "").Replace(kind.name))
	}
}
