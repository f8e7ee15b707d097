//go:build !wasip1

package e2e

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/angzarr-mesh/angzarr/filter/config"
	"github.com/angzarr-mesh/angzarr/internal/identity"
	"github.com/angzarr-mesh/angzarr/internal/testutil"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/wasmhost"
)

// Command-path benchmark shape: the issue's target is set at 16 clients.
const (
	identityBenchClients = 16
	// Many short windows rather than a few long ones: a stall of this
	// shared machine spoils one pair, not the figure (testutil.Pairs).
	identityBenchWindow = time.Second
	identityBenchRounds = 12
)

// BenchmarkCommandPathIdentity measures commands/s through the proxy (the
// real filter in wasmhost, 2 VMs) with mTLS everywhere and authorization
// (client -> proxy, filter -> event service, caller-scoped keys) against
// plaintext, at 16 clients each on its own aggregate, in the same run:
// pairs of windows in ABBA order after a warm-up pair, the median of the
// pairs' ratios printed with their quartiles and the load average (target
// >= 0.85).
func BenchmarkCommandPathIdentity(b *testing.B) {
	if b.N > 1 {
		b.Skip("runs a fixed load once: use -benchtime 1x")
	}
	plain := Start(b, Options{Profile: wasmhost.WASIEnvoyCurrent, Filter: wasmPath, VMs: 2, Config: config.Config{MaxRetries: 8}})
	st := startSecure(b)
	secureAddr := st.proxy(st.issue("shop", "counter"), 2)
	clientFiles := st.issue("shop", "web")
	secure := make([]*grpc.ClientConn, 4)
	for i := range secure {
		c, err := grpc.NewClient(secureAddr, identity.DialOption(clientFiles, identity.ID{}))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		secure[i] = c
	}
	plainClient := plain.Coordinator()
	plainOf := func(int) pb.BusinessCoordinatorClient { return plainClient }
	secureOf := func(k int) pb.BusinessCoordinatorClient {
		return pb.NewBusinessCoordinatorClient(secure[k%len(secure)])
	}

	p := testutil.Pairs(identityBenchRounds, func() float64 { return commandRate(b, plainOf) }, func() float64 { return commandRate(b, secureOf) })
	fmt.Printf("\nCommand path (client -> wasmhost + filter, 2 VMs -> event service on Redis), %d clients, %d pairs of %v windows after a warm-up pair (ABBA order):\n",
		identityBenchClients, identityBenchRounds, identityBenchWindow)
	p.Print(os.Stdout, "plaintext commands/s", "mTLS + authorization commands/s", "target >= 0.85")
	b.ReportMetric(p.Median(), "secure/plain")
	b.ReportMetric(p.CPURatio(), "secure/plain-per-cpu")
}

// commandRate has identityBenchClients clients send commands, each to its
// own new aggregate with the expected sequence, for identityBenchWindow.
func commandRate(b *testing.B, client func(k int) pb.BusinessCoordinatorClient) float64 {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var (
		ops  atomic.Int64
		stop atomic.Bool
		wg   sync.WaitGroup
		errs = make(chan error, identityBenchClients)
	)
	start := time.Now()
	for k := range identityBenchClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			root := newRoot(b)
			for seq := uint32(0); !stop.Load(); seq++ {
				if _, err := client(k).Handle(ctx, command(root, seq, 1)); err != nil {
					errs <- err
					return
				}
				ops.Add(1)
			}
		}()
	}
	time.Sleep(identityBenchWindow) // the measurement window, not a readiness wait
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	return float64(ops.Load()) / elapsed.Seconds()
}
