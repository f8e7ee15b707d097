package fanout_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/angzarr-mesh/angzarr/eventsvc/eventsvctest"
	"github.com/angzarr-mesh/angzarr/eventsvc/fanout"
	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/redis"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/sqlite"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/storetest"
	"github.com/angzarr-mesh/angzarr/internal/testredis"
	"github.com/angzarr-mesh/angzarr/internal/testutil"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// angzarrBin is the CLI built by TestMain for the crash test.
var angzarrBin string

func TestMain(m *testing.M) { os.Exit(eventsvctest.RunWithBinary(m, &angzarrBin)) }

// fullStore is a backend as the event service has it.
type fullStore interface {
	store.Store
	fanout.Store
}

// backend opens stores of one kind for a test.
type backend struct {
	name string
	// url returns a store URL for a fresh store of the test.
	url func(t *testing.T) string
	// open opens the store at url.
	open func(t *testing.T, url string) fullStore
}

func backends() []backend {
	return []backend{
		{
			name: "sqlite",
			url:  func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "events.db") },
			open: func(t *testing.T, url string) fullStore {
				s, err := sqlite.Open(context.Background(), url[len("sqlite:"):], sqlite.Options{})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			},
		},
		{
			name: "redis",
			url:  func(t *testing.T) string { return "redis://" + testredis.Start(t) + "/0" },
			open: func(t *testing.T, url string) fullStore {
				addr := url[len("redis://") : len(url)-len("/0")]
				s, err := redis.Open(context.Background(), redis.Options{Addrs: []string{addr}})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			},
		},
	}
}

// eachBackend runs fn as a subtest per backend.
func eachBackend(t *testing.T, fn func(t *testing.T, b backend)) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) { fn(t, b) })
	}
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// serve serves the services register registers on a free loopback port
// until the test ends and returns the address.
func serve(t testing.TB, register func(*grpc.Server)) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	register(g)
	done := make(chan struct{})
	go func() { defer close(done); _ = g.Serve(lis) }()
	t.Cleanup(func() { g.Stop(); <-done })
	return lis.Addr().String()
}

// recorder is a real angzarr.Projector gRPC service that records what it
// receives. While poisoned it fails every book with a page whose payload is
// "poison".
type recorder struct {
	pb.UnimplementedProjectorServer

	mu       sync.Mutex
	seqs     map[uuid.UUID][]uint32 // received sequences per root, in order
	texts    map[string]int         // received payloads
	total    int
	failures int
	poisoned bool
	onPage   func(p *pb.EventPage)
}

func newRecorder() *recorder {
	return &recorder{seqs: map[uuid.UUID][]uint32{}, texts: map[string]int{}, poisoned: true}
}

func (r *recorder) Handle(_ context.Context, book *pb.EventBook) (*emptypb.Empty, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.poisoned {
		for _, p := range book.GetPages() {
			if text(p) == "poison" {
				r.failures++
				return nil, status.Error(codes.Internal, "cannot digest poison")
			}
		}
	}
	root := uuid.UUID(book.GetCover().GetRoot().GetValue())
	for _, p := range book.GetPages() {
		r.seqs[root] = append(r.seqs[root], p.GetNum())
		r.texts[text(p)]++
		r.total++
		if r.onPage != nil {
			r.onPage(p)
		}
	}
	return &emptypb.Empty{}, nil
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

func (r *recorder) setPoisoned(v bool) {
	r.mu.Lock()
	r.poisoned = v
	r.mu.Unlock()
}

// checkOnceInOrder fails unless every root of want received sequences
// 0..want-1 once each, in order, and nothing else arrived.
func (r *recorder) checkOnceInOrder(t *testing.T, want map[uuid.UUID]uint32) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for root, n := range want {
		got := r.seqs[root]
		if len(got) != int(n) {
			t.Fatalf("%s: received %d events %v, want %d", root, len(got), got, n)
		}
		for i, s := range got {
			if s != uint32(i) {
				t.Fatalf("%s: received sequences %v, want 0..%d in order", root, got, n-1)
			}
		}
	}
	if len(r.seqs) != len(want) {
		t.Fatalf("received events of %d aggregates, want %d", len(r.seqs), len(want))
	}
}

// text is the payload of a page made by storetest.Pages ("" otherwise).
func text(p *pb.EventPage) string {
	var s wrapperspb.StringValue
	if err := p.GetEvent().UnmarshalTo(&s); err != nil {
		return ""
	}
	return s.GetValue()
}

// subscription returns a projector subscription of domains at addr.
func projectorSub(name, addr string, start pb.StartPosition, domains ...string) *pb.Subscription {
	return &pb.Subscription{Name: name, Kind: pb.SubscriberKind_SUBSCRIBER_KIND_PROJECTOR, Address: addr, SourceDomains: domains, StartPosition: start}
}

// dispatcher runs a dispatcher over st with cfg until stop is called or
// the test ends; appends through the returned store wake it.
type running struct {
	d      *fanout.Dispatcher
	st     store.Store
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func runDispatcher(t *testing.T, st fullStore, cfg *pb.FanoutConfig, opts fanout.Options) *running {
	t.Helper()
	if opts.BackoffBase == 0 {
		opts.BackoffBase, opts.BackoffMax = time.Millisecond, 10*time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	d, err := fanout.New(st, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{d: d, st: fanout.NotifyingStore{Store: st, D: d}, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- d.Run(ctx, fanout.StaticSource{Config: cfg}) }()
	t.Cleanup(func() { r.stop(t) })
	testutil.Eventually(t, "the configuration to apply", func() bool { return len(d.Subscribers()) == len(cfg.GetSubscriptions()) })
	return r
}

func (r *running) stop(t *testing.T) {
	r.once.Do(func() {
		r.cancel()
		if err := <-r.done; err != nil {
			t.Errorf("dispatcher: %v", err)
		}
	})
}

// caughtUp reports whether the subscriber committed every partition to its end.
func (r *running) caughtUp(t *testing.T, name string) bool {
	p, err := r.d.Progress(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	// A partition whose worker has not opened its checkpoint yet reports 0
	// for both offsets: not caught up, whatever its log holds.
	for _, pp := range p.GetPartitions() {
		if !pp.GetStarted() || pp.GetCommitted() < pp.GetEnd() {
			return false
		}
	}
	return true
}

// appendN appends n events with payloads prefix-<seq> to agg, one append
// each, starting at next; it returns the new next sequence.
func appendN(t *testing.T, st store.Store, agg store.Aggregate, next uint32, n int, prefix string) uint32 {
	t.Helper()
	for i := 0; i < n; i++ {
		res, err := st.Append(context.Background(), &store.AppendRequest{Aggregate: agg, CorrelationID: "c-" + agg.Root.String(), Expected: next, Pages: storetest.Pages(next, 1, prefix)})
		if err != nil {
			t.Fatal(err)
		}
		next = res.Next
	}
	return next
}

// testLogger logs to t.Log at warn level.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
