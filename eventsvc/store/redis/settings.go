package redis

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"

	goredis "github.com/redis/go-redis/v9"
)

// The server settings the store checks at Open (see the package doc,
// "Failover"), with what goes wrong when they are off.
const (
	recommendedNodeTimeoutMin = 1000  // ms: below, a short stall (an fsync) triggers failovers
	recommendedNodeTimeoutMax = 15000 // ms: above, a dead master's slots stay down longer
)

// settingWarnings returns one warning per unsafe setting in cfg (CONFIG
// GET's reply) for a store that needs minReplicas confirmations.
func settingWarnings(cfg map[string]string, minReplicas int, cluster bool) []string {
	var out []string
	if v, ok := cfg["appendonly"]; ok && v != "yes" {
		out = append(out, "appendonly "+v+": every acknowledged append is lost when this server restarts (want appendonly yes)")
	}
	if v, ok := cfg["appendfsync"]; ok && v != "always" {
		out = append(out, "appendfsync "+v+": appends acknowledged in the last second before a crash are lost (want appendfsync always)")
	}
	if v, ok := cfg["min-replicas-to-write"]; ok && minReplicas > 0 {
		if n, err := strconv.Atoi(v); err == nil && n < minReplicas {
			out = append(out, fmt.Sprintf("min-replicas-to-write %d: a master cut off from its replicas keeps taking appends it cannot confirm; "+
				"they are answered UNAVAILABLE and discarded when it rejoins (want min-replicas-to-write %d)", n, minReplicas))
		}
	}
	if v, ok := cfg["cluster-node-timeout"]; ok && cluster {
		if n, err := strconv.Atoi(v); err == nil && (n < recommendedNodeTimeoutMin || n > recommendedNodeTimeoutMax) {
			out = append(out, fmt.Sprintf("cluster-node-timeout %d: want %d to %d ms (shorter fails over on a stall, longer leaves a dead master's slots down)",
				n, recommendedNodeTimeoutMin, recommendedNodeTimeoutMax))
		}
	}
	return out
}

// checkSettings reads the durability settings of every server (masters
// and replicas) with CONFIG GET and logs a warning naming each unsafe
// one. Servers where CONFIG is renamed or refused are reported once and
// not checked.
func checkSettings(ctx context.Context, c goredis.UniversalClient, opts Options, log *slog.Logger) {
	var mu sync.Mutex
	check := func(ctx context.Context, n *goredis.Client) error {
		addr := n.Options().Addr
		cfg, err := n.ConfigGet(ctx, "*").Result()
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			log.Warn("redis: cannot read the server's settings, not checked", "server", addr, "err", err)
			return nil
		}
		for _, w := range settingWarnings(cfg, opts.MinReplicas, opts.Cluster) {
			log.Warn("redis: unsafe setting: "+w, "server", addr)
		}
		return nil
	}
	if cc, ok := c.(*goredis.ClusterClient); ok {
		_ = cc.ForEachShard(ctx, check)
		return
	}
	_ = check(ctx, c.(*goredis.Client))
}
