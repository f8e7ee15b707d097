package redis

import (
	"context"
	"errors"
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// A subscriber's checkpoint on a partition is a consumer group named after
// the subscriber on the partition's log stream (az:log:{d:P}), read by one
// consumer, consumer. Fetch reads the group's pending entries (delivered,
// never acknowledged: a crash) from 0 and then new entries (">") in one
// pipeline; Commit acknowledges (XACK). Every command touches the one
// stream key, so it stays in the partition's slot.

// consumer is the one consumer of every group: a partition is read in
// order by one dispatcher.
const consumer = "dispatcher"

// checkArgs validates the names and the partition of a checkpoint call.
func (s *Store) checkArgs(subscriber, domain string, partition uint32) error {
	if err := store.ValidateDomain("subscriber", subscriber); err != nil {
		return err
	}
	if err := store.ValidateDomain("domain", domain); err != nil {
		return err
	}
	if partition >= s.partitions {
		return store.Invalid("partition", "%d: the log has %d partitions", partition, s.partitions)
	}
	return nil
}

func logKey(domain string, partition uint32) string { return "az:log:" + tag(domain, partition) }

// isNoGroup reports whether err says the consumer group or its stream does
// not exist.
func isNoGroup(err error) bool {
	return err != nil && (strings.HasPrefix(err.Error(), "NOGROUP") || strings.Contains(err.Error(), "no such key"))
}

// OpenCheckpoint implements store.Checkpointer with XGROUP CREATE ... MKSTREAM
// at 0 (earliest) or $ (latest).
func (s *Store) OpenCheckpoint(ctx context.Context, subscriber, domain string, partition uint32, latest bool) (bool, error) {
	if err := s.checkArgs(subscriber, domain, partition); err != nil {
		return false, err
	}
	start := "0"
	if latest {
		start = "$"
	}
	err := s.c.XGroupCreateMkStream(ctx, logKey(domain, partition), subscriber, start).Err()
	if err != nil && strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return false, nil
	}
	if err != nil {
		return false, wrap("open checkpoint", err)
	}
	return true, nil
}

// Fetch implements store.Checkpointer: the pending entries, then new ones.
func (s *Store) Fetch(ctx context.Context, subscriber, domain string, partition uint32, limit int) ([]store.LogEntry, error) {
	if err := s.checkArgs(subscriber, domain, partition); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 1000
	}
	key := logKey(domain, partition)
	read := func(pipe goredis.Pipeliner, from string) *goredis.XStreamSliceCmd {
		return pipe.XReadGroup(ctx, &goredis.XReadGroupArgs{
			Group: subscriber, Consumer: consumer, Streams: []string{key, from}, Count: int64(limit), Block: -1,
		})
	}
	var (
		pipe goredis.Pipeliner
		conn *goredis.Conn
	)
	if s.confirm.enabled() {
		// The reads and the confirmation on one connection to the
		// partition's master (see confirmer).
		n, err := masterFor(ctx, s.c, key)
		if err != nil {
			return nil, wrap("fetch", err)
		}
		conn = n.Conn()
		defer conn.Close()
		pipe = conn.Pipeline()
	} else {
		pipe = s.c.Pipeline()
	}
	pending, fresh := read(pipe, "0"), read(pipe, ">")
	_, _ = pipe.Exec(ctx) // errors are looked at per command
	var msgs []goredis.XMessage
	for _, c := range []*goredis.XStreamSliceCmd{pending, fresh} {
		streams, err := c.Result()
		switch {
		case errors.Is(err, goredis.Nil):
			continue
		case isNoGroup(err):
			return nil, store.ErrNoCheckpoint
		case err != nil:
			if isRouting(err) {
				reloadState(s.c)
			}
			return nil, wrap("fetch", err)
		}
		for _, st := range streams {
			msgs = append(msgs, st.Messages...)
		}
	}
	if conn != nil && len(msgs) > 0 {
		// Deliver nothing a failover can still take back: the entries
		// stay pending until the replicas confirm them.
		confirm := conn.Pipeline()
		confirmed := s.confirm.queue(ctx, confirm, key)
		_, _ = confirm.Exec(ctx)
		if err := confirmed(); err != nil {
			if isRouting(err) {
				reloadState(s.c)
			}
			return nil, wrap("fetch", confirmFailed(err, entriesPending))
		}
	}
	return s.logEntries(ctx, domain, partition, msgs)
}

// Commit implements store.Checkpointer with XACK.
func (s *Store) Commit(ctx context.Context, subscriber, domain string, partition uint32, offsets []uint64) error {
	if err := s.checkArgs(subscriber, domain, partition); err != nil {
		return err
	}
	if len(offsets) == 0 {
		return nil
	}
	ids := make([]string, len(offsets))
	for i, o := range offsets {
		ids[i] = "0-" + strconv.FormatUint(o, 10)
	}
	err := s.c.XAck(ctx, logKey(domain, partition), subscriber, ids...).Err()
	if isNoGroup(err) {
		return store.ErrNoCheckpoint
	}
	return wrap("commit", err)
}

// Progress implements store.Checkpointer: the committed offset is the
// group's last delivered entry, or the one before its oldest pending entry
// (three reads, not atomic: a lower bound while the group is consumed).
func (s *Store) Progress(ctx context.Context, subscriber, domain string, partition uint32) (*pb.PartitionProgress, error) {
	if err := s.checkArgs(subscriber, domain, partition); err != nil {
		return nil, err
	}
	key := logKey(domain, partition)
	groups, err := s.c.XInfoGroups(ctx, key).Result()
	if isNoGroup(err) {
		return nil, store.ErrNoCheckpoint
	}
	if err != nil {
		return nil, wrap("progress", err)
	}
	var g *goredis.XInfoGroup
	for i := range groups {
		if groups[i].Name == subscriber {
			g = &groups[i]
		}
	}
	if g == nil {
		return nil, store.ErrNoCheckpoint
	}
	out := &pb.PartitionProgress{Domain: domain, Partition: partition}
	if out.Committed, err = offsetOf(g.LastDeliveredID); err != nil {
		return nil, err
	}
	if g.Pending > 0 {
		// Entries may have been acknowledged (or delivered) since XINFO:
		// the result is a lower bound either way.
		p, err := s.c.XPending(ctx, key, subscriber).Result()
		if err != nil {
			return nil, wrap("progress", err)
		}
		if p.Count > 0 {
			lower, err := offsetOf(p.Lower)
			if err != nil {
				return nil, err
			}
			out.Committed = min(out.Committed, lower-1)
		}
	}
	last, err := s.c.XRevRangeN(ctx, key, "+", "-", 1).Result()
	if err != nil {
		return nil, wrap("progress", err)
	}
	if len(last) == 1 {
		if out.End, err = offsetOf(last[0].ID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// offsetOf parses a log entry id 0-N.
func offsetOf(id string) (uint64, error) {
	n, ok := strings.CutPrefix(id, "0-")
	off, err := strconv.ParseUint(n, 10, 64)
	if !ok || err != nil {
		return 0, errors.New("redis: log entry id " + strconv.Quote(id) + " is not 0-N")
	}
	return off, nil
}

// resetScript recreates a consumer group at the start of its stream.
// KEYS: 1 stream. ARGV: 1 group.
var resetScript = goredis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('XGROUP', 'DESTROY', KEYS[1], ARGV[1]) end
redis.call('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
return 1
`)

// ResetCheckpoint implements store.Checkpointer: the group is destroyed
// (with its pending entries) and created again at 0, atomically.
func (s *Store) ResetCheckpoint(ctx context.Context, subscriber, domain string, partition uint32) error {
	if err := s.checkArgs(subscriber, domain, partition); err != nil {
		return err
	}
	return wrap("reset checkpoint", resetScript.Run(ctx, s.c, []string{logKey(domain, partition)}, subscriber).Err())
}
