package redis_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"
	"go.uber.org/goleak"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/redis"
	"github.com/angzarr-mesh/angzarr/eventsvc/store/storetest"
	"github.com/angzarr-mesh/angzarr/internal/testredis"
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
