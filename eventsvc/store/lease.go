package store

import (
	"context"
	"errors"
	"time"
)

// ErrFenced is returned by a fenced checkpoint call whose lease is no
// longer the partition's current one: the lease expired or another
// replica holds it with a newer fencing token. The caller must stop
// working on the partition; nothing was changed.
var ErrFenced = errors.New("partition lease lost (fenced)")

// Lease is a replica's hold on one partition of a domain's log: while it
// holds it, it alone fetches and commits the partition's checkpoints.
type Lease struct {
	// Domain and Partition name the partition.
	Domain    string
	Partition uint32
	// Owner is the holding replica's id (unique per process).
	Owner string
	// Token is the fencing token: it increases with every new holder of the
	// partition, so a holder that lost the lease is refused by it.
	Token uint64
}

// Leaser keeps partition leases and replica membership in the store, so
// that several event service replicas share the fan-out of a log: a
// lease lives for a TTL unless renewed, and fenced checkpoint calls are
// refused (ErrFenced) unless their lease is the current one. A store
// without it (SQLite) is single-node: its one dispatcher owns every
// partition.
type Leaser interface {
	// Heartbeat records owner as a live replica for ttl and returns the
	// live replicas (sorted), owner included.
	Heartbeat(ctx context.Context, owner string, ttl time.Duration) ([]string, error)
	// Leave removes owner from the live replicas at once.
	Leave(ctx context.Context, owner string) error
	// AcquireLease takes the partition's lease for owner for ttl when it is
	// free (never taken, expired or released) with a new fencing token, or
	// renews it when owner already holds it. ok is false when another
	// replica holds it.
	AcquireLease(ctx context.Context, domain string, partition uint32, owner string, ttl time.Duration) (l Lease, ok bool, err error)
	// RenewLease extends l for ttl; ErrFenced when l is not the current
	// lease any more.
	RenewLease(ctx context.Context, l Lease, ttl time.Duration) error
	// ReleaseLease gives l up (nothing when it is not current).
	ReleaseLease(ctx context.Context, l Lease) error
	// FetchFenced is Checkpointer.Fetch refused with ErrFenced unless l
	// is the partition's current lease, checked atomically with the read.
	FetchFenced(ctx context.Context, l Lease, subscriber string, limit int) ([]LogEntry, error)
	// CommitFenced is Checkpointer.Commit refused with ErrFenced unless l
	// is the partition's current lease, checked atomically with the
	// commit.
	CommitFenced(ctx context.Context, l Lease, subscriber string, offsets []uint64) error
}

// TailWatcher is implemented by stores with a blocking read of a log's
// tail (Redis XREAD BLOCK): WatchLog calls wake after every append to the
// partition made after it started (and after it recovers from an error,
// when appends may have been missed), until ctx is done. The first call
// of ready (may be nil) happens once the watch is in place: appends
// before it are not reported.
type TailWatcher interface {
	WatchLog(ctx context.Context, domain string, partition uint32, ready, wake func()) error
}

// LeaserOf returns s's fenced operations: s's own Leases() when s is a
// decorator (which passes its transformations on: upcasting, metrics),
// s when it is a Leaser, nil when the backend keeps no leases.
func LeaserOf(s any) Leaser {
	if d, ok := s.(interface{ Leases() Leaser }); ok {
		return d.Leases()
	}
	if l, ok := s.(Leaser); ok {
		return l
	}
	return nil
}

// TailWatcherOf returns s's blocking tail read: a decorator's Tail(), s
// when it is a TailWatcher, nil when there is none.
func TailWatcherOf(s any) TailWatcher {
	if d, ok := s.(interface{ Tail() TailWatcher }); ok {
		return d.Tail()
	}
	if w, ok := s.(TailWatcher); ok {
		return w
	}
	return nil
}
