package eventsvc_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	promclient "github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	promexp "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/angzarr-mesh/angzarr/eventsvc"
	"github.com/angzarr-mesh/angzarr/eventsvc/eventsvctest"
	"github.com/angzarr-mesh/angzarr/eventsvc/server"
	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/storetest"
	"github.com/angzarr-mesh/angzarr/internal/testredis"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// benchWindow is how long each throughput figure is measured.
const benchWindow = 2 * time.Second

var benchClients = []int{1, 16, 64}

// BenchmarkEventService measures appends/s and loads/s through gRPC on
// Redis and SQLite at 1, 16 and 64 clients, beside `redis-benchmark -t set`
// on the same redis-server and beside the same gRPC server over a store
// that does nothing (the floor the gRPC stack itself sets on this
// machine), with the process's CPU time per append; the same appends on
// the stores alone, without gRPC (where group commit shows); and the load
// time of a 1,000-event aggregate (no snapshot) taken as bytes (as the
// filter takes it) and decoded, its allocations, and the load time of a
// 100,000-event aggregate with a snapshot. The process runs with the GC
// target of `angzarr eventsvc` (DefaultGCPercent) unless GOGC is set. It
// runs a fixed, bounded load once, whatever b.N is, and prints tables.
func BenchmarkEventService(b *testing.B) {
	if b.N > 1 {
		b.Skip("runs a fixed load once: use -benchtime 1x")
	}
	// The GC target `angzarr eventsvc` sets (unless GOGC is set: then
	// that, to compare).
	gc := eventsvc.DefaultGCPercent
	if v, ok := os.LookupEnv("GOGC"); ok {
		gc = -2
		fmt.Printf("GOGC=%s from the environment\n", v)
	} else {
		defer debug.SetGCPercent(debug.SetGCPercent(gc))
	}
	redisSrv := testredis.StartServer(b, testredis.Options{})
	raw := map[int]float64{}
	for _, c := range benchClients {
		raw[c] = redisBenchmarkSet(b, redisSrv.Addr(), c)
	}
	type row struct {
		backend                string
		appends, loads, direct map[int]float64
		cpu                    map[int]time.Duration
		load1k, load100kSnap   time.Duration
		load1kRaw              time.Duration
		allocs1k               float64
		storeLoad1k            time.Duration
		storeAllocs1k          float64
	}
	noop, noopCPU := map[int]float64{}, map[int]time.Duration{}
	conns := dialN(b, startNoopServer(b), benchConns)
	for _, c := range benchClients {
		noop[c], noopCPU[c] = appendCPU(b, conns, c, storetest.Domain(b), benchWindow)
	}
	var rows []row
	for _, be := range []struct{ name, url string }{
		{"redis", "redis://" + redisSrv.Addr() + "/0"},
		{"sqlite", "sqlite:" + filepath.Join(b.TempDir(), "bench.db")},
	} {
		addr := eventsvctest.Start(b, be.url)
		conns := dialN(b, addr, benchConns)
		r := row{backend: be.name, appends: map[int]float64{}, loads: map[int]float64{}, direct: map[int]float64{}, cpu: map[int]time.Duration{}}
		for _, c := range benchClients {
			r.appends[c], r.cpu[c] = appendCPU(b, conns, c, storetest.Domain(b), benchWindow)
			r.loads[c] = loadThroughput(b, conns, c)
		}
		r.load1k, r.load1kRaw, r.load100kSnap, r.allocs1k = loadTimes(b, conns[0])
		st := openStore(b, be.url)
		for _, c := range benchClients {
			r.direct[c] = storeAppendThroughput(b, st, c)
		}
		r.storeLoad1k, r.storeAllocs1k = storeLoadTime(b, st)
		rows = append(rows, r)
	}

	fmt.Printf("\nEvent service through gRPC: one in-process eventsvc, the clients on %d connections (the sidecars\n", benchConns)
	fmt.Printf("of %d pods: a sidecar multiplexes its commands on one connection), %v per figure, GC target %s;\n", benchConns, benchWindow, gcName(gc))
	fmt.Println("appends of one 100-byte event with the expected sequence; loads of 10-event aggregates;")
	fmt.Println("redis SET/s: redis-benchmark -t set with the same number of clients on the same redis-server;")
	fmt.Println("no-op store: the same gRPC server (stats handler, metrics) over a store that stores nothing;")
	fmt.Println("CPU/append: the process's CPU time per append, the Go clients' and the event service's (not redis-server's).")
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "backend\tclients\tappends/s\tloads/s\tredis SET/s\tappends/SET\tappends/no-op\tCPU/append\t")
	for _, c := range benchClients {
		fmt.Fprintf(w, "no-op store\t%d\t%.0f\t-\t%.0f\t%.2f\t1.00\t%.1fµs\t\n", c, noop[c], raw[c], noop[c]/raw[c], micros(noopCPU[c]))
	}
	for _, r := range rows {
		for _, c := range benchClients {
			set, ratio := "-", "-"
			if r.backend == "redis" {
				set = fmt.Sprintf("%.0f", raw[c])
				ratio = fmt.Sprintf("%.2f", r.appends[c]/raw[c])
			}
			fmt.Fprintf(w, "%s\t%d\t%.0f\t%.0f\t%s\t%s\t%.2f\t%.1fµs\t\n", r.backend, c, r.appends[c], r.loads[c], set, ratio, r.appends[c]/noop[c], micros(r.cpu[c]))
		}
	}
	w.Flush()
	fmt.Println("\nThe stores alone (Append called in the process, no gRPC), same appends:")
	w = tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "backend\tclients\tappends/s\tappends/SET\t")
	for _, r := range rows {
		for _, c := range benchClients {
			ratio := "-"
			if r.backend == "redis" {
				ratio = fmt.Sprintf("%.2f", r.direct[c]/raw[c])
			}
			fmt.Fprintf(w, "%s\t%d\t%.0f\t%s\t\n", r.backend, c, r.direct[c], ratio)
		}
	}
	w.Flush()
	fmt.Println("\nLoad times: mean of 50 gRPC Loads taken as the filter takes them (the response's bytes, the book")
	fmt.Println("passed on undecoded) and decoded into Go messages (allocations of client and server together),")
	fmt.Println("and of 50 store Loads in the process:")
	w = tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "backend\t1,000 events, gRPC, bytes\t1,000 events, gRPC, decoded\tallocs/load\t1,000 events, store\tallocs/load\t100,000 events, snapshot + 100 after it, gRPC\t")
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%v\t%v\t%.0f\t%v\t%.0f\t%v\t\n", r.backend, r.load1kRaw.Round(time.Microsecond), r.load1k.Round(time.Microsecond), r.allocs1k,
			r.storeLoad1k.Round(time.Microsecond), r.storeAllocs1k, r.load100kSnap.Round(time.Microsecond))
	}
	w.Flush()
	for _, r := range rows {
		b.ReportMetric(r.appends[64], r.backend+"-appends/s@64")
	}
	b.ReportMetric(raw[64], "redis-set/s@64")
}

// benchConns is the number of client connections: the mesh's callers of
// the event service are sidecars, each multiplexing its pod's commands on
// one HTTP/2 connection. More connections for the same clients cost the
// server more CPU per call (fewer calls share a read and a write).
const benchConns = 4

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func gcName(gc int) string {
	if gc == -2 {
		return "from GOGC"
	}
	return fmt.Sprintf("%d (angzarr eventsvc's default)", gc)
}

// rawCodec sends proto messages and takes an answer as the bytes that came
// (*[]byte), as the filter takes a LoadResponse and hands the book on.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, err := proto.Marshal(v.(proto.Message))
	return mem.BufferSlice{mem.SliceBuffer(b)}, err
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }

// startNoopServer serves the event service's gRPC API, composed as Serve
// composes it (stats handler with metrics, server metrics), over a store
// whose Append stores nothing, and returns its address.
func startNoopServer(b testing.TB) string {
	reg := promclient.NewRegistry()
	exp, err := promexp.New(promexp.WithRegisterer(reg))
	if err != nil {
		b.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	g, serve, err := eventsvc.NewGRPCServer(mp, otel.GetTracerProvider())
	if err != nil {
		b.Fatal(err)
	}
	srv, err := server.New(noopStore{}, server.Options{MeterProvider: mp})
	if err != nil {
		b.Fatal(err)
	}
	srv.Register(g)
	serve()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go g.Serve(lis) //nolint:errcheck // ends with Stop
	b.Cleanup(func() { g.Stop(); _ = mp.Shutdown(context.Background()) })
	return lis.Addr().String()
}

// noopStore answers every Append as stored without storing it.
type noopStore struct{ store.Store }

func (noopStore) Append(_ context.Context, r *store.AppendRequest) (*store.AppendResult, error) {
	return &store.AppendResult{First: r.Expected, Next: r.Expected + uint32(len(r.Pages)), Position: &pb.LogPosition{}}, nil
}

func (noopStore) Partitions() uint32 { return 1 }

// openStore opens the store of a URL in the process (beside the event
// service on the same storage).
func openStore(b testing.TB, url string) store.Store {
	st, err := eventsvc.OpenStore(context.Background(), url, store.Limits{}, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

// storeAppendThroughput: appendThroughputFor on the store itself.
func storeAppendThroughput(b testing.TB, st store.Store, c int) float64 {
	domain := storetest.Domain(b)
	aggs := make([]store.Aggregate, c)
	next := make([]uint32, c)
	for i := range aggs {
		aggs[i] = store.Aggregate{Domain: domain, Root: uuid.New()}
	}
	ev := storetest.Event(strings.Repeat("e", 100))
	return run(b, c, func(ctx context.Context, k, _ int) error {
		res, err := st.Append(ctx, &store.AppendRequest{Aggregate: aggs[k], CorrelationID: "bench", Expected: next[k], Pages: []*pb.EventPage{{Event: ev}}})
		if err != nil {
			return err
		}
		next[k] = res.Next
		return nil
	})
}

// storeLoadTime returns the mean time and allocations of a store load (as
// the gRPC server makes it: LoadEncoded) of a 1,000-event aggregate
// without snapshot.
func storeLoadTime(b testing.TB, st store.Store) (time.Duration, float64) {
	ctx := context.Background()
	agg := store.Aggregate{Domain: storetest.Domain(b), Root: uuid.New()}
	if _, err := st.Append(ctx, &store.AppendRequest{Aggregate: agg, Pages: storetest.Pages(0, 1000, "s")}); err != nil {
		b.Fatal(err)
	}
	loadFn := st.Load
	if el, ok := st.(store.EncodedLoader); ok {
		loadFn = el.LoadEncoded // what the gRPC server calls
	}
	load := func() {
		l, err := loadFn(ctx, agg, store.LoadQuery{MaxBytes: store.DefaultLoadPageBytes}) // as the server asks
		if err != nil || l.PageCount() != 1000 {
			b.Fatalf("load: %v", err)
		}
	}
	const n = 50
	start := time.Now()
	for i := 0; i < n; i++ {
		load()
	}
	took := time.Since(start) / n
	// AllocsPerRun runs with GOMAXPROCS 1: counted apart from the timing.
	return took, testing.AllocsPerRun(10, load)
}

// redisBenchmarkSet runs redis-benchmark -t set with c clients and returns
// requests per second.
func redisBenchmarkSet(b testing.TB, addr string, c int) float64 {
	b.Helper()
	host, port, _ := strings.Cut(addr, ":")
	n := 20000
	if c > 1 {
		n = 100000
	}
	out, err := exec.Command("redis-benchmark", "-h", host, "-p", port, "-t", "set", "-c", strconv.Itoa(c), "-n", strconv.Itoa(n), "--csv").Output()
	if err != nil {
		b.Fatalf("redis-benchmark: %v (installed with redis-tools; run `make deps`)", err)
	}
	// "test","rps",...  then "SET","12345.67",...
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, ",")
		if len(f) > 1 && strings.Trim(f[0], `"`) == "SET" {
			v, err := strconv.ParseFloat(strings.Trim(f[1], `"`), 64)
			if err == nil {
				return v
			}
		}
	}
	b.Fatalf("redis-benchmark output not understood:\n%s", out)
	return 0
}

func dialN(b testing.TB, addr string, n int) []*grpc.ClientConn {
	conns := make([]*grpc.ClientConn, n)
	for i := range conns {
		c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		conns[i] = c
	}
	return conns
}

// run has c clients call op for benchWindow and returns calls per second.
func run(b testing.TB, c int, op func(ctx context.Context, client int, i int) error) float64 {
	return runFor(b, c, benchWindow, op)
}

// runFor is run for a window of its own.
func runFor(b testing.TB, c int, window time.Duration, op func(ctx context.Context, client int, i int) error) float64 {
	rate, _ := runCPU(b, c, window, op)
	return rate
}

// processCPU is the CPU time (user and system) the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runCPU is runFor that also returns the process's CPU time per call (the
// clients' and, in the process, the server's; not redis-server's).
func runCPU(b testing.TB, c int, window time.Duration, op func(ctx context.Context, client int, i int) error) (float64, time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var (
		ops  atomic.Int64
		wg   sync.WaitGroup
		stop atomic.Bool
		errs = make(chan error, c)
	)
	start, cpu0 := time.Now(), processCPU()
	for k := 0; k < c; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				if err := op(ctx, k, i); err != nil {
					errs <- err
					return
				}
				ops.Add(1)
			}
		}()
	}
	time.Sleep(window) // the measurement window, not a readiness wait
	stop.Store(true)
	wg.Wait()
	elapsed, cpu := time.Since(start), processCPU()-cpu0
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	n := ops.Load()
	if n == 0 {
		return 0, 0
	}
	return float64(n) / elapsed.Seconds(), cpu / time.Duration(n)
}

// appendThroughputFor: each client appends one event at a time to its own
// aggregate of domain with the expected sequence, for window.
func appendThroughputFor(b testing.TB, conns []*grpc.ClientConn, c int, domain string, window time.Duration) float64 {
	rate, _ := appendCPU(b, conns, c, domain, window)
	return rate
}

// appendCPU is appendThroughputFor that also returns the process's CPU
// time per append (runCPU).
func appendCPU(b testing.TB, conns []*grpc.ClientConn, c int, domain string, window time.Duration) (float64, time.Duration) {
	roots := make([]uuid.UUID, c)
	next := make([]uint32, c)
	for i := range roots {
		roots[i] = uuid.New()
	}
	ev := storetest.Event(strings.Repeat("e", 100))
	return runCPU(b, c, window, func(ctx context.Context, k, _ int) error {
		es := pb.NewEventStoreClient(conns[k%len(conns)])
		resp, err := es.Append(ctx, &pb.AppendRequest{Cover: cover(domain, roots[k], "bench"), ExpectedSequence: next[k], Pages: []*pb.EventPage{{Event: ev}}})
		if err != nil {
			return err
		}
		next[k] = resp.GetNextSequence()
		return nil
	})
}

// loadThroughput: each client loads 10-event aggregates.
func loadThroughput(b testing.TB, conns []*grpc.ClientConn, c int) float64 {
	domain := storetest.Domain(b)
	es := pb.NewEventStoreClient(conns[0])
	roots := make([]uuid.UUID, 64)
	for i := range roots {
		roots[i] = uuid.New()
		if _, err := es.Append(context.Background(), &pb.AppendRequest{Cover: cover(domain, roots[i], ""), Pages: storetest.Pages(0, 10, "l")}); err != nil {
			b.Fatal(err)
		}
	}
	return run(b, c, func(ctx context.Context, k, i int) error {
		es := pb.NewEventStoreClient(conns[k%len(conns)])
		resp, err := es.Load(ctx, &pb.LoadRequest{Cover: cover(domain, roots[(k+i)%len(roots)], "")})
		if err == nil && len(resp.GetBook().GetPages()) != 10 {
			err = fmt.Errorf("loaded %d pages", len(resp.GetBook().GetPages()))
		}
		return err
	})
}

// loadTimes returns the mean gRPC load time of a 1,000-event aggregate
// without snapshot (and the allocations per load of the whole process,
// client and server) and of a 100,000-event aggregate whose snapshot covers
// all but its last 100 events (with earlier snapshots every 20,000 events).
func loadTimes(b testing.TB, conn *grpc.ClientConn) (decoded, raw, snap time.Duration, allocs float64) {
	ctx := context.Background()
	es := pb.NewEventStoreClient(conn)
	domain := storetest.Domain(b)
	small, big := uuid.New(), uuid.New()
	if _, err := es.Append(ctx, &pb.AppendRequest{Cover: cover(domain, small, ""), Pages: storetest.Pages(0, 1000, "s")}); err != nil {
		b.Fatal(err)
	}
	for seq := uint32(0); seq < 100000; seq += 1000 {
		req := &pb.AppendRequest{Cover: cover(domain, big, ""), ExpectedSequence: seq, Pages: storetest.Pages(seq, 1000, "b")}
		if seq == 99000 {
			req.Pages = req.Pages[:900]
			req.SnapshotState = storetest.Event("state at 99900")
			if _, err := es.Append(ctx, req); err != nil {
				b.Fatal(err)
			}
			if _, err := es.Append(ctx, &pb.AppendRequest{Cover: cover(domain, big, ""), ExpectedSequence: 99900, Pages: storetest.Pages(99900, 100, "b")}); err != nil {
				b.Fatal(err)
			}
			continue
		}
		if seq%20000 == 19000 {
			// A snapshot now and then: no history grows beyond what a
			// command can carry (--max-history-bytes).
			req.SnapshotState = storetest.Event(fmt.Sprint("state at ", seq+1000))
		}
		if _, err := es.Append(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	const n = 50
	var mallocs uint64
	mean := func(root uuid.UUID, wantPages int) time.Duration {
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		start := time.Now()
		for i := 0; i < n; i++ {
			resp, err := es.Load(ctx, &pb.LoadRequest{Cover: cover(domain, root, "")})
			if err != nil {
				b.Fatal(err)
			}
			if len(resp.GetBook().GetPages()) != wantPages {
				b.Fatalf("loaded %d pages, want %d", len(resp.GetBook().GetPages()), wantPages)
			}
		}
		took := time.Since(start) / n
		runtime.ReadMemStats(&m1)
		mallocs = m1.Mallocs - m0.Mallocs
		return took
	}
	small1k := mean(small, 1000)
	allocs = float64(mallocs) / n
	var body []byte
	loadRaw := func() {
		if err := conn.Invoke(ctx, pb.EventStore_Load_FullMethodName, &pb.LoadRequest{Cover: cover(domain, small, "")}, &body, grpc.ForceCodecV2(rawCodec{})); err != nil {
			b.Fatal(err)
		}
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		loadRaw()
	}
	raw = time.Since(start) / n
	resp := &pb.LoadResponse{} // what the bytes were: checked once, untimed
	if err := proto.Unmarshal(body, resp); err != nil || len(resp.GetBook().GetPages()) != 1000 {
		b.Fatalf("raw load: %d pages, %v", len(resp.GetBook().GetPages()), err)
	}
	return small1k, raw, mean(big, 100), allocs
}
