package redis_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"
	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/redis"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/storetest"
	"github.com/angzarr-mesh/angzarr/internal/testredis"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func open(t *testing.T, opts redis.Options) store.Store {
	t.Helper()
	s, err := redis.Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformanceSingle(t *testing.T) {
	addr := testredis.Start(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, redis.Options{Addrs: []string{addr}})
	})
}

func TestConformanceCluster(t *testing.T) {
	addrs := testredis.StartCluster(t, 3)
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, redis.Options{Addrs: addrs, Cluster: true})
	})
}

// TestConformanceReplicated runs the suite with every batch confirmed by
// a replica (WAIT on a cluster whose masters have one replica each).
func TestConformanceReplicated(t *testing.T) {
	c := testredis.StartReplicatedCluster(t, 3)
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, redis.Options{Addrs: c.Addrs(), Cluster: true, MinReplicas: 1})
	})
}

func TestPartitionLayoutIsFixed(t *testing.T) {
	addr := testredis.Start(t)
	open(t, redis.Options{Addrs: []string{addr}, Partitions: 4})
	if _, err := redis.Open(context.Background(), redis.Options{Addrs: []string{addr}, Partitions: 8}); err == nil {
		t.Fatal("opened a 4-partition store with 8 partitions")
	}
}

func TestServerDownIsUnavailable(t *testing.T) {
	srv := testredis.StartServer(t, testredis.Options{})
	s := open(t, redis.Options{Addrs: []string{srv.Addr()}})
	srv.Kill()
	agg := store.Aggregate{Domain: "down", Root: uuid.New()}
	_, err := s.Append(context.Background(), &store.AppendRequest{Aggregate: agg, Pages: storetest.Pages(0, 1, "a")})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("append to a dead server: %v", err)
	}
	if _, err := s.Load(context.Background(), agg, store.LoadQuery{}); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("load from a dead server: %v", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	err := redis.Options{Addrs: []string{"a:1", "b:2"}, DB: 3, Partitions: 5000}.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"cluster mode", "at most 1024"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not mention %q", err, want)
		}
	}
}

// TestRootsOfAnEarlierLayoutAreMigrated: a store written before roots were
// kept in sorted sets (one unordered set az:roots:{d:P} per partition) is
// listed in full after Open moved them, and the old sets are gone.
func TestRootsOfAnEarlierLayoutAreMigrated(t *testing.T) {
	addr := testredis.Start(t)
	s := open(t, redis.Options{Addrs: []string{addr}}).(*redis.Store)
	domain := storetest.Domain(t)
	var want []store.Aggregate
	for range 40 {
		agg := store.Aggregate{Domain: domain, Root: uuid.New()}
		if _, err := s.Append(t.Context(), &store.AppendRequest{Aggregate: agg, Pages: storetest.Pages(0, 1, "r")}); err != nil {
			t.Fatal(err)
		}
		want = append(want, agg)
	}
	// Put the roots back as an earlier version kept them.
	c := goredis.NewClient(&goredis.Options{Addr: addr})
	defer c.Close()
	for _, a := range want {
		p := s.PartitionOf(a)
		tag := "{" + domain + ":" + strconv.Itoa(int(p)) + "}"
		if err := c.ZRem(t.Context(), "az:rootidx:"+tag, string(a.Root[:])).Err(); err != nil {
			t.Fatal(err)
		}
		if err := c.SAdd(t.Context(), "az:roots:"+tag, string(a.Root[:])).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if roots, err := s.Roots(t.Context(), domain, store.Aggregate{}, 100); err != nil || len(roots) != 0 {
		t.Fatalf("before the migration: %d roots, %v (the test put them back wrong)", len(roots), err)
	}
	s2 := open(t, redis.Options{Addrs: []string{addr}})
	roots, err := store.AllRoots(t.Context(), s2, domain)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(want, store.Aggregate.Compare)
	if fmt.Sprint(roots) != fmt.Sprint(want) {
		t.Fatalf("after Open: %d roots %v, want %d", len(roots), roots, len(want))
	}
	if keys, err := c.Keys(t.Context(), "az:roots:*").Result(); err != nil || len(keys) != 0 {
		t.Fatalf("old root sets left: %v %v", keys, err)
	}
}

// TestRootsMergeASkewedPartition: a page of roots merges the partitions'
// sorted sets in rounds; when one partition holds every low root, a
// round must not return roots of the other partitions past what it has
// read of that one.
func TestRootsMergeASkewedPartition(t *testing.T) {
	addr := testredis.Start(t)
	s := open(t, redis.Options{Addrs: []string{addr}}).(*redis.Store)
	domain := storetest.Domain(t)
	var want []store.Aggregate
	low, high := 0, 0
	for low < 50 || high < 50 {
		agg := store.Aggregate{Domain: domain, Root: uuid.New()}
		p := s.PartitionOf(agg)
		switch {
		case p == 0 && agg.Root[0] < 0x10 && low < 50:
			low++
		case p != 0 && agg.Root[0] >= 0x80 && high < 50:
			high++
		default:
			continue
		}
		if _, err := s.Append(t.Context(), &store.AppendRequest{Aggregate: agg, Pages: storetest.Pages(0, 1, "r")}); err != nil {
			t.Fatal(err)
		}
		want = append(want, agg)
	}
	slices.SortFunc(want, store.Aggregate.Compare)
	var got []store.Aggregate
	for after := (store.Aggregate{}); ; {
		roots, err := s.Roots(t.Context(), domain, after, 20)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, roots...)
		if len(roots) < 20 {
			break
		}
		after = roots[len(roots)-1]
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("paged by 20: %d roots, out of order or missing", len(got))
	}
}

// TestPagedLoadWithoutSizeKey: an aggregate stored before az:size was
// kept (the key deleted here) still loads in bounded pages, measured by
// the load script; appends do not start a size that would miss its
// earlier pages, and its next snapshot starts an exact one.
func TestPagedLoadWithoutSizeKey(t *testing.T) {
	addr := testredis.Start(t)
	s, err := redis.Open(context.Background(), redis.Options{Addrs: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	c := goredis.NewClient(&goredis.Options{Addr: addr})
	t.Cleanup(func() { c.Close() })
	ctx := t.Context()
	agg := store.Aggregate{Domain: storetest.Domain(t), Root: uuid.New()}
	big := func(first uint32, n int) []*pb.EventPage {
		pages := storetest.Pages(first, n, "p")
		for _, p := range pages {
			p.Event = storetest.Event(strings.Repeat("x", 1000))
		}
		return pages
	}
	if _, err := s.Append(ctx, &store.AppendRequest{Aggregate: agg, Pages: big(0, 10)}); err != nil {
		t.Fatal(err)
	}
	key := s.SizeKeyOf(agg)
	if n, err := c.Get(ctx, key).Int(); err != nil || n < 10000 {
		t.Fatalf("size of 10 events of 1 KB: %d, %v", n, err)
	}
	if err := c.Del(ctx, key).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, &store.AppendRequest{Aggregate: agg, Expected: 10, Pages: big(10, 2)}); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Exists(ctx, key).Result(); err != nil || n != 0 {
		t.Fatalf("an append to an aggregate without a size started one: %d, %v", n, err)
	}
	total := 0
	for from, pages := uint32(0), 0; ; pages++ {
		q := store.LoadQuery{MaxBytes: 3500}
		if from > 0 {
			q = store.LoadQuery{From: from, To: 12, MaxBytes: 3500}
		}
		l, err := s.LoadEncoded(ctx, agg, q)
		if err != nil {
			t.Fatal(err)
		}
		if l.PageCount() > 3 {
			t.Fatalf("a page of %d events of 1 KB within 3.5 KB", l.PageCount())
		}
		total += l.PageCount()
		if from = l.More; from == 0 {
			if pages < 3 || total != 12 {
				t.Fatalf("%d pages, %d events", pages+1, total)
			}
			break
		}
	}
	if _, err := s.Append(ctx, &store.AppendRequest{Aggregate: agg, Expected: 12, Pages: big(12, 1), Snapshot: storetest.Event("state")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, &store.AppendRequest{Aggregate: agg, Expected: 13, Pages: big(13, 1)}); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Get(ctx, key).Int(); err != nil || n < 1000 || n > 1100 {
		t.Fatalf("size of one event of 1 KB after a snapshot: %d, %v", n, err)
	}
}
