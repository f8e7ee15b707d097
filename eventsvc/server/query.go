package server

import (
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// GetEvents implements angzarr.EventQuery: one aggregate's (selected)
// history, a correlation id's events across aggregates, or a whole domain's
// log, streamed in books of at most 1000 pages and (but for a single large
// page) maxBookBytes; every book's cover carries the correlation id its
// pages were stored with.
func (s *Server) GetEvents(req *pb.Query, stream pb.EventQuery_GetEventsServer) error {
	ctx := stream.Context()
	q, err := parseQuery(req)
	if err == nil {
		err = checkAfter(s.store, q)
	}
	if err != nil {
		return s.fail(ctx, "GetEvents", err)
	}
	if req.GetRaw() {
		ctx = store.WithRaw(ctx) // as stored, past the domain's upcasters
	}
	if q.kind == byAggregate {
		// One book per run of pages stored with the same correlation id
		// (cover.correlation_id), cut every batch pages.
		books, err := store.Select(ctx, s.store, q.agg, q.sel)
		if err != nil {
			return s.fail(ctx, "GetEvents", err)
		}
		for _, b := range books {
			pages := b.GetPages()
			for len(pages) > 0 {
				n := min(len(pages), batch)
				for _, part := range splitBooks([]*pb.EventBook{{Cover: b.GetCover(), Pages: pages[:n]}}, maxBookBytes) {
					if err := stream.Send(part); err != nil {
						return err
					}
				}
				pages = pages[n:]
			}
		}
		return nil
	}
	if q.kind == byCorrelation && (q.sel.Set != nil || !q.sel.AsOf.IsZero()) {
		return s.fail(ctx, "GetEvents", store.Invalid("selection", "with a correlation id only a range or as_of_sequence applies"))
	}
	// A domain or a correlation id: read the feed until it is caught up.
	f := newFeed(s.store, q)
	for {
		books, _, err := f.next(ctx)
		if err != nil {
			return s.fail(ctx, "GetEvents", err)
		}
		if len(books) == 0 {
			return nil
		}
		for _, b := range books {
			if err := stream.Send(b); err != nil {
				return err
			}
		}
		if q.kind == byCorrelation {
			return nil // ByCorrelation returned everything at once
		}
	}
}

// GetAggregateRoots implements angzarr.EventQuery: every aggregate of every
// domain, sorted by domain and root.
func (s *Server) GetAggregateRoots(_ *emptypb.Empty, stream pb.EventQuery_GetAggregateRootsServer) error {
	return s.ListRoots(&pb.ListRootsRequest{}, stream)
}

// ListRoots implements angzarr.EventStore: the roots of one domain or of
// every domain, a page of them or all of them, read from the store a page
// at a time (never every root at once).
func (s *Server) ListRoots(req *pb.ListRootsRequest, stream pb.EventStore_ListRootsServer) error {
	ctx := stream.Context()
	after, err := checkListRoots(req)
	if err != nil {
		return s.fail(ctx, "ListRoots", err)
	}
	left := int(req.GetLimit()) // 0: all
	for {
		n := store.RootsLimit
		if req.GetLimit() > 0 {
			n = left
		}
		roots, err := s.store.Roots(ctx, req.GetDomain(), after, n)
		if err != nil {
			return s.fail(ctx, "ListRoots", err)
		}
		for _, r := range roots {
			if err := stream.Send(&pb.AggregateRoot{Domain: r.Domain, Root: &pb.UUID{Value: r.Root[:]}}); err != nil {
				return err
			}
		}
		left -= len(roots)
		if len(roots) < n || req.GetLimit() > 0 && left <= 0 {
			return nil
		}
		after = roots[len(roots)-1]
	}
}

// checkListRoots validates a ListRoots request and returns its cursor.
func checkListRoots(req *pb.ListRootsRequest) (store.Aggregate, error) {
	if req.GetDomain() != "" {
		if err := store.ValidateDomain("domain", req.GetDomain()); err != nil {
			return store.Aggregate{}, err
		}
	}
	if req.GetLimit() > store.RootsLimit {
		return store.Aggregate{}, store.Invalid("limit", "at most %d, not %d", store.RootsLimit, req.GetLimit())
	}
	a := req.GetAfter()
	if a == nil {
		return store.Aggregate{}, nil
	}
	if err := store.ValidateDomain("after.domain", a.GetDomain()); err != nil {
		return store.Aggregate{}, err
	}
	if req.GetDomain() != "" && a.GetDomain() != req.GetDomain() {
		return store.Aggregate{}, store.Invalid("after.domain", "%q is not the listed domain %q", a.GetDomain(), req.GetDomain())
	}
	if len(a.GetRoot().GetValue()) != 16 {
		return store.Aggregate{}, store.Invalid("after.root", "must be 16 bytes, not %d", len(a.GetRoot().GetValue()))
	}
	return store.Aggregate{Domain: a.GetDomain(), Root: [16]byte(a.GetRoot().GetValue())}, nil
}
