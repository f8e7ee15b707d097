package fanout

import (
	"context"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
)

// NotifyingStore wraps the store the event service's gRPC server appends
// through, so that every stored append wakes the dispatcher's workers of
// its domain at once instead of at their next poll. (The deliveries'
// trace context needs no help from it: it is stored with the log entry,
// AppendRequest.Trace.)
type NotifyingStore struct {
	store.Store
	// D is the dispatcher to notify.
	D *Dispatcher
}

// Append implements store.Appender and notifies after a stored append.
func (s NotifyingStore) Append(ctx context.Context, req *store.AppendRequest) (*store.AppendResult, error) {
	res, err := s.Store.Append(ctx, req)
	if err == nil && !res.Duplicate && len(res.Pages) > 0 {
		s.D.Notify(req.Aggregate.Domain)
	}
	return res, err
}

// LoadEncoded implements store.EncodedLoader when the wrapped store does,
// and is its Load otherwise (so that a store that transforms pages and
// has no LoadEncoded is never passed by).
func (s NotifyingStore) LoadEncoded(ctx context.Context, agg store.Aggregate, q store.LoadQuery) (*store.Loaded, error) {
	if el, ok := s.Store.(store.EncodedLoader); ok {
		return el.LoadEncoded(ctx, agg, q)
	}
	return s.Store.Load(ctx, agg, q)
}
