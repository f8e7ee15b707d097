package fanout

import (
	"context"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
)

// NotifyingStore wraps the store the event service's gRPC server appends
// through, so that every stored append wakes the dispatcher's workers of
// its domain at once instead of at their next poll, and its deliveries
// continue the append's trace (Dispatcher.Appended).
type NotifyingStore struct {
	store.Store
	// D is the dispatcher to notify.
	D *Dispatcher
}

// Append implements store.Appender and notifies after a stored append.
func (s NotifyingStore) Append(ctx context.Context, req *store.AppendRequest) (*store.AppendResult, error) {
	// Between the store's commit and Appended a worker could fetch the entry
	// without its trace link; workers settle (wait for appends in flight)
	// after each fetch, so the link is always there when they deliver.
	s.D.linking.RLock()
	res, err := s.Store.Append(ctx, req)
	stored := err == nil && !res.Duplicate && len(res.Pages) > 0
	if stored {
		s.D.Appended(ctx, req.Aggregate.Domain, res.Position)
	}
	s.D.linking.RUnlock()
	if stored {
		s.D.Notify(req.Aggregate.Domain)
	}
	return res, err
}
