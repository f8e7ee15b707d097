package testredis

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// StartCluster starts a Redis Cluster of n masters (n >= 3, no replicas)
// with every slot assigned, waits until every node reports cluster_state:ok
// and returns the masters' addresses.
func StartCluster(t testing.TB, n int) []string {
	t.Helper()
	return ClusterAddrs(StartClusterServers(t, n))
}

// StartClusterServers is StartCluster returning the servers, for tests that
// kill and restart nodes.
func StartClusterServers(t testing.TB, n int) []*Server {
	t.Helper()
	return StartClusterServersWith(t, n, Options{Cluster: true})
}

// StartClusterServersWith is StartClusterServers with every server started
// with opts (Cluster is set).
func StartClusterServersWith(t testing.TB, n int, opts Options) []*Server {
	t.Helper()
	opts.Cluster = true
	if n < 3 {
		t.Fatalf("a Redis Cluster needs at least 3 masters, got %d", n)
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatal("redis-cli not found: run `make deps` (installs redis-tools)")
	}
	servers := make([]*Server, n)
	for i := range servers {
		servers[i] = StartServer(t, opts)
	}
	addrs := ClusterAddrs(servers)
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, a := range addrs {
		for {
			info, err := Do(a, "CLUSTER", "INFO")
			if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(n)) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster node %s not ready: %v\n%s", a, err, info)
			}
			time.Sleep(20 * time.Millisecond) // poll interval
		}
	}
	return servers
}

// ClusterAddrs returns the servers' addresses.
func ClusterAddrs(servers []*Server) []string {
	addrs := make([]string, len(servers))
	for i, s := range servers {
		addrs[i] = s.Addr()
	}
	return addrs
}
