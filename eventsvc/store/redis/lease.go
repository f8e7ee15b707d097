package redis

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
)

var _ store.Leaser = (*Store)(nil)

// Partition leases and replica membership (store.Leaser).
//
// A partition's lease is az:lease:{d:P} = "TOKEN OWNER" with a PX TTL: it
// disappears by itself when its holder stops renewing it (killed with -9).
// TOKEN comes from az:fence:{d:P}, a counter incremented by every new
// holder and never expired, so tokens only grow. Both keys carry the
// partition's hash tag, like its log stream az:log:{d:P}: the fenced
// fetch and commit check the lease and touch the stream's consumer group
// in one script, atomically, on the partition's node.
//
// The live replicas are az:members, a sorted set of owner ids scored by
// the time (the server's clock) their heartbeat expires.

const membersKey = "az:members"

func leaseKey(domain string, p uint32) string { return "az:lease:" + tag(domain, p) }
func fenceKey(domain string, p uint32) string { return "az:fence:" + tag(domain, p) }

// leaseValue is a lease as stored.
func leaseValue(l store.Lease) string {
	return strconv.FormatUint(l.Token, 10) + " " + l.Owner
}

// heartbeatScript records a replica and returns the live ones.
// KEYS: 1 members. ARGV: 1 owner, 2 ttl ms.
var heartbeatScript = goredis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return redis.call('ZRANGE', KEYS[1], 0, -1)
`)

// acquireScript takes a free lease with a new token or renews the
// caller's own; nil when another owner holds it.
// KEYS: 1 lease, 2 fence. ARGV: 1 owner, 2 ttl ms.
var acquireScript = goredis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur then
  local sep = string.find(cur, ' ', 1, true)
  if sep and string.sub(cur, sep + 1) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return string.sub(cur, 1, sep - 1)
  end
  return false
end
local t = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], t .. ' ' .. ARGV[1], 'PX', ARGV[2])
return tostring(t)
`)

// renewScript extends a lease if it is current. KEYS: 1 lease. ARGV: 1
// lease value, 2 ttl ms. Returns 1, or 0 when fenced.
var renewScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`)

// releaseScript deletes a lease if it is current. KEYS: 1 lease. ARGV: 1
// lease value.
var releaseScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// fencedFetchScript reads a group's pending entries, then new ones, if
// the lease is current. KEYS: 1 lease, 2 stream. ARGV: 1 lease value, 2
// group, 3 consumer, 4 count.
var fencedFetchScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('FENCED lease lost') end
local p = redis.call('XREADGROUP', 'GROUP', ARGV[2], ARGV[3], 'COUNT', ARGV[4], 'STREAMS', KEYS[2], '0')
local f = redis.call('XREADGROUP', 'GROUP', ARGV[2], ARGV[3], 'COUNT', ARGV[4], 'STREAMS', KEYS[2], '>')
return {p, f}
`)

// fencedCommitScript acknowledges entries if the lease is current.
// KEYS: 1 lease, 2 stream. ARGV: 1 lease value, 2 group, 3... ids.
var fencedCommitScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('FENCED lease lost') end
return redis.call('XACK', KEYS[2], ARGV[2], unpack(ARGV, 3))
`)

func isFenced(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "FENCED") }

func isNoGroupReply(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "NOGROUP") || strings.Contains(err.Error(), "no such key"))
}

// checkOwner validates a replica id: it is stored in "TOKEN OWNER".
func checkOwner(owner string) error {
	if owner == "" || len(owner) > 200 || strings.ContainsAny(owner, " \t\r\n") {
		return store.Invalid("owner", "%q: want 1 to 200 characters without spaces", owner)
	}
	return nil
}

func checkTTL(ttl time.Duration) error {
	if ttl < time.Millisecond {
		return store.Invalid("ttl", "%v: want at least 1ms", ttl)
	}
	return nil
}

// Heartbeat implements store.Leaser.
func (s *Store) Heartbeat(ctx context.Context, owner string, ttl time.Duration) ([]string, error) {
	if err := errors.Join(checkOwner(owner), checkTTL(ttl)); err != nil {
		return nil, err
	}
	members, err := heartbeatScript.Run(ctx, s.c, []string{membersKey}, owner, ttl.Milliseconds()).StringSlice()
	if err != nil {
		return nil, wrap("heartbeat", err)
	}
	slices.Sort(members)
	return members, nil
}

// Leave implements store.Leaser.
func (s *Store) Leave(ctx context.Context, owner string) error {
	return wrap("leave", s.c.ZRem(ctx, membersKey, owner).Err())
}

// AcquireLease implements store.Leaser.
func (s *Store) AcquireLease(ctx context.Context, domain string, partition uint32, owner string, ttl time.Duration) (store.Lease, bool, error) {
	if err := errors.Join(s.checkArgs("lease", domain, partition), checkOwner(owner), checkTTL(ttl)); err != nil {
		return store.Lease{}, false, err
	}
	tok, err := acquireScript.Run(ctx, s.c, []string{leaseKey(domain, partition), fenceKey(domain, partition)}, owner, ttl.Milliseconds()).Text()
	if errors.Is(err, goredis.Nil) {
		return store.Lease{}, false, nil
	}
	if err != nil {
		return store.Lease{}, false, wrap("acquire lease", err)
	}
	t, err := strconv.ParseUint(tok, 10, 64)
	if err != nil {
		return store.Lease{}, false, errors.New("redis: corrupt lease token " + strconv.Quote(tok))
	}
	return store.Lease{Domain: domain, Partition: partition, Owner: owner, Token: t}, true, nil
}

// RenewLease implements store.Leaser.
func (s *Store) RenewLease(ctx context.Context, l store.Lease, ttl time.Duration) error {
	if err := errors.Join(s.checkArgs("lease", l.Domain, l.Partition), checkTTL(ttl)); err != nil {
		return err
	}
	n, err := renewScript.Run(ctx, s.c, []string{leaseKey(l.Domain, l.Partition)}, leaseValue(l), ttl.Milliseconds()).Int()
	if err != nil {
		return wrap("renew lease", err)
	}
	if n == 0 {
		return store.ErrFenced
	}
	return nil
}

// ReleaseLease implements store.Leaser.
func (s *Store) ReleaseLease(ctx context.Context, l store.Lease) error {
	if err := s.checkArgs("lease", l.Domain, l.Partition); err != nil {
		return err
	}
	return wrap("release lease", releaseScript.Run(ctx, s.c, []string{leaseKey(l.Domain, l.Partition)}, leaseValue(l)).Err())
}

// FetchFenced implements store.Leaser: Fetch in one script that checks
// the lease first.
func (s *Store) FetchFenced(ctx context.Context, l store.Lease, subscriber string, limit int) ([]store.LogEntry, error) {
	if err := s.checkArgs(subscriber, l.Domain, l.Partition); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 1000
	}
	keys := []string{leaseKey(l.Domain, l.Partition), logKey(l.Domain, l.Partition)}
	var (
		res  []any
		err  error
		conn *goredis.Conn
	)
	if s.confirm.enabled() {
		// As Fetch: the read and the replicas' confirmation on one
		// connection to the partition's master, and nothing delivered
		// that a failover can still take back (see confirmer).
		n, merr := masterFor(ctx, s.c, keys[1])
		if merr != nil {
			return nil, wrap("fetch", merr)
		}
		conn = n.Conn()
		defer conn.Close()
		res, err = fencedFetchScript.Run(ctx, conn, keys, leaseValue(l), subscriber, consumer, limit).Slice()
	} else {
		res, err = fencedFetchScript.Run(ctx, s.c, keys, leaseValue(l), subscriber, consumer, limit).Slice()
	}
	switch {
	case isFenced(err):
		return nil, store.ErrFenced
	case isNoGroupReply(err):
		return nil, store.ErrNoCheckpoint
	case err != nil:
		return nil, wrap("fetch", err)
	}
	var msgs []goredis.XMessage
	for _, r := range res {
		m, err := parseStreamsReply(r)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, m...)
	}
	if conn != nil && len(msgs) > 0 {
		confirm := conn.Pipeline()
		confirmed := s.confirm.queue(ctx, confirm, keys[1])
		_, _ = confirm.Exec(ctx)
		if err := confirmed(); err != nil {
			if isRouting(err) {
				reloadState(s.c)
			}
			return nil, wrap("fetch", confirmFailed(err, entriesPending))
		}
	}
	return s.logEntries(ctx, l.Domain, l.Partition, msgs)
}

// CommitFenced implements store.Leaser: XACK in one script that checks
// the lease first.
func (s *Store) CommitFenced(ctx context.Context, l store.Lease, subscriber string, offsets []uint64) error {
	if err := s.checkArgs(subscriber, l.Domain, l.Partition); err != nil {
		return err
	}
	args := make([]any, 0, len(offsets)+2)
	args = append(args, leaseValue(l), subscriber)
	for _, o := range offsets {
		args = append(args, "0-"+strconv.FormatUint(o, 10))
	}
	if len(offsets) == 0 {
		// Nothing to acknowledge, but the caller still learns whether it
		// holds the lease.
		n, err := s.c.Get(ctx, leaseKey(l.Domain, l.Partition)).Result()
		if errors.Is(err, goredis.Nil) || (err == nil && n != leaseValue(l)) {
			return store.ErrFenced
		}
		return wrap("commit", err)
	}
	err := fencedCommitScript.Run(ctx, s.c, []string{leaseKey(l.Domain, l.Partition), logKey(l.Domain, l.Partition)}, args...).Err()
	switch {
	case isFenced(err):
		return store.ErrFenced
	case isNoGroupReply(err):
		return store.ErrNoCheckpoint
	}
	return wrap("commit", err)
}

// parseStreamsReply decodes an XREAD(GROUP) reply returned by a script:
// nil, or [[stream, [[id, [field, value, ...]], ...]], ...].
func parseStreamsReply(r any) ([]goredis.XMessage, error) {
	if r == nil {
		return nil, nil
	}
	bad := errors.New("redis: unexpected stream reply from the fenced fetch")
	streams, ok := r.([]any)
	if !ok {
		return nil, bad
	}
	var out []goredis.XMessage
	for _, st := range streams {
		pair, ok := st.([]any)
		if !ok || len(pair) != 2 {
			return nil, bad
		}
		entries, ok := pair[1].([]any)
		if !ok {
			return nil, bad
		}
		for _, e := range entries {
			idf, ok := e.([]any)
			if !ok || len(idf) != 2 {
				return nil, bad
			}
			id, ok := idf[0].(string)
			if !ok {
				return nil, bad
			}
			m := goredis.XMessage{ID: id, Values: map[string]any{}}
			fields, _ := idf[1].([]any) // nil for an entry deleted while pending
			for i := 0; i+1 < len(fields); i += 2 {
				k, _ := fields[i].(string)
				m.Values[k] = fields[i+1]
			}
			out = append(out, m)
		}
	}
	return out, nil
}
