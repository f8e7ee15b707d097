package testredis_test

import (
	"strings"
	"testing"

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
