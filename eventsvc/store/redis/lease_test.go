package redis_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/redis"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/storetest"
	"github.com/angzarr-mesh/angzarr/internal/testredis"
)

func openRedis(t *testing.T, opts redis.Options) *redis.Store {
	t.Helper()
	s, err := redis.Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func leaseCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestLeaseFencing plays a replica A that fetched a batch and then lost
// its partition's lease (expired: A stopped renewing, as when paused or
// killed) to B. A's commit, fetch and renewal are refused by the fencing
// token; B gets A's uncommitted entries and commits them. Then the same
// stale commit without fencing (Checkpointer.Commit) is accepted: that is
// what fencing prevents. On a cluster, so that the lease, the fence and
// the stream share a slot.
func TestLeaseFencing(t *testing.T) {
	ctx := leaseCtx(t)
	s := openRedis(t, redis.Options{Addrs: testredis.StartCluster(t, 3), Cluster: true, Partitions: 1})
	domain, sub := storetest.Domain(t), "proj"
	const ttl = 200 * time.Millisecond

	a, ok, err := s.AcquireLease(ctx, domain, 0, "replica-a", ttl)
	if err != nil || !ok || a.Token == 0 {
		t.Fatalf("A acquire: %v %v %v", a, ok, err)
	}
	if again, ok, err := s.AcquireLease(ctx, domain, 0, "replica-a", ttl); err != nil || !ok || again != a {
		t.Fatalf("A acquire again (renewal): %v %v %v, want %v", again, ok, err, a)
	}
	if _, ok, err := s.AcquireLease(ctx, domain, 0, "replica-b", ttl); err != nil || ok {
		t.Fatalf("B acquired a held lease: %v %v", ok, err)
	}
	if _, err := s.OpenCheckpoint(ctx, sub, domain, 0, false); err != nil {
		t.Fatal(err)
	}
	agg := store.Aggregate{Domain: domain, Root: uuid.New()}
	if _, err := s.Append(ctx, &store.AppendRequest{Aggregate: agg, Pages: storetest.Pages(0, 3, "e")}); err != nil {
		t.Fatal(err)
	}
	got, err := s.FetchFenced(ctx, a, sub, 10)
	if err != nil || len(got) != 1 || len(got[0].Book.GetPages()) != 3 {
		t.Fatalf("A fetch: %d entries, %v", len(got), err)
	}
	offsets := []uint64{got[0].Book.GetPosition().GetOffset()}

	// A stops renewing; B takes over once the lease expired.
	var b store.Lease
	for {
		if b, ok, err = s.AcquireLease(ctx, domain, 0, "replica-b", ttl); err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("B never got the expired lease")
		case <-time.After(ttl / 4): // poll interval
		}
	}
	if b.Token <= a.Token {
		t.Fatalf("B's token %d is not above A's %d", b.Token, a.Token)
	}
	if err := s.CommitFenced(ctx, a, sub, offsets); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("stale commit: %v, want ErrFenced", err)
	}
	if _, err := s.FetchFenced(ctx, a, sub, 10); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("stale fetch: %v, want ErrFenced", err)
	}
	if err := s.RenewLease(ctx, a, ttl); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("stale renewal: %v, want ErrFenced", err)
	}
	if err := s.ReleaseLease(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := s.RenewLease(ctx, b, ttl); err != nil {
		t.Fatalf("a stale release dropped B's lease: %v", err)
	}
	// The refused commit left A's batch pending: B gets it.
	got, err = s.FetchFenced(ctx, b, sub, 10)
	if err != nil || len(got) != 1 || got[0].Book.GetPosition().GetOffset() != offsets[0] {
		t.Fatalf("B fetch after the handover: %d entries, %v", len(got), err)
	}

	// Without fencing, the stale replica's commit is accepted and would
	// acknowledge entries the new holder has not handled.
	if err := s.Commit(ctx, sub, domain, 0, offsets); err != nil {
		t.Fatalf("unfenced commit: %v", err)
	}
	if got, err := s.FetchFenced(ctx, b, sub, 10); err != nil || len(got) != 0 {
		t.Fatalf("after the unfenced stale commit B fetched %d entries (%v): the commit was not taken", len(got), err)
	}

	if err := s.ReleaseLease(ctx, b); err != nil {
		t.Fatal(err)
	}
	c, ok, err := s.AcquireLease(ctx, domain, 0, "replica-c", ttl)
	if err != nil || !ok || c.Token <= b.Token {
		t.Fatalf("acquire after release: %v %v %v", c, ok, err)
	}
	if _, _, err := s.AcquireLease(ctx, domain, 0, "has space", ttl); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("owner with a space: %v", err)
	}
	if _, _, err := s.AcquireLease(ctx, domain, 1, "replica-c", ttl); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("partition out of range: %v", err)
	}
}

// TestHeartbeatMembers: live replicas are listed, one that leaves is gone
// at once, one that stops heartbeating is gone after its TTL.
func TestHeartbeatMembers(t *testing.T) {
	ctx := leaseCtx(t)
	s := openRedis(t, redis.Options{Addrs: []string{testredis.Start(t)}})
	if _, err := s.Heartbeat(ctx, "b", time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Heartbeat(ctx, "c", 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	m, err := s.Heartbeat(ctx, "a", time.Hour)
	if err != nil || !slices.Equal(m, []string{"a", "b", "c"}) {
		t.Fatalf("members %v, %v", m, err)
	}
	if err := s.Leave(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	for {
		m, err = s.Heartbeat(ctx, "a", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Equal(m, []string{"a"}) {
			break
		}
		if slices.Contains(m, "b") {
			t.Fatalf("b left but is listed: %v", m)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("c never expired: %v", m)
		case <-time.After(20 * time.Millisecond): // poll interval
		}
	}
}

// TestWatchLog: a watch wakes for an append made after it is ready, on
// the partition it watches only, and ends with its context.
func TestWatchLog(t *testing.T) {
	ctx := leaseCtx(t)
	s := openRedis(t, redis.Options{Addrs: testredis.StartCluster(t, 3), Cluster: true, Partitions: 2})
	domain := storetest.Domain(t)
	// Find a root per partition through the log.
	roots := map[uint32]store.Aggregate{}
	for len(roots) < 2 {
		agg := store.Aggregate{Domain: domain, Root: uuid.New()}
		res, err := s.Append(ctx, &store.AppendRequest{Aggregate: agg, Pages: storetest.Pages(0, 1, "x")})
		if err != nil {
			t.Fatal(err)
		}
		roots[res.Position.GetPartition()] = agg
	}
	wctx, cancel := context.WithCancel(ctx)
	ready, woken, done := make(chan struct{}), make(chan struct{}, 16), make(chan error, 1)
	go func() {
		done <- s.WatchLog(wctx, domain, 0, func() { close(ready) }, func() { woken <- struct{}{} })
	}()
	<-ready
	// An append to the other partition does not wake; one to ours does.
	if _, err := s.Append(ctx, &store.AppendRequest{Aggregate: roots[1], Expected: 1, Pages: storetest.Pages(1, 1, "y")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, &store.AppendRequest{Aggregate: roots[0], Expected: 1, Pages: storetest.Pages(1, 1, "z")}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-woken:
	case <-ctx.Done():
		t.Fatal("no wake after an append")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("watch ended with %v", err)
	}
	if len(woken) != 0 {
		t.Fatalf("%d more wakes for one append", len(woken))
	}
	if err := s.WatchLog(ctx, domain, 2, nil, func() {}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("watch of partition 2 of 2: %v", err)
	}
}
