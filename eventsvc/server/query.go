package server

import (
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// GetEvents implements angzarr.EventQuery: one aggregate's (selected)
// history, a correlation id's events across aggregates, or a whole domain's
// log, streamed in books of at most 1000 pages and (but for a single large
// page) maxBookBytes.
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
		pages, err := store.Select(ctx, s.store, q.agg, q.sel)
		if err != nil {
			return s.fail(ctx, "GetEvents", err)
		}
		for len(pages) > 0 {
			n := min(len(pages), batch)
			for _, b := range splitBooks([]*pb.EventBook{{Cover: q.agg.Cover(""), Pages: pages[:n]}}, maxBookBytes) {
				if err := stream.Send(b); err != nil {
					return err
				}
			}
			pages = pages[n:]
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
// every domain.
func (s *Server) ListRoots(req *pb.ListRootsRequest, stream pb.EventStore_ListRootsServer) error {
	ctx := stream.Context()
	if req.GetDomain() != "" {
		if err := store.ValidateDomain("domain", req.GetDomain()); err != nil {
			return s.fail(ctx, "ListRoots", err)
		}
	}
	roots, err := s.store.Roots(ctx, req.GetDomain())
	if err != nil {
		return s.fail(ctx, "ListRoots", err)
	}
	for _, r := range roots {
		if err := stream.Send(&pb.AggregateRoot{Domain: r.Domain, Root: &pb.UUID{Value: r.Root[:]}}); err != nil {
			return err
		}
	}
	return nil
}
