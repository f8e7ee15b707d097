package console_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/angzarr-mesh/angzarr/console"
	"github.com/angzarr-mesh/angzarr/eventsvc"
	"github.com/angzarr-mesh/angzarr/eventsvc/eventsvctest"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	ex "github.com/angzarr-mesh/angzarr/proto/examples"
)

// staticTopology is a fixed fan-out configuration (the benchmarks measure
// the console and the event service, not xDS).
type staticTopology struct{ cfg *pb.FanoutConfig }

func (s staticTopology) Run(ctx context.Context, apply func(*pb.FanoutConfig) error) error {
	if err := apply(s.cfg); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// benchConsole serves a console over the event service at evs.
func benchConsole(b *testing.B, evs string, cfg *pb.FanoutConfig) *httptest.Server {
	b.Helper()
	c, err := console.New(console.Config{EventService: evs, Topology: staticTopology{cfg}, Tokens: map[string]string{readerToken: "rita"},
		Readers: []string{"rita"}, SampleInterval: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	srv := httptest.NewServer(c.Handler())
	b.Cleanup(func() {
		srv.Close()
		cancel()
		<-done
		c.Close()
	})
	return srv
}

// timeGET is the median time of n GETs of path, each read to its end.
func timeGET(b *testing.B, srv *httptest.Server, path string, n int) time.Duration {
	b.Helper()
	var ds []time.Duration
	for range n {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+readerToken)
		start := time.Now()
		resp, err := srv.Client().Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		ds = append(ds, time.Since(start))
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("GET %s: %d %v %s", path, resp.StatusCode, err, body)
		}
	}
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// timeStream is the median time of n reads of a query's whole stream.
func timeStream(b *testing.B, q pb.EventQueryClient, query *pb.Query, n int) (time.Duration, int) {
	b.Helper()
	var ds []time.Duration
	pages := 0
	for range n {
		start := time.Now()
		s, err := q.GetEvents(context.Background(), query)
		if err != nil {
			b.Fatal(err)
		}
		pages = 0
		for {
			bk, err := s.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			pages += len(bk.GetPages())
		}
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	return ds[len(ds)/2], pages
}

func appendN(b *testing.B, st pb.EventStoreClient, domain string, root uuid.UUID, corr string, next uint32, n int) {
	b.Helper()
	req := &pb.AppendRequest{Cover: &pb.Cover{Domain: domain, Root: &pb.UUID{Value: root[:]}, CorrelationId: corr}, ExpectedSequence: next}
	for i := range n {
		a, _ := anypb.New(&ex.LoyaltyPointsAdded{Points: int32(i + 1), NewBalance: int32(i + 1), Reason: "bench"})
		req.Pages = append(req.Pages, &pb.EventPage{Sequence: &pb.EventPage_Num{Num: next + uint32(i)}, Event: a})
	}
	if _, err := st.Append(context.Background(), req); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkWorkflow50Events6Domains: the Workflows view's API answer for
// a correlation id of 50 events across 6 domains (12 aggregates, 25
// appends), from the request to the last byte; the baseline is reading the
// same events from EventQuery directly. Target: under 300 ms.
func BenchmarkWorkflow50Events6Domains(b *testing.B) {
	evs := eventsvctest.StartConfig(b, eventsvc.Config{Store: "sqlite:" + filepath.Join(b.TempDir(), "e.db")})
	conn := eventsvctest.Dial(b, evs)
	st, q := pb.NewEventStoreClient(conn), pb.NewEventQueryClient(conn)
	domains := []string{"cart", "order", "inventory", "customer", "fulfillment", "product"}
	cfg := &pb.FanoutConfig{}
	for i, d := range domains {
		cfg.Domains = append(cfg.Domains, &pb.DomainEndpoint{Domain: d, Address: "127.0.0.1:1"})
		if i > 0 {
			cfg.Subscriptions = append(cfg.Subscriptions, &pb.Subscription{Name: "saga-" + d, Kind: pb.SubscriberKind_SUBSCRIBER_KIND_SAGA,
				SourceDomains: []string{domains[i-1]}, TargetDomains: []string{d}})
		}
	}
	corr := "bench-workflow"
	roots := map[string]uuid.UUID{}
	next := map[uuid.UUID]uint32{}
	for i := range 25 { // 25 appends of 2 events: 50 events
		d := domains[i%len(domains)]
		key := fmt.Sprintf("%s-%d", d, i%2)
		if _, ok := roots[key]; !ok {
			roots[key] = uuid.New()
		}
		r := roots[key]
		appendN(b, st, d, r, corr, next[r], 2)
		next[r] += 2
	}
	// Noise: other workflows in the same domains.
	for i := range 200 {
		appendN(b, st, domains[i%len(domains)], uuid.New(), fmt.Sprintf("other-%d", i), 0, 5)
	}
	srv := benchConsole(b, evs, cfg)
	path := "/api/workflow?id=" + corr
	for b.Loop() {
		timeGET(b, srv, path, 1)
	}
	console := timeGET(b, srv, path, 21)
	base, pages := timeStream(b, q, &pb.Query{Cover: &pb.Cover{CorrelationId: corr}}, 21)
	if pages != 50 {
		b.Fatalf("the workflow has %d events, want 50", pages)
	}
	b.ReportMetric(float64(console.Microseconds())/1000, "ms/workflow")
	b.ReportMetric(float64(base.Microseconds())/1000, "ms/baseline-GetEvents")
	b.ReportMetric(float64(console)/float64(base), "x-baseline")
	b.Logf("workflow of 50 events across 6 domains: %v (median of 21; target < 300ms); EventQuery.GetEvents alone: %v", console, base)
}

// BenchmarkDomainLog100k: a page of 50 events of a domain holding 100,000
// (the first page and one deep in), against reading the whole domain: the
// page's cost does not grow with the domain.
func BenchmarkDomainLog100k(b *testing.B) {
	evs := eventsvctest.StartConfig(b, eventsvc.Config{Store: "sqlite:" + filepath.Join(b.TempDir(), "e.db")})
	conn := eventsvctest.Dial(b, evs)
	st, q := pb.NewEventStoreClient(conn), pb.NewEventQueryClient(conn)
	for i := range 100 { // 100 aggregates of 1000 events
		appendN(b, st, "big", uuid.New(), fmt.Sprintf("c-%d", i), 0, 1000)
	}
	srv := benchConsole(b, evs, &pb.FanoutConfig{})
	for b.Loop() {
		timeGET(b, srv, "/api/domains/big/log?limit=50", 1)
	}
	first := timeGET(b, srv, "/api/domains/big/log?limit=50", 21)
	// A cursor 80,000 events in: the log's offsets are the store's
	// positions, so after the 80,000th append-ordered event.
	deep := timeGET(b, srv, "/api/domains/big/log?limit=50&cursor=0:80000", 21)
	all, pages := timeStream(b, q, &pb.Query{Cover: &pb.Cover{Domain: "big"}}, 3)
	if pages != 100000 {
		b.Fatalf("the domain has %d events, want 100000", pages)
	}
	b.ReportMetric(float64(first.Microseconds())/1000, "ms/first-page")
	b.ReportMetric(float64(deep.Microseconds())/1000, "ms/deep-page")
	b.ReportMetric(float64(all.Microseconds())/1000, "ms/whole-domain")
	b.Logf("a page of 50 of 100,000 events: first %v, at 80,000 %v; reading the whole domain: %v (%.0fx a page)", first, deep, all, float64(all)/float64(deep))
}

// BenchmarkDomainAggregates100k: a page of 50 of a domain's 100,000
// aggregates (the first page and one deep in, after a root 80% of the way
// through), against listing every root of the domain (ListRoots without a
// limit, the baseline): a page is read from the store by cursor, so its
// cost does not grow with the domain.
func BenchmarkDomainAggregates100k(b *testing.B) {
	evs := eventsvctest.StartConfig(b, eventsvc.Config{Store: "sqlite:" + filepath.Join(b.TempDir(), "e.db")})
	conn := eventsvctest.Dial(b, evs)
	st := pb.NewEventStoreClient(conn)
	const n = 100_000
	roots := make([]uuid.UUID, n)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 { // concurrent appends share the store's group commits
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				roots[i] = uuid.New()
				a, _ := anypb.New(&ex.LoyaltyPointsAdded{Points: 1, NewBalance: 1, Reason: "bench"})
				_, err := st.Append(context.Background(), &pb.AppendRequest{Cover: &pb.Cover{Domain: "wide", Root: &pb.UUID{Value: roots[i][:]}, CorrelationId: "c"},
					Pages: []*pb.EventPage{{Sequence: &pb.EventPage_Num{Num: 0}, Event: a}}})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	slices.SortFunc(roots, func(x, y uuid.UUID) int { return bytes.Compare(x[:], y[:]) })
	srv := benchConsole(b, evs, &pb.FanoutConfig{})
	for b.Loop() {
		timeGET(b, srv, "/api/domains/wide/aggregates?limit=50", 1)
	}
	first := timeGET(b, srv, "/api/domains/wide/aggregates?limit=50", 21)
	deep := timeGET(b, srv, "/api/domains/wide/aggregates?limit=50&after="+roots[n*8/10].String(), 21)
	var all time.Duration
	var alls []time.Duration
	for range 3 {
		start := time.Now()
		s, err := st.ListRoots(context.Background(), &pb.ListRootsRequest{Domain: "wide"})
		if err != nil {
			b.Fatal(err)
		}
		got := 0
		for {
			if _, err := s.Recv(); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
			got++
		}
		if got != n {
			b.Fatalf("the domain has %d aggregates, want %d", got, n)
		}
		alls = append(alls, time.Since(start))
	}
	slices.Sort(alls)
	all = alls[1]
	b.ReportMetric(float64(first.Microseconds())/1000, "ms/first-page")
	b.ReportMetric(float64(deep.Microseconds())/1000, "ms/deep-page")
	b.ReportMetric(float64(all.Microseconds())/1000, "ms/all-roots")
	b.ReportMetric(float64(all)/float64(deep), "x-deep-page")
	b.Logf("a page of 50 of 100,000 aggregates: first %v, at 80,000 %v; listing every root: %v (%.0fx a page)", first, deep, all, float64(all)/float64(deep))
}
