//go:build !wasip1

package filter_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/angzarr-mesh/angzarr/filter/config"
	"github.com/angzarr-mesh/angzarr/filter/e2e"
	"github.com/angzarr-mesh/angzarr/filter/internal/counter"
	"github.com/angzarr-mesh/angzarr/filter/internal/directsvc"
	"github.com/angzarr-mesh/angzarr/filter/internal/wasmdrive"
	"github.com/angzarr-mesh/angzarr/internal/wasmbuild"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/wasmhost"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// loadDuration is how long each load run lasts.
const loadDuration = 5 * time.Second

// commandsPerAggregate bounds each aggregate's history, so both paths load
// similar, short histories.
const commandsPerAggregate = 100

// loadResult is one load run's figures.
type loadResult struct {
	n        int
	elapsed  time.Duration
	p50, p99 time.Duration
}

func (r loadResult) rate() float64 { return float64(r.n) / r.elapsed.Seconds() }

// runLoad sends counter commands from one goroutine per client for d, each
// client on its own connection and its own aggregates (sequence known, no
// conflicts).
func runLoad(b *testing.B, cls []pb.BusinessCoordinatorClient, d time.Duration) loadResult {
	b.Helper()
	clients := len(cls)
	var mu sync.Mutex
	var lats []time.Duration
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	deadline := time.Now().Add(d)
	start := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			var mine []time.Duration
			root := make([]byte, 16)
			for i := 0; time.Now().Before(deadline); i++ {
				seq := uint32(i % commandsPerAggregate)
				if seq == 0 {
					if _, err := rand.Read(root); err != nil {
						errs <- err
						return
					}
				}
				cmd := &pb.CommandBook{Cover: &pb.Cover{Domain: counter.Domain, Root: &pb.UUID{Value: append([]byte(nil), root...)}},
					Pages: []*pb.CommandPage{counter.Command(1, seq)}}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				t0 := time.Now()
				_, err := cls[c].Handle(ctx, cmd)
				cancel()
				if err != nil {
					errs <- err
					return
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lats = append(lats, mine...)
			mu.Unlock()
		}(c)
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	r := loadResult{n: len(lats), elapsed: elapsed}
	if len(lats) > 0 {
		r.p50 = lats[len(lats)/2]
		r.p99 = lats[len(lats)*99/100]
	}
	return r
}

func filterWasm(b *testing.B) string { return wasmbuild.Filter(b) }

// dialClients opens n connections to addr, one client on each: like n
// client processes. (Behind Envoy, the streams of one connection all run on
// the worker that accepted it; wasmhost does the same.)
func dialClients(b *testing.B, addr string, n int) []pb.BusinessCoordinatorClient {
	b.Helper()
	cls := make([]pb.BusinessCoordinatorClient, n)
	for i := range cls {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { conn.Close() })
		cls[i] = pb.NewBusinessCoordinatorClient(conn)
	}
	return cls
}

// BenchmarkCommandPath compares the full command path (client → wasmhost +
// filter → eventsvc on Redis → counter logic) with a hand-written service
// doing the same work directly on the same Redis, at 1 and 16 clients. Two
// more paths place the figures: angzarr with the aggregate cache off, and
// the direct service behind wasmhost running the filter as a pass-through
// (what the proxy hop alone costs; Envoy's would be cheaper, but Envoy
// cannot run here).
func BenchmarkCommandPath(b *testing.B) {
	s := e2e.Start(b, e2e.Options{Profile: wasmhost.WASIEnvoy133, Filter: filterWasm(b), Config: config.Config{}})
	noCache := e2e.Start(b, e2e.Options{Profile: wasmhost.WASIEnvoy133, Filter: filterWasm(b), Config: config.Config{AggregateCacheBytes: -1}})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	direct := directsvc.New(s.Redis)
	defer direct.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- directsvc.Serve(ctx, lis, direct) }()
	defer func() { cancel(); <-done }()
	proxied := passThroughProxy(b, lis.Addr().String())
	const maxClients = 16
	paths := []struct {
		name string
		cls  []pb.BusinessCoordinatorClient
	}{
		{"angzarr", dialClients(b, s.Proxy, maxClients)},
		{"no-cache", dialClients(b, noCache.Proxy, maxClients)},
		{"proxied", dialClients(b, proxied, maxClients)},
		{"direct", dialClients(b, lis.Addr().String(), maxClients)},
	}

	for i := 0; i < b.N; i++ {
		// Warm up every path (connections, VM compilation, Redis scripts).
		for _, p := range paths {
			runLoad(b, p.cls, 300*time.Millisecond)
		}
		fmt.Printf("\nCommand path vs direct Redis service (counter, %v per run, histories <= %d events, one connection per client)\n", loadDuration, commandsPerAggregate)
		fmt.Println("  angzarr: client → wasmhost + filter → eventsvc (Redis) + counter logic; no-cache: the same, aggregate cache off;")
		fmt.Println("  proxied: the direct service behind wasmhost with the filter passing through; direct: the hand-written service.")
		fmt.Printf("%-8s %-9s %10s %10s %10s   %s\n", "clients", "path", "cmds/s", "p50", "p99", "vs direct")
		for _, clients := range []int{1, 16} {
			res := make([]loadResult, len(paths))
			for j, p := range paths {
				res[j] = runLoad(b, p.cls[:clients], loadDuration)
			}
			base := res[len(res)-1]
			for j, p := range paths {
				r := res[j]
				fmt.Printf("%-8d %-9s %10.0f %10v %10v", clients, p.name, r.rate(), r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond))
				if j < len(paths)-1 {
					fmt.Printf("   throughput %.2f, p50 +%v", r.rate()/base.rate(), (r.p50 - base.p50).Round(time.Microsecond))
				}
				fmt.Println()
				b.ReportMetric(r.rate(), fmt.Sprintf("%s-cmds/s@%d", p.name, clients))
			}
			b.ReportMetric(res[0].rate()/base.rate(), fmt.Sprintf("ratio@%d", clients))
		}
	}
}

// passThroughProxy serves wasmhost with the filter configured with no
// domain (it passes every request through) in front of upstream, and
// returns its address.
func passThroughProxy(b *testing.B, upstream string) string {
	b.Helper()
	h, err := wasmhost.New(context.Background(), wasmhost.Config{
		FilterPath:  filterWasm(b),
		Upstream:    upstream,
		WASIProfile: wasmhost.WASIEnvoy133,
		VMs:         2,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Serve(ctx, lis) }()
	b.Cleanup(func() {
		cancel()
		<-done
		h.Close()
	})
	return lis.Addr().String()
}

// BenchmarkFilterModule drives the built module directly (no network) to
// measure the CPU the filter itself costs per command and its heap after
// 100,000 commands (or as many as fit in about 60 s, reported), with the
// aggregate cache off (every command loads; the heap must stay flat) and
// on (the default; the heap grows to the cache's bound, then stays).
// It reports the collections the filter runs between streams twice: their
// pause on the wall clock as the module measures it (what blocks the
// worker on an idle machine), and the CPU time of the callback that ran
// each (the OS thread's CPU clock, on Linux): on a machine other processes
// load, the wall clock counts their time too, the CPU clock does not.
func BenchmarkFilterModule(b *testing.B) {
	bin, err := os.ReadFile(filterWasm(b))
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		for _, c := range []struct{ name, cfg string }{
			{"cache-off", `{"domains":["counter"],"aggregate_cache_bytes":-1}`},
			{"cache-on", `{"domains":["counter"]}`},
		} {
			filterModuleRun(b, bin, c.name, c.cfg)
		}
	}
}

func filterModuleRun(b *testing.B, bin []byte, name, cfg string) {
	{
		d, err := wasmdrive.New(context.Background(), bin, []byte(cfg))
		if err != nil {
			b.Fatal(err)
		}
		const target = 100000
		deadline := time.Now().Add(60 * time.Second)
		root := make([]byte, 16)
		var agg *wasmdrive.Aggregate
		var at10k uint64
		pausesAt1k := 0
		// The CPU clocks read are this OS thread's.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var gcCPU []uint64 // µs, of each end-of-stream callback that collected
		n := 0
		for ; n < target && time.Now().Before(deadline); n++ {
			seq := uint32(n % commandsPerAggregate)
			if seq == 0 {
				copy(root, fmt.Sprintf("%016d", n))
				agg = &wasmdrive.Aggregate{}
			}
			cmd := &pb.CommandBook{Cover: &pb.Cover{Domain: counter.Domain, Root: &pb.UUID{Value: append([]byte(nil), root...)}},
				Pages: []*pb.CommandPage{counter.Command(1, seq)}}
			collections := len(d.Histograms["angzarr.filter.gc_pause_us"])
			if _, code, err := d.Handle(agg, cmd); err != nil || code != 0 {
				b.Fatalf("command %d: %d %v", n, code, err)
			}
			if len(d.Histograms["angzarr.filter.gc_pause_us"]) > collections {
				// proxy_on_delete, the last call of Handle, collected.
				gcCPU = append(gcCPU, uint64(d.LastCallCPU.Microseconds()))
			}
			if n == 10000 {
				at10k = d.Gauges["angzarr.filter.heap_live_bytes"]
			}
			if n == 999 {
				pausesAt1k = len(d.Histograms["angzarr.filter.gc_pause_us"])
			}
		}
		pauses := d.Histograms["angzarr.filter.gc_pause_us"]
		perCmd := d.WasmTime / time.Duration(n)
		cpuPerCmd := d.WasmCPU / time.Duration(n)
		live := d.Gauges["angzarr.filter.heap_live_bytes"]
		fmt.Printf("\nFilter module alone, %s (wazero compiler, no network): %d commands", name, n)
		if n < target {
			fmt.Printf(" (stopped at 60 s, short of %d)", target)
		}
		fmt.Printf("\n  wasm time per command: %v wall, %v thread CPU (all proxy_on_* callbacks of one Handle)\n", perCmd, cpuPerCmd)
		fmt.Printf("  Go heap live after GC: %d KiB at 10k commands, %d KiB at %d; runtime memory %d KiB; linear memory %d KiB\n",
			at10k/1024, live/1024, n, d.Gauges["angzarr.filter.runtime_memory_bytes"]/1024, d.MemoryBytes()/1024)
		// The collections the filter runs between streams block the
		// worker's thread (Envoy's event loop) for their pause.
		p50, p99 := percentiles(pauses[:pausesAt1k])
		fmt.Printf("  GC pauses (debug.FreeOSMemory between streams): first 1k commands %d, p50 %d µs, p99 %d µs;",
			pausesAt1k, p50, p99)
		p50, p99 = percentiles(pauses)
		fmt.Printf(" all %d commands %d, p50 %d µs, p99 %d µs; one collection per %d commands\n",
			n, len(pauses), p50, p99, n/max(1, len(pauses)))
		c50, c99 := percentiles(gcCPU)
		fmt.Printf("  GC pauses in thread CPU (the callback that collected): p50 %d µs, p99 %d µs\n", c50, c99)
		b.ReportMetric(float64(c50), "gc-cpu-p50-µs-"+name)
		b.ReportMetric(float64(c99), "gc-cpu-p99-µs-"+name)
		b.ReportMetric(float64(cpuPerCmd.Nanoseconds())/1000, "wasm-cpu-µs/cmd-"+name)
		b.ReportMetric(float64(p99), "gc-pause-p99-µs-"+name)
		b.ReportMetric(float64(perCmd.Nanoseconds())/1000, "wasm-µs/cmd-"+name)
		b.ReportMetric(float64(live), "heap-live-bytes-"+name)
		d.Close()
	}
}

// percentiles returns the 50th and 99th percentiles of vs (0 for none).
func percentiles(vs []uint64) (p50, p99 uint64) {
	if len(vs) == 0 {
		return 0, 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	return s[len(s)/2], s[min(len(s)-1, len(s)*99/100)]
}
