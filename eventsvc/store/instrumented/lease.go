package instrumented

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
)

// Leases returns the backend's partition leases (store.LeaserOf) with
// the fenced fetch and commit measured like Fetch and Commit; nil when
// the backend keeps none.
func (s *Store) Leases() store.Leaser {
	l := store.LeaserOf(s.inner)
	if l == nil {
		return nil
	}
	return leaser{Leaser: l, s: s}
}

// Tail returns the backend's blocking tail read (store.TailWatcherOf).
func (s *Store) Tail() store.TailWatcher { return store.TailWatcherOf(s.inner) }

type leaser struct {
	store.Leaser
	s *Store
}

func (l leaser) FetchFenced(ctx context.Context, lease store.Lease, subscriber string, limit int) ([]store.LogEntry, error) {
	start := time.Now()
	entries, err := l.Leaser.FetchFenced(ctx, lease, subscriber, limit)
	l.s.metrics.observe(ctx, opFetch, start, Outcome(err))
	return entries, err
}

func (l leaser) CommitFenced(ctx context.Context, lease store.Lease, subscriber string, offsets []uint64) error {
	start := time.Now()
	err := l.Leaser.CommitFenced(ctx, lease, subscriber, offsets)
	outcome := Outcome(err)
	l.s.metrics.observe(ctx, opCommit, start, outcome)
	l.s.metrics.count(ctx, l.s.metrics.positions, 1, lease.Domain, attribute.String("subscriber", subscriber), attribute.String("outcome", outcome))
	return err
}
