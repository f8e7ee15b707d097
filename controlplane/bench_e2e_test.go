package controlplane_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/angzarr-mesh/angzarr/controlplane"
	"github.com/angzarr-mesh/angzarr/controlplane/xdsclient"
	"github.com/angzarr-mesh/angzarr/controlplane/xdsproxy"
	"github.com/angzarr-mesh/angzarr/eventsvc/eventsvctest"
	"github.com/angzarr-mesh/angzarr/examples/go/shop"
	"github.com/angzarr-mesh/angzarr/internal/wasmbuild"
	"github.com/angzarr-mesh/angzarr/wasmhost"
)

// bigYAML is e2eTopology plus n-1 more domains (and n/10 sagas).
func bigYAML(eventsvc, logic string, maxBody, n int) string {
	var b strings.Builder
	b.WriteString(e2eTopology(eventsvc, logic, maxBody))
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, "  - {name: d%04d, service: d%04d.shop.svc.cluster.local, port: 50051}\n", i, i)
	}
	if n > 1 {
		b.WriteString("sagas:\n")
		for i := 0; i < n/10; i++ {
			fmt.Fprintf(&b, "  - {name: saga-%d, address: \"saga-%d.shop:50051\", sources: [d%04d], targets: [cart]}\n", i, i, i+1)
		}
	}
	return b.String()
}

// BenchmarkFileSaveToProxy measures the delay from saving the topology
// file to the new configuration applied in a running proxy (wasmhost with
// the real filter, configured over xDS by ProxyClient), for the small
// topology and for 1,000 domains. Target: < 1 s.
func BenchmarkFileSaveToProxy(b *testing.B) {
	wasm := wasmbuild.Filter(b)
	es := eventsvctest.Start(b, "sqlite:"+filepath.Join(b.TempDir(), "events.db"))
	cart, err := shop.Lookup("cart")
	if err != nil {
		b.Fatal(err)
	}
	llis := listen(b)
	logic := llis.Addr().String()
	serve(b, func(ctx context.Context) error { return shop.Serve(ctx, llis, cart) })

	measure := func(n int) time.Duration {
		topo := filepath.Join(b.TempDir(), "topology.yaml")
		writeAtomic(b, topo, bigYAML(es, logic, 0, n))
		cp, err := controlplane.New(controlplane.Config{Topology: topo, Filter: controlplane.Options{WasmFile: wasm},
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		clis := listen(b)
		done := make(chan error, 1)
		go func() { done <- cp.Serve(ctx, clis) }()
		defer func() { cancel(); <-done }()
		conn, err := grpc.NewClient(clis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		waitServing(b, conn)
		plis := listen(b)
		applied := make(chan xdsclient.ProxyConfig, 8)
		pdone := make(chan error, 1)
		go func() {
			pdone <- xdsproxy.Serve(ctx, plis, nil, xdsproxy.Config{XDS: clis.Addr().String(), Node: "cart-proxy",
				Host:    wasmhost.Config{VMs: 1, Logger: slog.New(slog.DiscardHandler)},
				Applied: func(pc xdsclient.ProxyConfig) { applied <- pc }})
		}()
		defer func() { cancel(); <-pdone }()
		nextApplied(b, applied)
		var ds []time.Duration
		for i := range 3 {
			start := time.Now()
			writeAtomic(b, topo, bigYAML(es, logic, 1<<20+i, n))
			nextApplied(b, applied)
			ds = append(ds, time.Since(start))
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[1]
	}
	for b.Loop() {
		small, big := measure(1), measure(1000)
		fmt.Fprintf(os.Stdout, "\n%-46s %14s %14s %8s\n%-46s %14v %14v %8s\n",
			"controlplane (poll 200ms)", "1 domain", "1,000 domains", "target",
			"file save -> config applied in the proxy", small.Round(time.Millisecond), big.Round(time.Millisecond), "< 1s")
		b.ReportMetric(float64(big.Milliseconds()), "ms/save-to-proxy-1000")
	}
}
