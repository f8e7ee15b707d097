package testredis_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/angzarr-mesh/angzarr/internal/testredis"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStartAndRestartKeepsAppendOnlyData(t *testing.T) {
	srv := testredis.StartServer(t, testredis.Options{AppendOnly: true})
	if _, err := testredis.Do(srv.Addr(), "SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	if _, err := testredis.Do(srv.Addr(), "PING"); err == nil {
		t.Fatal("killed server still answers")
	}
	srv.Restart()
	if v, err := testredis.Do(srv.Addr(), "GET", "k"); err != nil || v != "v" {
		t.Fatalf("after restart GET k = %q, %v", v, err)
	}
}

func TestCluster(t *testing.T) {
	addrs := testredis.StartCluster(t, 3)
	if len(addrs) != 3 {
		t.Fatalf("%d addresses", len(addrs))
	}
	info, err := testredis.Do(addrs[0], "CLUSTER", "INFO")
	if err != nil || !strings.Contains(info, "cluster_slots_assigned:16384") {
		t.Fatalf("cluster info: %v\n%s", err, info)
	}
}

// TestReplicatedClusterFailover writes on a master whose replica is held
// back, kills the master and promotes the replica: a write made before the
// hold is on the new master, a write made during it is gone (this is the
// loss the event store's min-replicas setting prevents).
func TestReplicatedClusterFailover(t *testing.T) {
	c := testredis.StartReplicatedCluster(t, 3)
	m := c.Masters[0].Addr()
	// A key of a slot served by master 0: try tags until one maps there.
	key := ""
	for i := 0; key == ""; i++ {
		k := "{k" + strconv.Itoa(i) + "}"
		if _, err := testredis.Do(m, "GET", k); err == nil || !strings.HasPrefix(err.Error(), "MOVED") {
			key = k
		}
	}
	// WAIT counts the replicas that have this connection's writes: one
	// connection for the writes and the WAITs.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rc := goredis.NewClient(&goredis.Options{Addr: m, PoolSize: 1})
	defer rc.Close()
	if err := rc.Set(ctx, key, "before", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := rc.Wait(ctx, 1, 10*time.Second).Result(); err != nil || n != 1 {
		t.Fatalf("WAIT before the hold: %d %v", n, err)
	}
	if err := c.HoldReplication(0, key+"junk"); err != nil {
		t.Fatal(err)
	}
	if err := rc.Set(ctx, key, "during", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := rc.Wait(ctx, 1, 100*time.Millisecond).Result(); err != nil || n != 0 {
		t.Fatalf("WAIT during the hold: %d %v (the held replica acknowledged)", n, err)
	}
	if err := c.KillMasterAndPromote(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if v, err := testredis.Do(c.Masters[0].Addr(), "GET", key); err != nil || v != "before" {
		t.Fatalf("after the failover GET %s = %q, %v; want the value replicated before the hold", key, v, err)
	}
}
