package fanout_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	goredis "github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/angzarr-mesh/angzarr/eventsvc/eventsvctest"
	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/storetest"
	"github.com/angzarr-mesh/angzarr/internal/testredis"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// orderChecker is a projector and a saga (one answering no commands) as
// a real one is written: it applies each aggregate's events in sequence,
// skips what it has seen (a redelivery after a crash), and records
// anything that comes early (an event lost or reordered). Events carry
// the UnixNano of their append as payload, for the lag.
type orderChecker struct {
	pb.UnimplementedProjectorServer

	mu      sync.Mutex
	next    map[uuid.UUID]uint32
	applied int
	dups    int
	early   []string
	lags    []time.Duration
	lastAt  map[uint32]time.Time // last delivery per partition
	counted bool                 // record lags
}

func newOrderChecker() *orderChecker {
	return &orderChecker{next: map[uuid.UUID]uint32{}, lastAt: map[uint32]time.Time{}}
}

func (c *orderChecker) take(book *pb.EventBook) {
	now := time.Now()
	root := uuid.UUID(book.GetCover().GetRoot().GetValue())
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastAt[book.GetPosition().GetPartition()] = now
	for _, p := range book.GetPages() {
		seq, want := p.GetNum(), c.next[root]
		switch {
		case seq < want:
			c.dups++
			continue
		case seq > want:
			c.early = append(c.early, fmt.Sprintf("%s: got %d, expected %d", root, seq, want))
		}
		c.next[root] = seq + 1
		c.applied++
		if ns, err := strconv.ParseInt(text(p), 10, 64); err == nil && c.counted {
			c.lags = append(c.lags, now.Sub(time.Unix(0, ns)))
		}
	}
}

func (c *orderChecker) Handle(_ context.Context, book *pb.EventBook) (*emptypb.Empty, error) {
	c.take(book)
	return &emptypb.Empty{}, nil
}

// sagaChecker is an orderChecker as a saga.
type sagaChecker struct {
	pb.UnimplementedSagaServer
	c *orderChecker
}

func (s sagaChecker) Handle(_ context.Context, book *pb.EventBook) (*emptypb.Empty, error) {
	s.c.take(book)
	return &emptypb.Empty{}, nil
}

func (s sagaChecker) HandleSync(_ context.Context, book *pb.EventBook) (*pb.SagaResponse, error) {
	s.c.take(book)
	return &pb.SagaResponse{}, nil
}

// caughtUp reports whether c applied every event of want.
func (c *orderChecker) caughtUp(want map[uuid.UUID]uint32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for root, n := range want {
		if c.next[root] < n {
			return false
		}
	}
	return true
}

// since returns, for each partition, whether it had a delivery after t.
func (c *orderChecker) deliveredSince(t time.Time, parts uint32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p := range parts {
		if !c.lastAt[p].After(t) {
			return false
		}
	}
	return true
}

// last is the time of the latest delivery.
func (c *orderChecker) last() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var t time.Time
	for _, at := range c.lastAt {
		if at.After(t) {
			t = at
		}
	}
	return t
}

// p99 is the 99th percentile lag recorded since the last reset.
func (c *orderChecker) lagP99() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.lags) == 0 {
		return 0
	}
	l := slices.Clone(c.lags)
	slices.Sort(l)
	return l[len(l)*99/100]
}

func (c *orderChecker) measure(on bool) {
	c.mu.Lock()
	c.counted, c.lags = on, nil
	c.mu.Unlock()
}

// replicaSet is n `angzarr eventsvc` subprocesses dispatching one domain
// to an orderChecker projector and saga, on a Redis Cluster of three
// masters created for it.
type replicaSet struct {
	t      testing.TB
	domain string
	procs  []*eventsvctest.Process
	proj   *orderChecker
	saga   *orderChecker
	cs     clients
	ttl    time.Duration
	addrs  []string
	args   []string // of every replica

	mu   sync.Mutex
	next map[uuid.UUID]uint32 // acknowledged next sequence per root
}

func startReplicaSet(t testing.TB, n int, ttl time.Duration) *replicaSet {
	t.Helper()
	addrs := testredis.StartCluster(t, 3)
	url := "redis+cluster://" + strings.Join(addrs, ",")
	rs := &replicaSet{addrs: addrs, t: t, domain: storetest.Domain(t), proj: newOrderChecker(), saga: newOrderChecker(), ttl: ttl, next: map[uuid.UUID]uint32{}}
	t.Cleanup(rs.cs.close)
	paddr := serve(t, func(g *grpc.Server) { pb.RegisterProjectorServer(g, rs.proj) })
	saddr := serve(t, func(g *grpc.Server) { pb.RegisterSagaServer(g, sagaChecker{c: rs.saga}) })
	cfg := &pb.FanoutConfig{
		Version: "1",
		Domains: []*pb.DomainEndpoint{{Domain: rs.domain, Address: saddr}},
		Subscriptions: []*pb.Subscription{
			projectorSub("proj", paddr, pb.StartPosition_START_POSITION_EARLIEST, rs.domain),
			{Name: "saga", Kind: pb.SubscriberKind_SUBSCRIBER_KIND_SAGA, Address: saddr, SourceDomains: []string{rs.domain},
				TargetDomains: []string{rs.domain}, StartPosition: pb.StartPosition_START_POSITION_EARLIEST},
		},
	}
	js, err := protojson.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "fanout.json")
	if err := os.WriteFile(file, js, 0o600); err != nil {
		t.Fatal(err)
	}
	rs.args = []string{url, "--fanout", file, "--fanout-lease-ttl", ttl.String(), "--fanout-backoff", "5ms", "--fanout-backoff-max", "100ms"}
	for range n {
		rs.add()
	}
	return rs
}

// add starts one more replica. Not while write runs.
func (rs *replicaSet) add() {
	rs.procs = append(rs.procs, eventsvctest.StartProcess(rs.t, angzarrBin, rs.args[0], rs.args[1:]...))
}

// write appends one event per root in turn at rate events/s through the
// replicas (round robin, the next one when one is down) until ctx is
// done; every append has an idempotency key so a retry after a lost
// acknowledgement is stored once. It returns the events appended.
func (rs *replicaSet) write(ctx context.Context, roots []uuid.UUID, rate int, writers int) int {
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	start := time.Now()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			interval := time.Duration(writers) * time.Second / time.Duration(rate)
			for i := 0; ctx.Err() == nil; i++ {
				if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
					select {
					case <-time.After(d):
					case <-ctx.Done():
						return
					}
				}
				root := roots[(i*writers+w)%len(roots)]
				rs.mu.Lock()
				seq := rs.next[root]
				rs.mu.Unlock()
				req := &pb.AppendRequest{
					Cover: store.Aggregate{Domain: rs.domain, Root: root}.Cover("c"), ExpectedSequence: seq,
					Pages:          []*pb.EventPage{{Sequence: &pb.EventPage_Num{Num: seq}, Event: storetest.Event(strconv.FormatInt(time.Now().UnixNano(), 10))}},
					IdempotencyKey: "w-" + strconv.FormatUint(uint64(seq), 10),
				}
				for attempt := 0; ; attempt++ {
					if ctx.Err() != nil {
						return
					}
					p := rs.procs[(i+attempt)%len(rs.procs)]
					cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
					_, err := rs.cs.get(rs.t, p.Addr()).Append(cctx, req)
					cancel()
					if err == nil {
						break
					}
				}
				rs.mu.Lock()
				rs.next[root] = seq + 1
				rs.mu.Unlock()
				mu.Lock()
				total++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return total
}

// stored returns the next sequence of each root as the store has it
// (an append whose acknowledgement was cut off when writing stopped is
// there too), and their sum: the events appended.
func (rs *replicaSet) stored(ctx context.Context, roots []uuid.UUID) (map[uuid.UUID]uint32, int) {
	rs.t.Helper()
	out := make(map[uuid.UUID]uint32, len(roots))
	total := 0
	for _, root := range roots {
		for i := 0; ; i++ {
			p := rs.procs[i%len(rs.procs)]
			l, err := rs.cs.get(rs.t, p.Addr()).Load(ctx, &pb.LoadRequest{Cover: store.Aggregate{Domain: rs.domain, Root: root}.Cover("")})
			if err == nil {
				out[root] = l.GetNextSequence()
				total += int(l.GetNextSequence())
				break
			}
			if ctx.Err() != nil {
				rs.t.Fatalf("load %s: %v", root, err)
			}
		}
	}
	return out, total
}

// roots returns n roots spread over the partitions.
func newRoots(n int) []uuid.UUID {
	out := make([]uuid.UUID, n)
	for i := range out {
		out[i] = uuid.New()
	}
	return out
}

// owners returns the holder of each partition's lease ("" for none),
// read from the store.
func (rs *replicaSet) owners(ctx context.Context, parts uint32) []string {
	c := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: rs.addrs})
	defer c.Close()
	out := make([]string, parts)
	for p := range parts {
		v, err := c.Get(ctx, fmt.Sprintf("az:lease:{%s:%d}", rs.domain, p)).Result()
		switch {
		case err == nil:
			_, out[p], _ = strings.Cut(v, " ")
		case !errors.Is(err, goredis.Nil):
			out[p] = "(" + err.Error() + ")"
		}
	}
	return out
}
