//go:build !wasip1

package e2e

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/angzarr-mesh/angzarr/filter/config"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/wasmhost"
)

// Contention: how many writers on one aggregate, how many commands each.
const (
	contentionClients  = 32
	contentionCommands = 100
	// contentionDeadline is each command's deadline (grpc-timeout).
	contentionDeadline = 10 * time.Second
)

// contention is one run's outcome.
type contention struct {
	ok      int
	failed  map[codes.Code]int
	elapsed time.Duration
	lats    []time.Duration // of the successful commands, sorted
	stored  int
}

// runContention sends contentionClients × contentionCommands auto_resequence
// commands (+1 each) to one counter aggregate through the proxy and the
// filter, every client in its own goroutine, over two connections (one per
// wasmhost VM).
func runContention(b *testing.B, retry config.Config) contention {
	retry.Domains = nil // the counter's
	s := Start(b, Options{Profile: wasmhost.WASIEnvoyCurrent, Filter: wasmPath, VMs: 2, Config: retry})
	conns := []pb.BusinessCoordinatorClient{pb.NewBusinessCoordinatorClient(dial(b, s.Proxy)), pb.NewBusinessCoordinatorClient(dial(b, s.Proxy))}
	root := newRoot(b)
	var (
		mu  sync.Mutex
		out = contention{failed: map[codes.Code]int{}}
		wg  sync.WaitGroup
	)
	start := time.Now()
	for c := range contentionClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := conns[c%len(conns)]
			for range contentionCommands {
				cmd := command(root, 0, 1)
				cmd.AutoResequence = true
				ctx, cancel := context.WithTimeout(context.Background(), contentionDeadline)
				t0 := time.Now()
				_, err := cl.Handle(ctx, cmd)
				lat := time.Since(t0)
				cancel()
				mu.Lock()
				if err != nil {
					out.failed[status.Code(err)]++
				} else {
					out.ok++
					out.lats = append(out.lats, lat)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	out.elapsed = time.Since(start)
	slices.Sort(out.lats)
	out.stored = len(stored(b, s, root))
	return out
}

// BenchmarkContention: 32 clients × 100 commands with auto_resequence on
// ONE aggregate, through wasmhost + the filter + the event service on
// Redis. Every write but one per round conflicts; the filter reloads and
// retries (max_retries 8). Run once with retries at once (retry_backoff
// 1ns, retry_backoff_max 1ns: the behaviour before back-off, the
// baseline) and once with the default jittered back-off, and print success
// rate, throughput and latency of each. Figures, not assertions (they
// depend on the machine's load); run it with -benchtime=1x:
//
//	go test -run '^$' -bench Contention -benchtime=1x ./filter/e2e
func BenchmarkContention(b *testing.B) {
	for range b.N {
		total := contentionClients * contentionCommands
		fmt.Printf("\n%d clients × %d commands with auto_resequence on one aggregate (wasmhost, 2 VMs, Redis), max_retries %d, deadline %v\n",
			contentionClients, contentionCommands, config.DefaultMaxRetries, contentionDeadline)
		fmt.Printf("%-28s %9s %9s %10s %10s %10s   %s\n", "retries", "succeeded", "rate", "commands/s", "p50", "p99", "failures")
		var rates []float64
		for _, run := range []struct {
			name string
			cfg  config.Config
		}{
			{"at once (baseline)", config.Config{RetryBackoff: config.Duration(time.Nanosecond), RetryBackoffMax: config.Duration(time.Nanosecond)}},
			{fmt.Sprintf("jittered back-off %v..%v", config.DefaultRetryBackoff, config.DefaultRetryBackoffMax), config.Config{}},
		} {
			r := runContention(b, run.cfg)
			if r.stored != r.ok {
				b.Fatalf("%s: %d commands succeeded, %d events stored", run.name, r.ok, r.stored)
			}
			rate := float64(r.ok) / float64(total)
			rates = append(rates, rate)
			pct := func(p float64) time.Duration {
				if len(r.lats) == 0 {
					return 0
				}
				return r.lats[int(float64(len(r.lats)-1)*p)].Round(100 * time.Microsecond)
			}
			fmt.Printf("%-28s %4d/%4d %8.1f%% %10.0f %10v %10v   %v\n", run.name, r.ok, total, 100*rate,
				float64(r.ok)/r.elapsed.Seconds(), pct(.5), pct(.99), r.failed)
		}
		b.ReportMetric(100*rates[0], "%ok-at-once")
		b.ReportMetric(100*rates[1], "%ok-backoff")
	}
}
