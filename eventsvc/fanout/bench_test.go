package fanout_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"

	"github.com/angzarr-mesh/angzarr/eventsvc"
	"github.com/angzarr-mesh/angzarr/eventsvc/eventsvctest"
	"github.com/angzarr-mesh/angzarr/eventsvc/fanout"
	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/storetest"
	"github.com/angzarr-mesh/angzarr/internal/testredis"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Load of the lag benchmark: lagRate events per second for lagDuration,
// from lagWriters writers over 10 aggregates each.
const (
	lagRate     = 1000
	lagDuration = 5 * time.Second
	lagWriters  = 25
)

// lagResult is one backend's measurement.
type lagResult struct {
	backend       string
	events        int
	rate          float64
	p50, p99, max time.Duration
}

// BenchmarkFanoutLag measures fan-out lag, from an append's commit (the
// page's created_at, set by the store) to its delivery to a projector, at
// about 1,000 events/s for 5 s, through an in-process event service on
// SQLite and on a real redis-server, and prints a table. Target: p99 <
// 100ms.
func BenchmarkFanoutLag(b *testing.B) {
	backends := []struct {
		name string
		url  func(b *testing.B) string
	}{
		{"sqlite", func(b *testing.B) string { return "sqlite:" + filepath.Join(b.TempDir(), "events.db") }},
		{"redis", func(b *testing.B) string { return "redis://" + testredis.Start(b) + "/0" }},
	}
	var results []lagResult
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				r := measureLag(b, be.url(b))
				r.backend = be.name
				results = append(results, r)
				b.ReportMetric(float64(r.p50.Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(r.p99.Microseconds())/1000, "p99-ms")
				b.ReportMetric(r.rate, "events/s")
			}
		})
	}
	fmt.Printf("\nfan-out lag, append to projector delivery (~%d events/s for %v)\n", lagRate, lagDuration)
	fmt.Printf("%-8s %8s %10s %10s %10s %10s\n", "backend", "events", "events/s", "p50", "p99", "max")
	for _, r := range results {
		fmt.Printf("%-8s %8d %10.0f %10v %10v %10v\n", r.backend, r.events, r.rate, r.p50.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond), r.max.Round(10*time.Microsecond))
	}
}

func measureLag(b *testing.B, url string) lagResult {
	rec := newRecorder()
	var (
		lagMu sync.Mutex
		lags  []time.Duration
	)
	rec.onPage = func(p *pb.EventPage) {
		d := time.Since(p.GetCreatedAt().AsTime())
		lagMu.Lock()
		lags = append(lags, d)
		lagMu.Unlock()
	}
	domain := storetest.Domain(b)
	cfg := &pb.FanoutConfig{Subscriptions: []*pb.Subscription{
		projectorSub("lag", serve(b, func(g *grpc.Server) { pb.RegisterProjectorServer(g, rec) }), 0, domain),
	}}
	addr := eventsvctest.StartConfig(b, eventsvc.Config{Store: url, FanoutSource: fanout.StaticSource{Config: cfg}})
	es := pb.NewEventStoreClient(eventsvctest.Dial(b, addr))
	ctx, cancel := context.WithTimeout(context.Background(), lagDuration+time.Minute)
	defer cancel()

	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		written int
	)
	b.ResetTimer()
	start := time.Now()
	deadline := start.Add(lagDuration)
	for w := 0; w < lagWriters; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			roots := make([]uuid.UUID, 10)
			next := make([]uint32, len(roots))
			for i := range roots {
				roots[i] = uuid.New()
			}
			tick := time.NewTicker(time.Second * lagWriters / lagRate)
			defer tick.Stop()
			for i := 0; time.Now().Before(deadline); i++ {
				<-tick.C
				a := i % len(roots)
				_, err := es.Append(ctx, &pb.AppendRequest{Cover: store.Aggregate{Domain: domain, Root: roots[a]}.Cover(""), ExpectedSequence: next[a], Pages: storetest.Pages(next[a], 1, "e")})
				if err != nil {
					b.Error(err)
					return
				}
				next[a]++
				mu.Lock()
				written++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	wait := time.Now().Add(30 * time.Second)
	for rec.count() < written {
		if time.Now().After(wait) {
			b.Fatalf("%d of %d events delivered", rec.count(), written)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
	b.StopTimer()
	lagMu.Lock()
	defer lagMu.Unlock()
	slices.Sort(lags)
	pct := func(p float64) time.Duration { return lags[int(p*float64(len(lags)-1))] }
	return lagResult{events: written, rate: float64(written) / elapsed.Seconds(), p50: pct(0.5), p99: pct(0.99), max: lags[len(lags)-1]}
}
