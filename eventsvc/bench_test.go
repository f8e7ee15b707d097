package eventsvc_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/angzarr-mesh/angzarr/eventsvc/eventsvctest"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/storetest"
	"github.com/angzarr-mesh/angzarr/internal/testredis"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// benchWindow is how long each throughput figure is measured.
const benchWindow = 2 * time.Second

var benchClients = []int{1, 16, 64}

// BenchmarkEventService measures appends/s and loads/s through gRPC on
// Redis and SQLite at 1, 16 and 64 clients, beside `redis-benchmark -t set`
// on the same redis-server, and the load time of a 1,000-event aggregate
// (no snapshot) and of a 100,000-event aggregate with a snapshot. It runs a
// fixed, bounded load once, whatever b.N is, and prints a table.
func BenchmarkEventService(b *testing.B) {
	if b.N > 1 {
		b.Skip("runs a fixed load once: use -benchtime 1x")
	}
	redisSrv := testredis.StartServer(b, testredis.Options{})
	raw := map[int]float64{}
	for _, c := range benchClients {
		raw[c] = redisBenchmarkSet(b, redisSrv.Addr(), c)
	}
	type row struct {
		backend              string
		appends, loads       map[int]float64
		load1k, load100kSnap time.Duration
	}
	var rows []row
	for _, be := range []struct{ name, url string }{
		{"redis", "redis://" + redisSrv.Addr() + "/0"},
		{"sqlite", "sqlite:" + filepath.Join(b.TempDir(), "bench.db")},
	} {
		addr := eventsvctest.Start(b, be.url)
		conns := dialN(b, addr, 4)
		r := row{backend: be.name, appends: map[int]float64{}, loads: map[int]float64{}}
		for _, c := range benchClients {
			r.appends[c] = appendThroughput(b, conns, c)
			r.loads[c] = loadThroughput(b, conns, c)
		}
		r.load1k, r.load100kSnap = loadTimes(b, conns[0])
		rows = append(rows, r)
	}

	fmt.Printf("\nEvent service through gRPC: one in-process eventsvc, 4 client connections, %v per figure;\n", benchWindow)
	fmt.Println("appends of one 100-byte event with the expected sequence; loads of 10-event aggregates;")
	fmt.Println("redis SET/s: redis-benchmark -t set with the same number of clients on the same redis-server.")
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "backend\tclients\tappends/s\tloads/s\tredis SET/s\tappends/SET\t")
	for _, r := range rows {
		for _, c := range benchClients {
			set, ratio := "-", "-"
			if r.backend == "redis" {
				set = fmt.Sprintf("%.0f", raw[c])
				ratio = fmt.Sprintf("%.2f", r.appends[c]/raw[c])
			}
			fmt.Fprintf(w, "%s\t%d\t%.0f\t%.0f\t%s\t%s\t\n", r.backend, c, r.appends[c], r.loads[c], set, ratio)
		}
	}
	w.Flush()
	fmt.Println("\nMean gRPC Load time (50 loads each):")
	w = tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "backend\t1,000 events, no snapshot\t100,000 events, snapshot + 100 after it\t")
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%v\t%v\t\n", r.backend, r.load1k.Round(time.Microsecond), r.load100kSnap.Round(time.Microsecond))
	}
	w.Flush()
	for _, r := range rows {
		b.ReportMetric(r.appends[64], r.backend+"-appends/s@64")
	}
	b.ReportMetric(raw[64], "redis-set/s@64")
}

// redisBenchmarkSet runs redis-benchmark -t set with c clients and returns
// requests per second.
func redisBenchmarkSet(b *testing.B, addr string, c int) float64 {
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

func dialN(b *testing.B, addr string, n int) []*grpc.ClientConn {
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
func run(b *testing.B, c int, op func(ctx context.Context, client int, i int) error) float64 {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var (
		ops  atomic.Int64
		wg   sync.WaitGroup
		stop atomic.Bool
		errs = make(chan error, c)
	)
	start := time.Now()
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
	time.Sleep(benchWindow) // the measurement window, not a readiness wait
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	return float64(ops.Load()) / elapsed.Seconds()
}

// appendThroughput: each client appends one event at a time to its own
// aggregate with the expected sequence.
func appendThroughput(b *testing.B, conns []*grpc.ClientConn, c int) float64 {
	return appendThroughputIn(b, conns, c, storetest.Domain(b))
}

// appendThroughputIn is appendThroughput in a given domain.
func appendThroughputIn(b *testing.B, conns []*grpc.ClientConn, c int, domain string) float64 {
	roots := make([]uuid.UUID, c)
	next := make([]uint32, c)
	for i := range roots {
		roots[i] = uuid.New()
	}
	ev := storetest.Event(strings.Repeat("e", 100))
	return run(b, c, func(ctx context.Context, k, _ int) error {
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
func loadThroughput(b *testing.B, conns []*grpc.ClientConn, c int) float64 {
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
// without snapshot and of a 100,000-event aggregate whose snapshot covers
// all but its last 100 events.
func loadTimes(b *testing.B, conn *grpc.ClientConn) (time.Duration, time.Duration) {
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
		if _, err := es.Append(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	mean := func(root uuid.UUID, wantPages int) time.Duration {
		const n = 50
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
		return time.Since(start) / n
	}
	return mean(small, 1000), mean(big, 100)
}
