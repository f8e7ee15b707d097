package controlplane

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// bigTopology is a topology of n domains with n/10 sagas and n/10
// projectors, each reading and writing a few domains.
func bigTopology(n int) *Topology {
	t := &Topology{APIVersion: TopologyAPIVersion, Kind: TopologyKind,
		EventService: EventService{Address: "angzarr-eventsvc.angzarr-system.svc.cluster.local:1313"}}
	for i := range n {
		t.Domains = append(t.Domains, Domain{Name: fmt.Sprintf("d%04d", i),
			Service: fmt.Sprintf("d%04d.shop.svc.cluster.local", i), Port: 50051})
	}
	for i := range n / 10 {
		d := func(k int) string { return fmt.Sprintf("d%04d", (i*10+k)%n) }
		t.Sagas = append(t.Sagas, Saga{Name: fmt.Sprintf("saga-%d", i), Address: fmt.Sprintf("saga-%d.shop:50051", i),
			Sources: []string{d(0), d(1)}, Targets: []string{d(2), d(3)}})
		t.Projectors = append(t.Projectors, Projector{Name: fmt.Sprintf("proj-%d", i), Address: fmt.Sprintf("proj-%d.shop:50051", i),
			Domains: []string{d(4), d(5), d(6)}})
	}
	return t
}

// benchRow is one line of the printed table.
type benchRow struct {
	what     string
	baseline time.Duration // the 6-domain shop
	big      time.Duration // 1,000 domains
	target   string
}

var (
	benchMu    sync.Mutex
	benchTable = map[string]benchRow{}
)

func record(r benchRow) {
	benchMu.Lock()
	defer benchMu.Unlock()
	benchTable[r.what] = r
}

// printTable prints every row recorded so far.
func printTable() {
	benchMu.Lock()
	defer benchMu.Unlock()
	keys := make([]string, 0, len(benchTable))
	for k := range benchTable {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-46s %14s %14s %8s %8s\n", "controlplane", "shop (6 dom.)", "1,000 domains", "ratio", "target")
	for _, k := range keys {
		r := benchTable[k]
		fmt.Fprintf(&b, "%-46s %14v %14v %7.0fx %8s\n", r.what, r.baseline.Round(time.Microsecond), r.big.Round(time.Microsecond),
			float64(r.big)/float64(max(r.baseline, 1)), r.target)
	}
	fmt.Fprint(os.Stdout, b.String())
}

// median runs f n times and returns the median duration.
func median(n int, f func() time.Duration) time.Duration {
	ds := make([]time.Duration, n)
	for i := range ds {
		ds[i] = f()
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[n/2]
}

// BenchmarkTranslate measures translating and verifying a topology of
// 1,000 domains (every class of node: 2,002 snapshots) against the shop.
func BenchmarkTranslate(b *testing.B) {
	o := Options{WasmFile: testWasmFile}
	run := func(t *Topology) func() time.Duration {
		return func() time.Duration {
			start := time.Now()
			tr, err := Translate(t, o)
			if err != nil {
				b.Fatal(err)
			}
			if err := VerifyTranslation(tr); err != nil {
				b.Fatal(err)
			}
			return time.Since(start)
		}
	}
	shop, big := loadShop(b), bigTopology(1000)
	for b.Loop() {
		base := median(5, run(shop))
		d := median(3, run(big))
		record(benchRow{"translate + verify", base, d, "< 1s"})
		b.ReportMetric(float64(d.Milliseconds()), "ms/translate-1000")
	}
	printTable()
}

// BenchmarkPush measures, with a real gRPC server and ADS clients, the time
// from Apply (translate, verify, publish) of a changed topology until a
// connected sidecar node and a connected gateway node (which gets every
// domain's resources) have received their new ECDS.
func BenchmarkPush(b *testing.B) {
	measure := func(t *Topology, sidecarDomain string) time.Duration {
		p := newPublisher(slog.New(slog.DiscardHandler), Options{WasmFile: testWasmFile}, mustMetrics(b), noop.NewTracerProvider().Tracer(""))
		if _, err := p.Apply(context.Background(), t); err != nil {
			b.Fatal(err)
		}
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- serveXDS(ctx, lis, p) }()
		defer func() { cancel(); <-done }()
		conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()

		sidecar := adsStream(b, conn, &core.Node{Id: sidecarDomain})
		gateway := adsStream(b, conn, &core.Node{Id: "gateway"})
		var gwNames []string
		for _, d := range t.Domains {
			gwNames = append(gwNames, domainFilterName(d.Name))
		}
		sidecar.subscribe(resource.ExtensionConfigType, FilterName)
		gateway.subscribe(resource.ExtensionConfigType, gwNames...)
		sidecar.ack(sidecar.next(resource.ExtensionConfigType, time.Minute))
		gateway.ack(gateway.next(resource.ExtensionConfigType, time.Minute))

		return median(3, func() time.Duration {
			// Every domain's retry bound changes: every class changes.
			for i := range t.Domains {
				t.Domains[i].MaxRetries++
			}
			start := time.Now()
			if _, err := p.Apply(context.Background(), t); err != nil {
				b.Fatal(err)
			}
			sidecar.ack(sidecar.next(resource.ExtensionConfigType, time.Minute))
			gateway.ack(gateway.next(resource.ExtensionConfigType, time.Minute))
			return time.Since(start)
		})
	}
	for b.Loop() {
		base := measure(loadShop(b), "order")
		d := measure(bigTopology(1000), "d0500")
		record(benchRow{"push: Apply -> sidecar + gateway got new ECDS", base, d, "< 1s"})
		b.ReportMetric(float64(d.Milliseconds()), "ms/push-1000")
	}
	printTable()
}

func mustMetrics(b testing.TB) *metrics {
	m, err := newMetrics(nil, func() int64 { return 0 })
	if err != nil {
		b.Fatal(err)
	}
	return m
}
