package fanout_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/grpc"

	"github.com/angzarr-mesh/angzarr/eventsvc/fanout"
	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/storetest"
	"github.com/angzarr-mesh/angzarr/internal/testutil"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// TestProjectorReceivesEveryEventOnceInOrder appends from several writers
// to many aggregates (appends of 1 to 3 pages) and checks that a projector
// got every event exactly once, each aggregate's in sequence order.
func TestProjectorReceivesEveryEventOnceInOrder(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		st := b.open(t, b.url(t))
		rec := newRecorder()
		addr := serve(t, func(g *grpc.Server) { pb.RegisterProjectorServer(g, rec) })
		domain := storetest.Domain(t)
		r := runDispatcher(t, st, &pb.FanoutConfig{Subscriptions: []*pb.Subscription{projectorSub("summary", addr, 0, domain)}}, fanout.Options{})

		const writers, aggsPerWriter, appends = 4, 4, 12
		var (
			mu   sync.Mutex
			want = map[uuid.UUID]uint32{}
			wg   sync.WaitGroup
			errs = make(chan error, writers)
		)
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				aggs := make([]store.Aggregate, aggsPerWriter)
				next := make([]uint32, aggsPerWriter)
				for i := range aggs {
					aggs[i] = store.Aggregate{Domain: domain, Root: uuid.New()}
				}
				for i := 0; i < appends*aggsPerWriter; i++ {
					a := i % aggsPerWriter
					res, err := r.st.Append(context.Background(), &store.AppendRequest{Aggregate: aggs[a], Expected: next[a], Pages: storetest.Pages(next[a], 1+i%3, "e")})
					if err != nil {
						errs <- err
						return
					}
					next[a] = res.Next
				}
				mu.Lock()
				for i, agg := range aggs {
					want[agg.Root] = next[i]
				}
				mu.Unlock()
			}()
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		total := 0
		for _, n := range want {
			total += int(n)
		}
		testutil.Eventually(t, fmt.Sprintf("%d events delivered", total), func() bool { return rec.count() >= total })
		testutil.Eventually(t, "the checkpoints to be committed", func() bool { return r.caughtUp(t, "summary") })
		rec.checkOnceInOrder(t, want)
	})
}

// TestStartPositionsCheckpointsAndRebuild: a new projector starts from the
// beginning by default and from now with LATEST; both resume from their
// checkpoints after a restart (events appended while the dispatcher was
// down included, nothing delivered twice); a reset rebuilds from position 0.
func TestStartPositionsCheckpointsAndRebuild(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		st := b.open(t, b.url(t))
		domain := storetest.Domain(t)
		agg := store.Aggregate{Domain: domain, Root: uuid.New()}
		next := appendN(t, st, agg, 0, 5, "before")

		early, late := newRecorder(), newRecorder()
		cfg := func(early, late *recorder) *pb.FanoutConfig {
			return &pb.FanoutConfig{Subscriptions: []*pb.Subscription{
				projectorSub("early", serve(t, func(g *grpc.Server) { pb.RegisterProjectorServer(g, early) }), pb.StartPosition_START_POSITION_UNSPECIFIED, domain),
				projectorSub("late", serve(t, func(g *grpc.Server) { pb.RegisterProjectorServer(g, late) }), pb.StartPosition_START_POSITION_LATEST, domain),
			}}
		}
		r := runDispatcher(t, st, cfg(early, late), fanout.Options{})
		testutil.Eventually(t, "the history delivered to the earliest projector", func() bool { return early.count() == 5 })
		testutil.Eventually(t, "the latest projector's checkpoints", func() bool { return started(t, r, "late") })
		next = appendN(t, r.st, agg, next, 5, "during")
		testutil.Eventually(t, "new events delivered", func() bool { return early.count() == 10 && late.count() == 5 })
		testutil.Eventually(t, "checkpoints committed", func() bool { return r.caughtUp(t, "early") && r.caughtUp(t, "late") })
		if got := fmt.Sprint(late.seqs[agg.Root]); got != "[5 6 7 8 9]" {
			t.Fatalf("the latest projector received %s, want [5 6 7 8 9]", got)
		}
		r.stop(t)

		next = appendN(t, st, agg, next, 3, "down")
		early2, late2 := newRecorder(), newRecorder()
		r2 := runDispatcher(t, st, cfg(early2, late2), fanout.Options{})
		testutil.Eventually(t, "the events appended while down", func() bool { return early2.count() == 3 && late2.count() == 3 })
		testutil.Eventually(t, "checkpoints committed", func() bool { return r2.caughtUp(t, "early") && r2.caughtUp(t, "late") })
		for _, rec := range []*recorder{early2, late2} {
			if got := fmt.Sprint(rec.seqs[agg.Root]); got != "[10 11 12]" {
				t.Fatalf("after restart received %s, want [10 11 12]", got)
			}
		}

		// Rebuild from position 0.
		p, err := r2.d.Reset(context.Background(), "early")
		if err != nil {
			t.Fatal(err)
		}
		if len(p.GetPartitions()) != int(st.Partitions()) {
			t.Fatalf("reset progress %v", p)
		}
		testutil.Eventually(t, "the rebuild", func() bool { return early2.count() == 3+int(next) })
		testutil.Eventually(t, "the rebuild's checkpoints", func() bool { return r2.caughtUp(t, "early") })
		want := "[10 11 12 0 1 2 3 4 5 6 7 8 9 10 11 12]"
		if got := fmt.Sprint(early2.seqs[agg.Root]); got != want {
			t.Fatalf("rebuild received %s, want %s", got, want)
		}
		if late2.count() != 3 {
			t.Fatalf("the other projector received %d events during the rebuild", late2.count())
		}
		if _, err := r2.d.Reset(context.Background(), "nobody"); !errors.Is(err, fanout.ErrUnknownSubscriber) {
			t.Fatalf("reset of an unknown subscriber: %v", err)
		}
	})
}

// started reports whether the subscriber has a checkpoint on every partition.
func started(t *testing.T, r *running, name string) bool {
	p, err := r.d.Progress(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	for _, pp := range p.GetPartitions() {
		if !pp.GetStarted() {
			return false
		}
	}
	return len(p.GetPartitions()) > 0
}

// TestLiveReconfiguration: a subscriber added to the configuration starts,
// one removed stops receiving.
func TestLiveReconfiguration(t *testing.T) {
	b := backends()[0]
	st := b.open(t, b.url(t))
	domain := storetest.Domain(t)
	one, two := newRecorder(), newRecorder()
	subOne := projectorSub("one", serve(t, func(g *grpc.Server) { pb.RegisterProjectorServer(g, one) }), 0, domain)
	subTwo := projectorSub("two", serve(t, func(g *grpc.Server) { pb.RegisterProjectorServer(g, two) }), 0, domain)
	r := runDispatcher(t, st, &pb.FanoutConfig{Subscriptions: []*pb.Subscription{subOne}}, fanout.Options{})
	agg := store.Aggregate{Domain: domain, Root: uuid.New()}
	next := appendN(t, r.st, agg, 0, 2, "x")
	testutil.Eventually(t, "delivery to one", func() bool { return one.count() == 2 })
	testutil.Eventually(t, "one's checkpoint", func() bool { return r.caughtUp(t, "one") })

	if err := r.d.Apply(&pb.FanoutConfig{Version: "2", Subscriptions: []*pb.Subscription{subTwo}}); err != nil {
		t.Fatal(err)
	}
	appendN(t, r.st, agg, next, 1, "y")
	testutil.Eventually(t, "delivery to two", func() bool { return two.count() == 3 })
	if one.count() != 2 {
		t.Fatalf("a removed subscriber received %d events", one.count())
	}
	bad := &pb.FanoutConfig{Subscriptions: []*pb.Subscription{{Name: "bad name", Kind: pb.SubscriberKind_SUBSCRIBER_KIND_PROJECTOR}}}
	if err := r.d.Apply(bad); err == nil {
		t.Fatal("an invalid configuration was applied")
	}
	if got := r.d.Subscribers(); len(got) != 1 || got[0] != "two" {
		t.Fatalf("after a refused configuration the subscribers are %v", got)
	}
}
