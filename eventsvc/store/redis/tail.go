package redis

import (
	"context"
	"errors"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
)

var _ store.TailWatcher = (*Store)(nil)

// tailBlock bounds one XREAD BLOCK so that a cancelled watch lets its
// connection go within that time (go-redis does not interrupt a blocked
// read on cancellation). It is not a poll: an append ends the block at
// once.
const tailBlock = time.Second

// newBlockingClient returns the client the blocking tail reads use: its
// own pool, so that blocked connections never starve the appends and
// loads of the shared one. Connections are dialled when needed, one per
// running watch.
func newBlockingClient(opts Options) goredis.UniversalClient {
	const pool = 1024
	if opts.Cluster {
		return goredis.NewClusterClient(&goredis.ClusterOptions{
			Addrs: opts.Addrs, Username: opts.Username, Password: opts.Password,
			PoolSize: pool, MaxRetries: -1, MaxRedirects: 8,
			DialTimeout: 2 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
		})
	}
	return goredis.NewClient(&goredis.Options{
		Addr: opts.Addrs[0], DB: opts.DB, Username: opts.Username, Password: opts.Password,
		PoolSize: pool, MaxRetries: -1,
		DialTimeout: 2 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
	})
}

// WatchLog implements store.TailWatcher with XREAD BLOCK on the
// partition's log stream, from its last entry when the watch starts, on a
// connection of the blocking client.
func (s *Store) WatchLog(ctx context.Context, domain string, partition uint32, ready, wake func()) error {
	if err := store.ValidateDomain("domain", domain); err != nil {
		return err
	}
	if partition >= s.partitions {
		return store.Invalid("partition", "%d: the log has %d partitions", partition, s.partitions)
	}
	key := logKey(domain, partition)
	last := ""
	for attempt := 0; ctx.Err() == nil; {
		if last == "" {
			msgs, err := s.blocking.XRevRangeN(ctx, key, "+", "-", 1).Result()
			if err == nil {
				last = "0-0"
				if len(msgs) == 1 {
					last = msgs[0].ID
				}
				if ready != nil {
					ready()
					ready = nil
				}
			} else if !s.watchFailed(ctx, &attempt) {
				break
			}
			continue
		}
		streams, err := s.blocking.XRead(ctx, &goredis.XReadArgs{Streams: []string{key, last}, Count: 256, Block: tailBlock}).Result()
		switch {
		case errors.Is(err, goredis.Nil):
			attempt = 0
		case err != nil:
			if !s.watchFailed(ctx, &attempt) {
				return ctx.Err()
			}
			wake() // entries may have come while the read failed
		default:
			attempt = 0
			n := 0
			for _, st := range streams {
				if len(st.Messages) > 0 {
					last = st.Messages[len(st.Messages)-1].ID
					n += len(st.Messages)
				}
			}
			if n > 0 {
				wake()
			}
		}
	}
	return ctx.Err()
}

// watchFailed waits before a watch retries a failed read (100ms doubling
// to 5s); false when ctx ended.
func (s *Store) watchFailed(ctx context.Context, attempt *int) bool {
	if ctx.Err() != nil {
		return false
	}
	*attempt++
	d := min(100*time.Millisecond<<min(*attempt-1, 6), 5*time.Second)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
