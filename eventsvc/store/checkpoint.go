package store

import (
	"context"
	"errors"

	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// ErrNoCheckpoint is returned when a subscriber reads or commits a partition
// it has no checkpoint on (OpenCheckpoint was not called).
var ErrNoCheckpoint = errors.New("no checkpoint")

// Checkpointer keeps each fan-out subscriber's durable progress through the
// partitions of a domain's log, so delivery resumes where it stopped after a
// restart or a crash. Subscriber names follow the rules of domain names.
//
// The protocol is fetch, handle, commit: Fetch returns entries the subscriber
// has not committed, in log order; the caller handles them and commits the
// whole batch before it fetches again. Entries fetched but never committed
// (a crash) are returned again by the next Fetch: delivery is at least once.
type Checkpointer interface {
	// OpenCheckpoint makes sure the subscriber has a checkpoint on the
	// partition. A new checkpoint starts before the first entry of the log,
	// or after its current last entry when latest is set; an existing one is
	// kept. It reports whether it created one.
	OpenCheckpoint(ctx context.Context, subscriber, domain string, partition uint32, latest bool) (bool, error)
	// Fetch returns up to about limit entries after the subscriber's
	// checkpoint, in log order, each as a book with its position set (like
	// ReadLog) and the trace context its append was stored with.
	// ErrNoCheckpoint without a checkpoint. A store that replicates
	// returns only entries a failover cannot take back (ErrUnavailable
	// while its replicas have not confirmed them).
	Fetch(ctx context.Context, subscriber, domain string, partition uint32, limit int) ([]LogEntry, error)
	// Commit records that the subscriber handled the entries at offsets,
	// which are all of the entries of the last Fetch.
	Commit(ctx context.Context, subscriber, domain string, partition uint32, offsets []uint64) error
	// Progress reports the subscriber's checkpoint on the partition and the
	// partition's last offset; ErrNoCheckpoint without a checkpoint.
	Progress(ctx context.Context, subscriber, domain string, partition uint32) (*pb.PartitionProgress, error)
	// ResetCheckpoint moves the subscriber's checkpoint on the partition
	// before the first entry of the log (a rebuild), forgetting entries it
	// fetched and did not commit; it creates the checkpoint if needed.
	ResetCheckpoint(ctx context.Context, subscriber, domain string, partition uint32) error
}

// LogEntry is one entry of a domain's log as a fan-out subscriber fetches
// it (Checkpointer.Fetch).
type LogEntry struct {
	// Book is the entry: cover (domain, root, correlation id), pages and
	// position.
	Book *pb.EventBook
	// Trace is the trace context of the append that wrote the entry; zero
	// when the append had none (or was stored before backends kept it).
	Trace TraceContext
}
