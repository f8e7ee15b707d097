package store

import (
	"context"
	"math"
	"slices"
	"time"

	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Selection is which part of an aggregate's history a query wants.
type Selection struct {
	// Lo and Hi bound the sequences, both included.
	Lo, Hi uint32
	// Set, when non-nil, keeps only these sequences.
	Set []uint32
	// AsOf, when non-zero, keeps only pages created at or before it.
	AsOf time.Time
}

// All selects an aggregate's whole history.
func All() Selection { return Selection{Lo: 0, Hi: math.MaxUint32} }

// Select reads the selected pages of one aggregate, in sequence order, as
// books of consecutive pages with the same correlation id (see
// Reader.Range).
func Select(ctx context.Context, r Reader, agg Aggregate, sel Selection) ([]*pb.EventBook, error) {
	lo, hi := sel.Lo, sel.Hi
	if sel.Set != nil {
		if len(sel.Set) == 0 {
			return nil, nil
		}
		lo, hi = slices.Min(sel.Set), slices.Max(sel.Set)
	}
	if lo > hi {
		return nil, nil
	}
	books, err := r.Range(ctx, agg, lo, hi)
	if err != nil || (sel.Set == nil && sel.AsOf.IsZero()) {
		return books, err
	}
	var want map[uint32]bool
	if sel.Set != nil {
		want = make(map[uint32]bool, len(sel.Set))
		for _, s := range sel.Set {
			want[s] = true
		}
	}
	var out []*pb.EventBook
	for _, b := range books {
		for _, p := range b.GetPages() {
			if want != nil && !want[p.GetNum()] {
				continue
			}
			if !sel.AsOf.IsZero() && p.GetCreatedAt().AsTime().After(sel.AsOf) {
				continue
			}
			out = AppendPage(out, agg, b.GetCover().GetCorrelationId(), p)
		}
	}
	return out, nil
}
