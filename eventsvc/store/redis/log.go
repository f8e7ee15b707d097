package redis

import (
	"context"
	"fmt"
	"strconv"

	"github.com/google/uuid"
	goredis "github.com/redis/go-redis/v9"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// ReadLog implements store.LogReader: XRANGE on the partition's stream, then
// the referenced pages (pipelined, same slot).
func (s *Store) ReadLog(ctx context.Context, domain string, partition uint32, after uint64, limit int) ([]*pb.EventBook, error) {
	if err := store.ValidateDomain("domain", domain); err != nil {
		return nil, err
	}
	if partition >= s.partitions {
		return nil, store.Invalid("partition", "%d: the log has %d partitions", partition, s.partitions)
	}
	if limit <= 0 {
		limit = 1000
	}
	start := "-"
	if after > 0 {
		start = "(0-" + strconv.FormatUint(after, 10)
	}
	key := "az:log:" + tag(domain, partition)
	var msgs []goredis.XMessage
	var err error
	if s.confirm.enabled() {
		msgs, err = s.readLogConfirmed(ctx, key, start, limit)
	} else {
		msgs, err = s.c.XRangeN(ctx, key, start, "+", int64(limit)).Result()
	}
	if err != nil {
		return nil, wrap("read log", err)
	}
	entries, err := s.logEntries(ctx, domain, partition, msgs)
	if err != nil {
		return nil, err
	}
	books := make([]*pb.EventBook, len(entries))
	for i, e := range entries {
		books[i] = e.Book
	}
	return books, nil
}

// readLogConfirmed reads log entries on the partition's master and, on
// the same connection, has the replicas confirm them before it returns
// them (see confirmer): subscribers never see an entry a failover can
// take back.
func (s *Store) readLogConfirmed(ctx context.Context, key, start string, limit int) ([]goredis.XMessage, error) {
	n, err := masterFor(ctx, s.c, key)
	if err != nil {
		return nil, err
	}
	conn := n.Conn()
	defer conn.Close()
	msgs, err := conn.XRangeN(ctx, key, start, "+", int64(limit)).Result()
	if err != nil || len(msgs) == 0 {
		if err != nil && isRouting(err) {
			reloadState(s.c)
		}
		return msgs, err
	}
	pipe := conn.Pipeline()
	confirmed := s.confirm.queue(ctx, pipe, key)
	_, _ = pipe.Exec(ctx)
	if err := confirmed(); err != nil {
		if isRouting(err) {
			reloadState(s.c)
		}
		return nil, confirmFailed(err, entriesPending)
	}
	return msgs, nil
}

// logEntries turns log stream entries into books with their pages (read in
// one pipeline, same slot) and the trace contexts of their appends.
func (s *Store) logEntries(ctx context.Context, domain string, partition uint32, msgs []goredis.XMessage) ([]store.LogEntry, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	var err error
	entries := make([]store.LogEntry, len(msgs))
	cmds := make([]*goredis.StringSliceCmd, len(msgs))
	firsts := make([]uint32, len(msgs))
	pipe := s.c.Pipeline()
	for i, m := range msgs {
		if len(m.ID) < 3 || m.ID[:2] != "0-" {
			return nil, fmt.Errorf("redis: log entry id %q is not 0-N", m.ID)
		}
		root, _ := m.Values["r"].(string)
		cid, _ := m.Values["c"].(string)
		first, err1 := strconv.ParseUint(str(m.Values["s"]), 10, 32)
		n, err2 := strconv.ParseUint(str(m.Values["n"]), 10, 32)
		off, err3 := strconv.ParseUint(m.ID[len("0-"):], 10, 64)
		if len(root) != 16 || err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("redis: corrupt log entry %s %v", m.ID, m.Values)
		}
		agg := store.Aggregate{Domain: domain, Root: uuid.UUID([]byte(root))}
		entries[i] = store.LogEntry{
			Book:  &pb.EventBook{Cover: agg.Cover(cid), Position: &pb.LogPosition{Partition: partition, Offset: off}},
			Trace: store.TraceContext{Traceparent: str(m.Values["tp"]), Tracestate: str(m.Values["tst"])},
		}
		firsts[i] = uint32(first)
		cmds[i] = pipe.LRange(ctx, eventsKey(domain, partition, agg.Root[:]), int64(first), int64(first+n-1))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, wrap("read logged events", err)
	}
	for i, c := range cmds {
		if entries[i].Book.Pages, err = decodePages(firsts[i], c.Val()); err != nil {
			return nil, wrap("decode events", err)
		}
	}
	return entries, nil
}

func str(v any) string { s, _ := v.(string); return s }
