package testredis

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Replicated is a Redis Cluster whose every master has one replica:
// Replicas[i] replicates Masters[i]. Every node runs with appendonly yes
// and appendfsync always.
type Replicated struct {
	Masters, Replicas []*Server
}

// StartReplicatedCluster starts a Redis Cluster of n masters (n >= 3) with
// one replica each, waits until every node reports cluster_state:ok and
// every replica's link to its master is up. The servers are stopped by
// t.Cleanup.
func StartReplicatedCluster(t testing.TB, n int, args ...string) *Replicated {
	t.Helper()
	// No output buffer limit for replicas: a held replica must not be
	// disconnected (and resynchronised) while its master's stream waits.
	args = append([]string{"--client-output-buffer-limit", "replica 0 0 0"}, args...)
	opts := Options{Cluster: true, AppendOnly: true, Args: args}
	masters := StartClusterServersWith(t, n, opts)
	c := &Replicated{Masters: masters, Replicas: make([]*Server, n)}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i, m := range masters {
		r := StartServer(t, opts)
		c.Replicas[i] = r
		id, err := Do(m.Addr(), "CLUSTER", "MYID")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Do(r.Addr(), "CLUSTER", "MEET", "127.0.0.1", strconv.Itoa(m.port), strconv.Itoa(m.busPort)); err != nil {
			t.Fatal(err)
		}
		// CLUSTER REPLICATE needs the master to be known to the replica.
		if err := poll(ctx, func() (bool, error) {
			nodes, err := Do(r.Addr(), "CLUSTER", "NODES")
			return err == nil && strings.Contains(nodes, id), err
		}); err != nil {
			t.Fatalf("replica %s does not know master %s: %v", r.Addr(), m.Addr(), err)
		}
		if _, err := Do(r.Addr(), "CLUSTER", "REPLICATE", id); err != nil {
			t.Fatalf("CLUSTER REPLICATE: %v", err)
		}
	}
	for _, r := range c.Replicas {
		if err := poll(ctx, func() (bool, error) {
			info, err := Do(r.Addr(), "INFO", "replication")
			return err == nil && strings.Contains(info, "master_link_status:up"), err
		}); err != nil {
			t.Fatalf("replica %s never linked to its master: %v", r.Addr(), err)
		}
	}
	for _, s := range append(append([]*Server{}, c.Masters...), c.Replicas...) {
		if err := poll(ctx, func() (bool, error) {
			info, err := Do(s.Addr(), "CLUSTER", "INFO")
			return err == nil && strings.Contains(info, "cluster_state:ok") &&
				strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(2*n)), err
		}); err != nil {
			t.Fatalf("cluster node %s not ready: %v", s.Addr(), err)
		}
	}
	return c
}

// Addrs are the masters' addresses (seed nodes for a cluster client).
func (c *Replicated) Addrs() []string { return ClusterAddrs(c.Masters) }

// HoldReplication stops replica i (SIGSTOP) and writes a junk value to
// master i larger than the kernel's socket buffers can hold (tcp_rmem and
// tcp_wmem maxima from /proc, plus a margin): from then on the master's
// writes wait in its own memory, unsent, and die with it if it is killed.
// The replica acknowledges none of them (WAIT does not count it). key is a
// key of a slot master i serves.
func (c *Replicated) HoldReplication(i int, key string) error {
	if err := c.Replicas[i].Signal(syscall.SIGSTOP); err != nil {
		return err
	}
	size := 16 << 20
	for _, f := range []string{"/proc/sys/net/ipv4/tcp_rmem", "/proc/sys/net/ipv4/tcp_wmem"} {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		fs := strings.Fields(string(b))
		n, err := strconv.Atoi(fs[len(fs)-1])
		if err != nil {
			return fmt.Errorf("%s: %q", f, b)
		}
		size += n
	}
	_, err := Do(c.Masters[i].Addr(), "SET", key, strings.Repeat("x", size))
	return err
}

// KillMasterAndPromote kills master i with SIGKILL, resumes its replica
// (SIGCONT), waits until the replica has seen the link go down, promotes
// it with CLUSTER FAILOVER TAKEOVER and waits until it is a master and
// every master reports cluster_state:ok. Afterwards Masters[i] is the
// promoted replica and Replicas[i] the killed server.
func (c *Replicated) KillMasterAndPromote(ctx context.Context, i int) error {
	m, r := c.Masters[i], c.Replicas[i]
	m.Kill()
	if err := r.Signal(syscall.SIGCONT); err != nil {
		return err
	}
	if err := poll(ctx, func() (bool, error) {
		info, err := Do(r.Addr(), "INFO", "replication")
		return err == nil && strings.Contains(info, "master_link_status:down"), err
	}); err != nil {
		return fmt.Errorf("replica %s never saw its master die: %w", r.Addr(), err)
	}
	if _, err := Do(r.Addr(), "CLUSTER", "FAILOVER", "TAKEOVER"); err != nil {
		return fmt.Errorf("CLUSTER FAILOVER TAKEOVER: %w", err)
	}
	if err := poll(ctx, func() (bool, error) {
		info, err := Do(r.Addr(), "INFO", "replication")
		return err == nil && strings.Contains(info, "role:master"), err
	}); err != nil {
		return fmt.Errorf("replica %s not promoted: %w", r.Addr(), err)
	}
	c.Masters[i], c.Replicas[i] = r, m
	for j, s := range c.Masters {
		if err := poll(ctx, func() (bool, error) {
			info, err := Do(s.Addr(), "CLUSTER", "INFO")
			return err == nil && strings.Contains(info, "cluster_state:ok"), err
		}); err != nil {
			return fmt.Errorf("master %d (%s) not ok after the failover: %w", j, s.Addr(), err)
		}
	}
	return nil
}

// RejoinAsReplica restarts the server killed by KillMasterAndPromote(i)
// (same port, data and cluster config): the cluster makes it a replica of
// the master that took its slots, which resynchronises it (what it had
// not replicated is discarded). It waits until its link is up.
func (c *Replicated) RejoinAsReplica(ctx context.Context, i int) error {
	r := c.Replicas[i]
	r.Restart()
	return poll(ctx, func() (bool, error) {
		info, err := Do(r.Addr(), "INFO", "replication")
		return err == nil && strings.Contains(info, "role:slave") && strings.Contains(info, "master_link_status:up"), err
	})
}

// poll calls cond until it reports true or ctx ends.
func poll(ctx context.Context, cond func() (bool, error)) error {
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(20 * time.Millisecond): // poll interval
		}
	}
}
