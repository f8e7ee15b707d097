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
	"google.golang.org/protobuf/types/known/wrapperspb"

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
// It also prints where the time goes (stepParts): on a loaded 2-core
// machine the tail is in "read", the wait from the trigger's commit to the
// PM's call, which is mostly the entry waiting in its partition's log
// while the worker finishes the batch before it (a batch is committed, and
// the next fetched, once its slowest aggregate is done; a PM step is six
// calls long); compare the plain fan-out lag (BenchmarkFanoutLag) in the
// same run.
func BenchmarkProcessManagerStep(b *testing.B) {
	for i := 0; i < b.N; i++ {
		var es atomic.Pointer[pb.EventStoreClient]
		coord := newCoordinator(func() pb.EventStoreClient { return *es.Load() })
		marks := newStepMarks()
		coordAddr := serve(b, func(g *grpc.Server) { pb.RegisterBusinessCoordinatorServer(g, markedCoordinator{coord, marks}) })
		pmAddr := serve(b, func(g *grpc.Server) {
			if _, err := sdk.Register(g, markedPM{welcomePM(false), marks}); err != nil {
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
		var (
			lat   []time.Duration
			parts []stepParts
		)
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
		// Where the time went, read once every workflow is measured (so
		// the reads do not slow the dispatcher while it catches up).
		for _, c := range custs {
			pages := events(ctx, b, client, customer.Domain, c)
			pm := events(ctx, b, client, "welcome-pm", fanout.ProcessManagerRoot("bench-"+c.String()))
			t1, t2 := marks.get(c)
			if len(pages) < 2 || t1.IsZero() || t2.IsZero() {
				continue
			}
			t0, t3 := pages[0].GetCreatedAt().AsTime(), pages[1].GetCreatedAt().AsTime()
			for _, p := range pm { // the first step's ProcessManagerStep
				if p.GetEvent().MessageIs(&pb.ProcessManagerStep{}) {
					tA := p.GetCreatedAt().AsTime()
					parts = append(parts, stepParts{total: t3.Sub(t0), read: t1.Sub(t0), decide: tA.Sub(t1), send: t2.Sub(tA), command: t3.Sub(t2)})
					break
				}
			}
		}
		slices.Sort(lat)
		pct := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
		rate := float64(len(custs)) / elapsed.Seconds()
		b.ReportMetric(float64(pct(0.5).Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(pct(0.99).Microseconds())/1000, "p99-ms")
		b.ReportMetric(rate, "workflows/s")
		fmt.Printf("\nprocess manager step, trigger stored to PM command stored (redis, ~%d workflows/s for %v, concurrency %d)\n", pmRate, pmDuration, pmConcurrency)
		fmt.Printf("%10s %12s %10s %10s %10s\n", "workflows", "workflows/s", "p50", "p99", "max")
		fmt.Printf("%10d %12.0f %10v %10v %10v\n", len(lat), rate, pct(0.5).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond))
		printStepParts(parts)
	}
}

// stepParts splits one workflow's step latency (total): read, from the
// trigger's commit to the PM's call (the log read, the batch it waits
// behind, the workflow's load); decide, to the commit of the PM's step
// (the PM's answer, the append); send, to the command's arrival at the
// coordinator; command, to the commit of the command's event.
type stepParts struct{ total, read, decide, send, command time.Duration }

// printStepParts prints each part's p50 and p99, and the mean parts of
// the slowest 1% of workflows: where the tail comes from.
func printStepParts(parts []stepParts) {
	if len(parts) == 0 {
		return
	}
	get := []func(p stepParts) time.Duration{
		func(p stepParts) time.Duration { return p.read }, func(p stepParts) time.Duration { return p.decide },
		func(p stepParts) time.Duration { return p.send }, func(p stepParts) time.Duration { return p.command },
	}
	names := []string{"read", "decide", "send", "command"}
	slices.SortFunc(parts, func(a, b stepParts) int { return int(a.total - b.total) })
	tail := parts[len(parts)*99/100:]
	fmt.Printf("%-8s %10s %10s %14s\n", "part", "p50", "p99", "mean slowest 1%")
	for i, f := range get {
		ds := make([]time.Duration, len(parts))
		for j, p := range parts {
			ds[j] = f(p)
		}
		slices.Sort(ds)
		var sum time.Duration
		for _, p := range tail {
			sum += f(p)
		}
		fmt.Printf("%-8s %10v %10v %14v\n", names[i], ds[len(ds)/2].Round(10*time.Microsecond), ds[len(ds)*99/100].Round(10*time.Microsecond),
			(sum / time.Duration(len(tail))).Round(10*time.Microsecond))
	}
}

// stepMarks records, per customer, when the welcome PM was first called
// for its CustomerCreated and when its command reached the coordinator.
type stepMarks struct {
	mu           sync.Mutex
	pm, executed map[uuid.UUID]time.Time
}

func newStepMarks() *stepMarks {
	return &stepMarks{pm: map[uuid.UUID]time.Time{}, executed: map[uuid.UUID]time.Time{}}
}

func (m *stepMarks) mark(at map[uuid.UUID]time.Time, root []byte) {
	id, err := uuid.FromBytes(root)
	if err != nil {
		return
	}
	m.mu.Lock()
	if _, ok := at[id]; !ok {
		at[id] = time.Now()
	}
	m.mu.Unlock()
}

func (m *stepMarks) get(id uuid.UUID) (pm, executed time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pm[id], m.executed[id]
}

// markedPM is the welcome PM noting its first call per customer.
type markedPM struct {
	*sdk.ProcessManager[*wrapperspb.StringValue]
	marks *stepMarks
}

func (p markedPM) Handle(ctx context.Context, req *pb.ProcessManagerRequest) (*pb.ProcessManagerResponse, error) {
	if pages := req.GetTrigger().GetPages(); len(pages) > 0 && pages[0].GetEvent().MessageIs(&examples.CustomerCreated{}) {
		p.marks.mark(p.marks.pm, req.GetTrigger().GetCover().GetRoot().GetValue())
	}
	return p.ProcessManager.Handle(ctx, req)
}

// markedCoordinator is the coordinator noting each customer's first
// command.
type markedCoordinator struct {
	*coordinator
	marks *stepMarks
}

func (c markedCoordinator) Handle(ctx context.Context, cmd *pb.CommandBook) (*pb.CommandResponse, error) {
	c.marks.mark(c.marks.executed, cmd.GetCover().GetRoot().GetValue())
	return c.coordinator.Handle(ctx, cmd)
}
