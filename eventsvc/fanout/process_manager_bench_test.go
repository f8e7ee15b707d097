package fanout_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"

	"github.com/angzarr-mesh/angzarr/eventsvc"
	"github.com/angzarr-mesh/angzarr/eventsvc/eventsvctest"
	"github.com/angzarr-mesh/angzarr/eventsvc/fanout"
	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	"github.com/angzarr-mesh/angzarr/examples/go/customer"
	"github.com/angzarr-mesh/angzarr/internal/testredis"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/proto/examples"
	"github.com/angzarr-mesh/angzarr/sdk"
)

// Load of the process-manager benchmark: pmRate workflows started per
// second for pmDuration, by pmWriters writers.
const (
	pmRate     = 500
	pmDuration = 5 * time.Second
	pmWriters  = 20
	// pmConcurrency is the dispatcher's per-batch parallelism: a batch is
	// committed when its slowest aggregate is done, and a PM step waits on
	// six calls (load, Handle, append; the command's load, logic, append),
	// so the default 8 leaves the step waiting behind its batch.
	pmConcurrency = 32
)

// BenchmarkProcessManagerStep measures a process manager's step latency on
// a real redis-server: from the store's commit of the event that starts a
// workflow (a CustomerCreated, its created_at) to the commit of the event
// the PM's command caused (the customer's LoyaltyPointsAdded, its
// created_at: the PM's command stored). In between: the dispatcher reads
// the log, loads the workflow's stream, calls the welcome PM over gRPC,
// appends its events and step, and executes the command through a
// coordinator that loads the customer, runs the shop's logic and appends.
// About 500 new workflows per second for 5 s (each also takes a second
// step when its credit arrives), with the dispatcher delivering 32
// aggregates of a batch at once (pmConcurrency). Target: p99 < 100 ms.
func BenchmarkProcessManagerStep(b *testing.B) {
	for i := 0; i < b.N; i++ {
		var es atomic.Pointer[pb.EventStoreClient]
		coord := newCoordinator(func() pb.EventStoreClient { return *es.Load() })
		coordAddr := serve(b, func(g *grpc.Server) { pb.RegisterBusinessCoordinatorServer(g, coord) })
		pmAddr := serve(b, func(g *grpc.Server) {
			if _, err := sdk.Register(g, welcomePM(false)); err != nil {
				b.Fatal(err)
			}
		})
		cfg := welcomeFanout(pmAddr, coordAddr)
		cfg.Subscriptions[0].StartPosition = pb.StartPosition_START_POSITION_LATEST
		addr := eventsvctest.StartConfig(b, eventsvc.Config{
			Store: "redis://" + testredis.Start(b) + "/0", FanoutSource: fanout.StaticSource{Config: cfg}, Logger: testLogger(b),
			FanoutConcurrency: pmConcurrency,
		})
		client := pb.NewEventStoreClient(eventsvctest.Dial(b, addr))
		es.Store(&client)
		ctx, cancel := context.WithTimeout(context.Background(), pmDuration+2*time.Minute)
		defer cancel()

		var (
			mu    sync.Mutex
			custs []uuid.UUID
			wg    sync.WaitGroup
		)
		b.ResetTimer()
		start := time.Now()
		deadline := start.Add(pmDuration)
		for w := 0; w < pmWriters; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tick := time.NewTicker(time.Second * pmWriters / pmRate)
				defer tick.Stop()
				for time.Now().Before(deadline) {
					<-tick.C
					c := uuid.New()
					created := mustAny(b, &examples.CustomerCreated{Name: "c", Email: "c@example.com"})
					if _, err := client.Append(ctx, &pb.AppendRequest{Cover: store.Aggregate{Domain: customer.Domain, Root: c}.Cover("bench-" + c.String()),
						Pages: []*pb.EventPage{{Event: created}}}); err != nil {
						b.Error(err)
						return
					}
					mu.Lock()
					custs = append(custs, c)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)

		// Every workflow's command stored: the customer's second event.
		var lat []time.Duration
		for _, c := range custs {
			for {
				pages := events(ctx, b, client, customer.Domain, c)
				if len(pages) >= 2 {
					lat = append(lat, pages[1].GetCreatedAt().AsTime().Sub(pages[0].GetCreatedAt().AsTime()))
					break
				}
				select {
				case <-ctx.Done():
					b.Fatalf("workflow of customer %s: its command was not stored (%d of %d measured)", c, len(lat), len(custs))
				case <-time.After(10 * time.Millisecond): // poll interval
				}
			}
		}
		b.StopTimer()
		slices.Sort(lat)
		pct := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
		rate := float64(len(custs)) / elapsed.Seconds()
		b.ReportMetric(float64(pct(0.5).Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(pct(0.99).Microseconds())/1000, "p99-ms")
		b.ReportMetric(rate, "workflows/s")
		fmt.Printf("\nprocess manager step, trigger stored to PM command stored (redis, ~%d workflows/s for %v, concurrency %d)\n", pmRate, pmDuration, pmConcurrency)
		fmt.Printf("%10s %12s %10s %10s %10s\n", "workflows", "workflows/s", "p50", "p99", "max")
		fmt.Printf("%10d %12.0f %10v %10v %10v\n", len(lat), rate, pct(0.5).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond))
	}
}
