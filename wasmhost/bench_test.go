package wasmhost_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/angzarr-mesh/angzarr/wasmhost"
	"github.com/angzarr-mesh/angzarr/wasmhost/wasmhosttest"
)

// Fixed, bounded load per path, whatever b.N is (make bench runs -benchtime 1x).
const (
	benchRequests    = 4000 // throughput phase, benchConcurrency clients
	benchConcurrency = 16
	benchLatencyReqs = 1000 // latency phase, one client at a time
	benchWarmup      = 400
)

type benchResult struct {
	name     string
	rps      float64
	p50, p99 time.Duration
}

// BenchmarkProxy measures unary gRPC requests/s and p50/p99 latency direct
// to the upstream, through a plain Go reverse proxy (httputil.ReverseProxy
// over h2c, no Wasm) and through wasmhost with a no-op plugin, and prints
// the ratios. Targets: the no-op plugin adds < 100µs at p50 and keeps
// >= 0.7 of the plain proxy's throughput.
func BenchmarkProxy(b *testing.B) {
	upstream := startNativeGRPC(b)
	plain := startPlainProxy(b, upstream)
	p := wasmhosttest.Start(b, wasmhost.Config{
		Plugin:   wasmhost.Plugin{Module: pluginWasm(b), Configuration: []byte("mode=noop")},
		Upstream: upstream,
		VMs:      runtime.GOMAXPROCS(0),
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	b.ResetTimer()
	results := []benchResult{
		runLoad(b, "direct", upstream),
		runLoad(b, "plain reverse proxy", plain),
		runLoad(b, "wasmhost no-op plugin", p.Addr),
	}
	b.StopTimer()
	direct, plainR, wasm := results[0], results[1], results[2]
	fmt.Printf("\nunary gRPC, 64-byte payload, GOMAXPROCS=%d\n", runtime.GOMAXPROCS(0))
	fmt.Printf("req/s: %d requests from %d concurrent clients; p50/p99: %d sequential requests\n", benchRequests, benchConcurrency, benchLatencyReqs)
	fmt.Printf("%-24s %12s %12s %12s\n", "path", "req/s", "p50", "p99")
	for _, r := range results {
		fmt.Printf("%-24s %12.0f %12s %12s\n", r.name, r.rps, r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond))
	}
	fmt.Printf("wasmhost / plain proxy throughput: %.2f (target >= 0.70)\n", wasm.rps/plainR.rps)
	fmt.Printf("wasmhost - plain proxy p50:        %s (target < 100µs)\n", (wasm.p50 - plainR.p50).Round(time.Microsecond))
	fmt.Printf("plain proxy / direct throughput:   %.2f\n", plainR.rps/direct.rps)
	fmt.Printf("wasmhost / direct throughput:      %.2f\n", wasm.rps/direct.rps)
	b.ReportMetric(wasm.rps/plainR.rps, "wasm/plain-rps")
	b.ReportMetric(float64((wasm.p50 - plainR.p50).Microseconds()), "added-p50-µs")
}

func runLoad(b *testing.B, name, addr string) benchResult {
	b.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	c := testgrpc.NewTestServiceClient(conn)
	req := &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: make([]byte, 64)}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run := func(n, clients int, lat []time.Duration) {
		var wg sync.WaitGroup
		next := make(chan int, n)
		for i := 0; i < n; i++ {
			next <- i
		}
		close(next)
		for w := 0; w < clients; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					start := time.Now()
					if _, err := c.UnaryCall(ctx, req); err != nil {
						b.Errorf("%s: %v", name, err)
						return
					}
					if lat != nil {
						lat[i] = time.Since(start)
					}
				}
			}()
		}
		wg.Wait()
	}
	run(benchWarmup, benchConcurrency, nil)
	start := time.Now()
	run(benchRequests, benchConcurrency, nil)
	elapsed := time.Since(start)
	lat := make([]time.Duration, benchLatencyReqs)
	run(benchLatencyReqs, 1, lat)
	slices.Sort(lat)
	return benchResult{
		name: name,
		rps:  float64(benchRequests) / elapsed.Seconds(),
		p50:  lat[len(lat)/2],
		p99:  lat[len(lat)*99/100],
	}
}

// startPlainProxy is the baseline: httputil.ReverseProxy over h2c.
func startPlainProxy(b *testing.B, upstream string) string {
	b.Helper()
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &protocols, MaxIdleConnsPerHost: 16}
	target := &url.URL{Scheme: "http", Host: upstream}
	rp := &httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(target); r.Out.Host = r.In.Host },
		Transport:     tr,
		FlushInterval: -1,
	}
	var sp http.Protocols
	sp.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: rp, Protocols: &sp}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	b.Cleanup(func() {
		_ = srv.Close()
		<-done
		tr.CloseIdleConnections()
	})
	return ln.Addr().String()
}
