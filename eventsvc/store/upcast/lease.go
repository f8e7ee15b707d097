package upcast

import (
	"context"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
)

// Leases returns the backend's partition leases (store.LeaserOf) with
// the fenced fetch upcast like Fetch; nil when the backend keeps none.
func (s *Store) Leases() store.Leaser {
	l := store.LeaserOf(s.Backend)
	if l == nil {
		return nil
	}
	return leaser{Leaser: l, s: s}
}

// Tail returns the backend's blocking tail read (store.TailWatcherOf).
func (s *Store) Tail() store.TailWatcher { return store.TailWatcherOf(s.Backend) }

type leaser struct {
	store.Leaser
	s *Store
}

// FetchFenced implements store.Leaser: sagas and projectors get current
// versions.
func (l leaser) FetchFenced(ctx context.Context, lease store.Lease, subscriber string, limit int) ([]store.LogEntry, error) {
	entries, err := l.Leaser.FetchFenced(ctx, lease, subscriber, limit)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if err := l.s.t.pages(ctx, e.Book.GetCover().GetDomain(), e.Book.GetPages()); err != nil {
			return nil, err
		}
	}
	return entries, nil
}
