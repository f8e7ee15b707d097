package fanout_test

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"

	"github.com/angzarr-mesh/angzarr/eventsvc/fanout"
	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/redis"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/storetest"
	"github.com/angzarr-mesh/angzarr/internal/testredis"
	"github.com/angzarr-mesh/angzarr/internal/testutil"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// confirmWatch is a slog handler that counts the dispatcher's failed
// fetches whose entries the replicas did not confirm.
type confirmWatch struct {
	slog.Handler
	unconfirmed *atomic.Int32
}

func (h confirmWatch) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "fanout fetch failed" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "err" && strings.Contains(a.Value.String(), "replicas confirmed") {
				h.unconfirmed.Add(1)
			}
			return true
		})
	}
	return h.Handler.Handle(ctx, r)
}

// TestFailoverDeliversOnlyConfirmedEvents runs the dispatcher and a
// projector on a Redis Cluster of 3 masters with one replica each, the
// store with min-replicas=1. Master 0's replica is held back and an event
// is appended to an aggregate of master 0: the append is UNAVAILABLE
// (unknown outcome) and the dispatcher, which fetches it, does not deliver
// it (it logs the unconfirmed fetch). Master 0 is killed with -9, its
// replica promoted, the old master rejoins as a replica; the writer
// retries the append with the same idempotency key and goes on. Once the
// projector is caught up, it has received exactly the store's events:
// nothing that the failover took back, and no sequence twice with two
// events.
func TestFailoverDeliversOnlyConfirmedEvents(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	c := testredis.StartReplicatedCluster(t, 3)
	var unconfirmed atomic.Int32
	st, err := redis.Open(ctx, redis.Options{
		Addrs: c.Addrs(), Cluster: true, Partitions: 4, MinReplicas: 1, ReplicaTimeout: 100 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	domain := storetest.Domain(t)
	rec := newRecorder()
	rec.setPoisoned(false)
	addr := serve(t, func(g *grpc.Server) { pb.RegisterProjectorServer(g, rec) })
	log := slog.New(confirmWatch{Handler: testLogger(t).Handler(), unconfirmed: &unconfirmed})
	r := runDispatcher(t, st, &pb.FanoutConfig{Subscriptions: []*pb.Subscription{projectorSub("proj", addr, 0, domain)}},
		fanout.Options{Logger: log, PollInterval: 20 * time.Millisecond})

	// One aggregate on master 0 and one elsewhere. Event texts name their
	// aggregate: a text says which (root, sequence) it was appended as.
	name := func(what string, agg store.Aggregate) string { return what + "." + agg.Root.String()[:8] }
	var held, other store.Aggregate
	var all []store.Aggregate
	for held.Domain == "" || other.Domain == "" {
		agg := store.Aggregate{Domain: domain, Root: uuid.New()}
		all = append(all, agg)
		res, err := r.st.Append(ctx, &store.AppendRequest{Aggregate: agg, Pages: storetest.Pages(0, 1, name("first", agg))})
		if err != nil {
			t.Fatal(err)
		}
		key := "az:log:{" + domain + ":" + strconv.FormatUint(uint64(res.Position.GetPartition()), 10) + "}"
		_, err = testredis.Do(c.Masters[0].Addr(), "TYPE", key)
		if err == nil && held.Domain == "" {
			held = agg
		} else if err != nil && other.Domain == "" {
			other = agg
		}
	}
	testutil.Eventually(t, "the first events delivered", func() bool { return r.caughtUp(t, "proj") })

	junk := ""
	for i := 0; junk == ""; i++ {
		k := "junk{" + strconv.Itoa(i) + "}"
		if _, err := testredis.Do(c.Masters[0].Addr(), "TYPE", k); err == nil {
			junk = k
		}
	}
	if err := c.HoldReplication(0, junk); err != nil {
		t.Fatal(err)
	}
	_, err = r.st.Append(ctx, &store.AppendRequest{Aggregate: held, Expected: 1, Pages: storetest.Pages(1, 1, name("held", held))})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("append while the replica is held: %v, want UNAVAILABLE", err)
	}
	testutil.Eventually(t, "the dispatcher to find the held event unconfirmed", func() bool { return unconfirmed.Load() > 0 })
	appendN(t, r.st, other, 1, 1, name("other", other))
	if err := c.KillMasterAndPromote(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.RejoinAsReplica(ctx, 0); err != nil {
		t.Fatal(err)
	}
	// A different event for sequence 1 of the held aggregate: stored if
	// the failover took the held one back (it should: its replica never
	// had it), a conflict otherwise.
	next := uint32(1)
	for {
		res, err := r.st.Append(ctx, &store.AppendRequest{Aggregate: held, Expected: 1, Pages: storetest.Pages(1, 1, name("again", held))})
		var ce *store.ConflictError
		if errors.As(err, &ce) {
			t.Logf("the held event survived the failover")
			next = ce.Next
			break
		}
		if err == nil {
			next = res.Next
			break
		}
		if !errors.Is(err, store.ErrUnavailable) || ctx.Err() != nil {
			t.Fatalf("append after the failover: %v", err)
		}
	}
	appendN(t, r.st, held, next, 2, name("after", held))
	appendN(t, r.st, other, 2, 2, name("after", other))
	testutil.Eventually(t, "the projector caught up", func() bool { return r.caughtUp(t, "proj") })

	rec.mu.Lock()
	defer rec.mu.Unlock()
	stored := map[string]bool{}
	for _, agg := range all {
		l, err := st.Load(ctx, agg, store.LoadQuery{})
		if err != nil {
			t.Fatal(err)
		}
		var want []uint32
		for _, p := range l.Pages {
			want = append(want, p.GetNum())
			text := storetest.Text(t, p)
			stored[text] = true
			if rec.texts[text] == 0 {
				t.Errorf("stored event %q never delivered", text)
			}
		}
		// At least once: a redelivery repeats a sequence; none is skipped
		// or delivered out of order.
		if got := dedup(rec.seqs[agg.Root]); len(got) != len(want) {
			t.Errorf("%s: delivered sequences %v, stored %v", agg, rec.seqs[agg.Root], want)
		}
	}
	for text := range rec.texts {
		if !stored[text] {
			t.Errorf("delivered %q, which is not in the store (taken back by the failover)", text)
		}
	}
}

// dedup drops consecutive repeats.
func dedup(s []uint32) []uint32 {
	var out []uint32
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
