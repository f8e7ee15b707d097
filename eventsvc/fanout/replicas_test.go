package fanout_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/angzarr-mesh/angzarr/eventsvc/fanout"
	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/redis"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/storetest"
	"github.com/angzarr-mesh/angzarr/internal/testredis"
	"github.com/angzarr-mesh/angzarr/internal/testutil"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// fencedRecorder is a recorder that also checks the fencing header of
// every delivery: present, and never older than a token it has seen for
// the partition.
type fencedRecorder struct {
	*recorder
	mu      sync.Mutex
	highest map[string]uint64 // by domain/partition
	missing int
	stale   int
}

func newFencedRecorder() *fencedRecorder {
	r := newRecorder()
	r.poisoned = false
	return &fencedRecorder{recorder: r, highest: map[string]uint64{}}
}

func (f *fencedRecorder) Handle(ctx context.Context, book *pb.EventBook) (*emptypb.Empty, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	v := md.Get(fanout.FencingHeader)
	f.mu.Lock()
	if len(v) != 1 {
		f.missing++
	} else {
		i := strings.LastIndexByte(v[0], '/')
		tok, err := strconv.ParseUint(v[0][i+1:], 10, 64)
		switch {
		case i < 0 || err != nil:
			f.missing++
		case tok < f.highest[v[0][:i]]:
			f.stale++
		default:
			f.highest[v[0][:i]] = tok
		}
	}
	f.mu.Unlock()
	return f.recorder.Handle(ctx, book)
}

// held is the partitions of domain a dispatcher holds.
func held(r *running, domain string) []uint32 { return r.d.Held()[domain] }

// TestReplicasShareThePartitions runs the fan-out of one domain on Redis
// with one replica, then two (the second joins: partitions move to it
// after the first drained them), then the second alone (the first stops
// and hands its partitions over at once), appending throughout. The
// projector gets every event once, in per-aggregate order, each delivery
// under a fencing token that never goes back.
func TestReplicasShareThePartitions(t *testing.T) {
	addr := testredis.Start(t)
	openStore := func() fullStore {
		s, err := redis.Open(context.Background(), redis.Options{Addrs: []string{addr}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	domain := storetest.Domain(t)
	rec := newFencedRecorder()
	paddr := serve(t, func(g *grpc.Server) { pb.RegisterProjectorServer(g, rec) })
	cfg := &pb.FanoutConfig{Version: "1", Subscriptions: []*pb.Subscription{projectorSub("proj", paddr, pb.StartPosition_START_POSITION_EARLIEST, domain)}}
	opts := func(id string) fanout.Options {
		// No poll: appends through st (not a NotifyingStore) reach the
		// workers through the store's blocking tail watch only.
		return fanout.Options{LeaseTTL: 300 * time.Millisecond, ReplicaID: id, PollInterval: time.Hour}
	}
	aggs := make([]store.Aggregate, 24)
	next := map[uuid.UUID]uint32{}
	for i := range aggs {
		aggs[i] = store.Aggregate{Domain: domain, Root: uuid.New()}
	}
	st := openStore()
	write := func(prefix string) {
		for _, a := range aggs {
			next[a.Root] = appendN(t, st, a, next[a.Root], 3, prefix)
		}
	}
	total := func() int {
		n := 0
		for _, v := range next {
			n += int(v)
		}
		return n
	}
	parts := st.Partitions()

	a := runDispatcher(t, openStore(), cfg, opts("replica-a"))
	testutil.Eventually(t, "replica a to hold every partition", func() bool { return len(held(a, domain)) == int(parts) })
	write("one")

	b := runDispatcher(t, openStore(), cfg, opts("replica-b"))
	testutil.EventuallyWhy(t, func() (bool, string) {
		ha, hb := held(a, domain), held(b, domain)
		both := slices.Concat(ha, hb)
		slices.Sort(both)
		return len(ha) > 0 && len(hb) > 0 && len(slices.Compact(both)) == int(parts) && len(both) == int(parts),
			fmt.Sprintf("a holds %v, b holds %v", ha, hb)
	})
	t.Logf("shared: a holds %v, b holds %v", held(a, domain), held(b, domain))
	write("two")
	testutil.Eventually(t, "the events so far", func() bool { return rec.count() == total() })

	a.stop(t)
	testutil.Eventually(t, "replica b to hold every partition", func() bool { return len(held(b, domain)) == int(parts) })
	write("three")
	testutil.Eventually(t, "every event", func() bool { return rec.count() >= total() })
	rec.checkOnceInOrder(t, next)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.missing != 0 || rec.stale != 0 {
		t.Fatalf("%d deliveries without a fencing token, %d under a stale one", rec.missing, rec.stale)
	}
}

// TestDeadLettersOnAnyReplica: a dead letter parked by whichever replica
// held the partition is listed and replayed through the other one's
// FanoutAdmin.
func TestDeadLettersOnAnyReplica(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	addr := testredis.Start(t)
	openStore := func() fullStore {
		s, err := redis.Open(context.Background(), redis.Options{Addrs: []string{addr}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	domain := storetest.Domain(t)
	rec := newRecorder()
	paddr := serve(t, func(g *grpc.Server) { pb.RegisterProjectorServer(g, rec) })
	cfg := &pb.FanoutConfig{Version: "1", Subscriptions: []*pb.Subscription{projectorSub("picky", paddr, pb.StartPosition_START_POSITION_EARLIEST, domain)}}
	reps := []*running{
		runDispatcher(t, openStore(), cfg, fanout.Options{LeaseTTL: 300 * time.Millisecond, ReplicaID: "a", MaxAttempts: 2}),
		runDispatcher(t, openStore(), cfg, fanout.Options{LeaseTTL: 300 * time.Millisecond, ReplicaID: "b", MaxAttempts: 2}),
	}
	testutil.Eventually(t, "both replicas to hold partitions", func() bool {
		return len(held(reps[0], domain)) > 0 && len(held(reps[1], domain)) > 0 &&
			len(held(reps[0], domain))+len(held(reps[1], domain)) == int(reps[0].st.Partitions())
	})
	st := openStore()
	var poisoned []store.Aggregate
	for range 6 {
		agg := store.Aggregate{Domain: domain, Root: uuid.New()}
		if _, err := st.Append(ctx, &store.AppendRequest{Aggregate: agg, Pages: []*pb.EventPage{{Sequence: &pb.EventPage_Num{Num: 0}, Event: storetest.Event("poison")}}}); err != nil {
			t.Fatal(err)
		}
		poisoned = append(poisoned, agg)
	}
	var dls []*pb.DeadLetter
	testutil.EventuallyWhy(t, func() (bool, string) {
		resp, err := reps[0].d.Admin().ListDeadLetters(ctx, &pb.ListDeadLettersRequest{Subscriber: "picky"})
		if err != nil {
			t.Fatal(err)
		}
		dls = resp.GetDeadLetters()
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(dls) == len(poisoned), fmt.Sprintf("%d dead letters, %d failed deliveries", len(dls), rec.failures)
	})
	rec.setPoisoned(false)
	for i, dl := range dls {
		resp, err := reps[i%2].d.Admin().ReplayDeadLetters(ctx, &pb.ReplayDeadLettersRequest{Subscriber: "picky", Ids: []string{dl.GetId()}})
		if err != nil || len(resp.GetResults()) != 1 || !resp.GetResults()[0].GetDelivered() {
			t.Fatalf("replay of %s through replica %d: %v, %v", dl.GetId(), i%2, resp, err)
		}
	}
	want := map[uuid.UUID]uint32{}
	for _, a := range poisoned {
		want[a.Root] = 1
	}
	rec.checkOnceInOrder(t, want)
}
