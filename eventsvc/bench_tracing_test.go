package eventsvc_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"text/tabwriter"

	"github.com/google/uuid"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"

	"github.com/angzarr-mesh/angzarr/eventsvc"
	"github.com/angzarr-mesh/angzarr/eventsvc/eventsvctest"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/storetest"
	"github.com/angzarr-mesh/angzarr/internal/testredis"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// discard is a span exporter that drops what it gets: the cost of
// recording and batching spans without the network.
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

// BenchmarkTracingOverhead measures the event service's share of a command
// (Load, then Append of one event with the expected sequence, 16 clients)
// with tracing off (no tracer provider: otelgrpc and the store decorator
// run against a no-op tracer), sampled at 10 % and at 100 %
// (parent-based trace-id ratio, batch processor, exporter that discards),
// on Redis and SQLite. The three run interleaved, three rounds, and the
// best round of each is compared with tracing off. It runs a fixed load
// once: use -benchtime 1x.
func BenchmarkTracingOverhead(b *testing.B) {
	if b.N > 1 {
		b.Skip("runs a fixed load once: use -benchtime 1x")
	}
	const clients, rounds = 16, 3
	modes := []struct {
		name string
		tp   func() trace.TracerProvider
	}{
		{"off", func() trace.TracerProvider { return noop.NewTracerProvider() }},
		{"10%", func() trace.TracerProvider { return sampled(b, 0.1) }},
		{"100%", func() trace.TracerProvider { return sampled(b, 1) }},
	}
	redisSrv := testredis.StartServer(b, testredis.Options{})
	results := map[string]map[string][]float64{} // backend -> mode -> rounds
	var backends []string
	for _, be := range []struct {
		name string
		url  func(mode string) string
	}{
		{"redis", func(string) string { return "redis://" + redisSrv.Addr() + "/0" }},
		{"sqlite", func(mode string) string {
			return "sqlite:" + filepath.Join(b.TempDir(), "bench-"+strings.TrimSuffix(mode, "%")+".db")
		}},
	} {
		name := be.name
		backends = append(backends, name)
		results[name] = map[string][]float64{}
		conns := map[string][]*grpc.ClientConn{}
		for _, m := range modes {
			addr := eventsvctest.StartConfig(b, eventsvc.Config{Store: be.url(m.name), TracerProvider: m.tp()})
			conns[m.name] = dialN(b, addr, 4)
		}
		for r := 0; r < rounds; r++ {
			for _, m := range modes {
				results[name][m.name] = append(results[name][m.name], commandThroughput(b, conns[m.name], clients))
			}
		}
	}

	fmt.Printf("\nTracing overhead: the event service's part of a command (Load + Append of one event), %d clients,\n", clients)
	fmt.Printf("in-process eventsvc, %v per figure, modes interleaved, best of %d rounds; spans batched to an exporter that discards them.\n", benchWindow, rounds)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "backend\ttracing\tcommands/s\tvs off\trounds\t")
	for _, be := range backends {
		off := best(results[be]["off"])
		for _, m := range modes {
			v := best(results[be][m.name])
			fmt.Fprintf(w, "%s\t%s\t%.0f\t%.3f\t%s\t\n", be, m.name, v, v/off, roundsString(results[be][m.name]))
			if m.name != "off" {
				b.ReportMetric(v/off, be+"-"+strings.TrimSuffix(m.name, "%")+"pct/off")
			}
		}
	}
	w.Flush()
}

// sampled returns a tracer provider sampling ratio of the traces, shut
// down when the benchmark ends.
func sampled(b *testing.B, ratio float64) trace.TracerProvider {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))), sdktrace.WithBatcher(discard{}))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp
}

// commandThroughput: each client loads its own aggregate and appends one
// event with the expected sequence it loaded, as the filter does.
func commandThroughput(b *testing.B, conns []*grpc.ClientConn, c int) float64 {
	domain := storetest.Domain(b)
	roots := make([]uuid.UUID, c)
	for i := range roots {
		roots[i] = uuid.New()
	}
	ev := storetest.Event(strings.Repeat("e", 100))
	return run(b, c, func(ctx context.Context, k, _ int) error {
		es := pb.NewEventStoreClient(conns[k%len(conns)])
		cv := cover(domain, roots[k], "bench-"+roots[k].String())
		ld, err := es.Load(ctx, &pb.LoadRequest{Cover: cv})
		if err != nil {
			return err
		}
		_, err = es.Append(ctx, &pb.AppendRequest{Cover: cv, ExpectedSequence: ld.GetNextSequence(), Pages: []*pb.EventPage{{Event: ev}}})
		return err
	})
}

func best(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)-1]
}

func roundsString(v []float64) string {
	out := make([]string, len(v))
	for i, x := range v {
		out[i] = fmt.Sprintf("%.0f", x)
	}
	return strings.Join(out, " ")
}
