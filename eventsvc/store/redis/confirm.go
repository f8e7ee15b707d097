package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
)

// DefaultReplicaTimeout is how long a batch waits for its replicas when
// Options.ReplicaTimeout is zero.
const DefaultReplicaTimeout = time.Second

// confirmer makes a master's replicas confirm what a connection wrote and
// read: WAIT numreplicas timeout (WAITAOF 0 numreplicas timeout where the
// servers have it, 7.2 and later: the replicas have also written it to
// their append-only file). WAIT counts the replicas that acknowledged the
// replication offset of the connection's last write, so the confirmation
// goes on the same connection, after a write of its own (INCR of the
// slot's az:confirm key): the offset then covers every write the master
// made before, including the appends that were read (a duplicate, a load,
// a log entry) rather than written by this connection.
type confirmer struct {
	replicas int
	timeout  time.Duration
	aof      bool // WAITAOF
}

// enabled reports whether replicas must confirm.
func (cf *confirmer) enabled() bool { return cf != nil && cf.replicas > 0 }

// queue adds the confirmation of everything before it on pipe's
// connection: the marker write in the slot of key, then WAIT or WAITAOF.
func (cf *confirmer) queue(ctx context.Context, pipe goredis.Pipeliner, key string) func() error {
	pipe.Incr(ctx, confirmKey(key))
	ms := cf.timeout.Milliseconds()
	if cf.aof {
		cmd := pipe.Do(ctx, "waitaof", 0, cf.replicas, ms)
		return func() error {
			v, err := cmd.Int64Slice()
			if err != nil {
				return err
			}
			if len(v) != 2 {
				return fmt.Errorf("WAITAOF replied %v", v)
			}
			return cf.check(int(v[1]))
		}
	}
	cmd := pipe.Do(ctx, "wait", cf.replicas, ms)
	return func() error {
		n, err := cmd.Int64()
		if err != nil {
			return err
		}
		return cf.check(int(n))
	}
}

// check answers a confirmation by n replicas.
func (cf *confirmer) check(n int) error {
	if n >= cf.replicas {
		return nil
	}
	return &NotConfirmedError{Replicas: n, Want: cf.replicas, Timeout: cf.timeout}
}

// NotConfirmedError says that fewer replicas than required confirmed a
// write within the timeout. The write is on the master and may reach the
// replicas later, or be lost if the master fails over before: the outcome
// is unknown. The store answers it wrapped as an ErrUnavailable; a retry
// with the same idempotency key or expected sequence is safe (it stores
// nothing twice, and answers only once replicas confirm).
type NotConfirmedError struct {
	Replicas, Want int
	Timeout        time.Duration
}

func (e *NotConfirmedError) Error() string {
	return fmt.Sprintf("redis: %d of %d replicas confirmed within %s", e.Replicas, e.Want, e.Timeout)
}

// confirmKey is the marker key in the slot of key (whose hash tag is
// {domain:partition}).
func confirmKey(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i:], '}'); j > 0 {
			return "az:confirm:" + key[i:i+j+1]
		}
	}
	return "az:confirm:{" + key + "}"
}

// masterFor returns the client of the master that serves key: the one
// server, or the cluster node of key's slot.
func masterFor(ctx context.Context, c goredis.UniversalClient, key string) (*goredis.Client, error) {
	switch c := c.(type) {
	case *goredis.Client:
		return c, nil
	case *goredis.ClusterClient:
		return c.MasterForKey(ctx, key)
	}
	return nil, fmt.Errorf("redis: unsupported client %T", c)
}

// detectWaitAOF reports whether every master has WAITAOF (Redis 7.2 and
// later): the store then waits with it, otherwise with WAIT.
func detectWaitAOF(ctx context.Context, c goredis.UniversalClient) (bool, error) {
	all := true
	check := func(ctx context.Context, n *goredis.Client) error {
		info, err := n.Info(ctx, "server").Result()
		if err != nil {
			return err
		}
		if !versionAtLeast(infoField(info, "redis_version"), 7, 2) {
			all = false
		}
		return nil
	}
	var err error
	if cc, ok := c.(*goredis.ClusterClient); ok {
		var mu sync.Mutex
		err = cc.ForEachMaster(ctx, func(ctx context.Context, n *goredis.Client) error {
			mu.Lock()
			defer mu.Unlock()
			return check(ctx, n)
		})
	} else {
		err = check(ctx, c.(*goredis.Client))
	}
	return all && err == nil, err
}

// infoField returns the value of field in an INFO reply.
func infoField(info, field string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v
		}
	}
	return ""
}

// versionAtLeast reports whether version v (e.g. "7.0.15") is at least
// major.minor.
func versionAtLeast(v string, major, minor int) bool {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}

// Consequences of a failed confirmation, for confirmFailed.
const (
	appendUnknown  = "the append may or may not be stored; a retry with the same idempotency key or expected sequence is safe"
	entriesPending = "the log entries are not delivered yet"
)

// confirmFailed turns the failure of a confirmation into the answer to
// the calls it covered, an ErrUnavailable saying what it means for them.
func confirmFailed(err error, consequence string) error {
	return store.Unavailable(fmt.Errorf("%w: %s", err, consequence))
}

// isRouting reports whether err says the cluster's layout changed or a
// node is gone (the client's slot map may be stale).
func isRouting(err error) bool {
	var rerr goredis.Error
	if !errors.As(err, &rerr) {
		return true // a connection problem
	}
	msg := rerr.Error()
	for _, p := range []string{"MOVED ", "ASK ", "CLUSTERDOWN", "READONLY", "MASTERDOWN"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// reloadState makes a cluster client read the slot map again (in the
// background).
func reloadState(c goredis.UniversalClient) {
	if cc, ok := c.(*goredis.ClusterClient); ok {
		cc.ReloadState(context.Background())
	}
}
