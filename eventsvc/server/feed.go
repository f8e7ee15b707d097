package server

import (
	"context"
	"math"

	"google.golang.org/protobuf/proto"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// batch is the most pages or log entries one read of a feed returns.
const batch = 1000

// feed reads what was stored after its cursor and moves the cursor past it.
// A feed never returns a page twice and never skips one: its cursor only
// moves past what it returned.
type feed interface {
	// next returns the books stored after the cursor (nil when caught up)
	// and whether the feed has reached its end (a range's upper bound).
	next(ctx context.Context) ([]*pb.EventBook, bool, error)
}

// newFeed returns the feed for a validated query.
func newFeed(st store.Store, q *query) feed {
	return splitFeed{newFeedOf(st, q)}
}

func newFeedOf(st store.Store, q *query) feed {
	switch q.kind {
	case byAggregate:
		return &aggregateFeed{st: st, agg: q.agg, cursor: q.sel.Lo, hi: q.sel.Hi}
	case byDomain:
		f := &domainFeed{st: st, domain: q.domain, cursors: make([]uint64, st.Partitions())}
		for p, off := range q.after {
			f.cursors[p] = off // checkAfter made sure p is in range
		}
		return f
	default:
		return &correlationFeed{st: st, q: q, sent: map[store.Aggregate]uint32{}}
	}
}

// checkAfter refuses resume positions in partitions the store does not have.
func checkAfter(st store.Store, q *query) error {
	for p := range q.after {
		if p >= st.Partitions() {
			return store.Invalid("after", "partition %d: the log has %d partitions", p, st.Partitions())
		}
	}
	return nil
}

// maxBookBytes bounds the books a feed returns (but one page is never
// split): a long run of one aggregate's large events is sent as several
// books, each well below gRPC's usual 4 MiB message limit.
const maxBookBytes = store.DefaultLoadPageBytes

// splitFeed cuts the books of its feed that have no log position (an
// aggregate's or a correlation id's runs of pages) into books of at most
// maxBookBytes. A book of the domain log stays whole: its position says
// where a reader resumes, after the whole append, and an append is
// bounded by the request that stored it.
type splitFeed struct{ feed }

func (f splitFeed) next(ctx context.Context) ([]*pb.EventBook, bool, error) {
	books, done, err := f.feed.next(ctx)
	return splitBooks(books, maxBookBytes), done, err
}

// splitBooks returns books with every book without a position that holds
// more than maxBytes of pages cut into books of consecutive pages (each
// with the cover) of at most maxBytes, or of one page.
func splitBooks(books []*pb.EventBook, maxBytes int) []*pb.EventBook {
	var out []*pb.EventBook
	for i, b := range books {
		if b.GetPosition() != nil || proto.Size(b) <= maxBytes {
			if out != nil {
				out = append(out, b)
			}
			continue
		}
		if out == nil {
			out = append(make([]*pb.EventBook, 0, len(books)+1), books[:i]...)
		}
		var cur []*pb.EventPage
		size := 0
		for _, p := range b.GetPages() {
			n := proto.Size(p) + 8
			if len(cur) > 0 && size+n > maxBytes {
				out = append(out, &pb.EventBook{Cover: b.GetCover(), Pages: cur})
				cur, size = nil, 0
			}
			cur = append(cur, p)
			size += n
		}
		out = append(out, &pb.EventBook{Cover: b.GetCover(), Pages: cur})
	}
	if out == nil {
		return books
	}
	return out
}

// aggregateFeed follows one aggregate by sequence.
type aggregateFeed struct {
	st     store.Store
	agg    store.Aggregate
	cursor uint32 // next sequence to send
	hi     uint32 // last sequence wanted
	done   bool
}

func (f *aggregateFeed) next(ctx context.Context) ([]*pb.EventBook, bool, error) {
	if f.done || f.cursor > f.hi {
		return nil, true, nil
	}
	hi := f.hi
	if uint64(f.cursor)+batch-1 < uint64(hi) {
		hi = f.cursor + batch - 1
	}
	books, err := f.st.Range(ctx, f.agg, f.cursor, hi)
	if err != nil || len(books) == 0 {
		return nil, false, err
	}
	lastBook := books[len(books)-1].GetPages()
	last := lastBook[len(lastBook)-1].GetNum()
	if last == math.MaxUint32 || last >= f.hi {
		f.done = true
	} else {
		f.cursor = last + 1
	}
	return books, f.done, nil
}

// domainFeed follows every partition of a domain's log by offset.
type domainFeed struct {
	st      store.Store
	domain  string
	cursors []uint64 // last offset sent, per partition
}

func (f *domainFeed) next(ctx context.Context) ([]*pb.EventBook, bool, error) {
	var out []*pb.EventBook
	for p := range f.cursors {
		books, err := f.st.ReadLog(ctx, f.domain, uint32(p), f.cursors[p], batch)
		if err != nil {
			return out, false, err
		}
		if len(books) > 0 {
			f.cursors[p] = books[len(books)-1].GetPosition().GetOffset()
			out = append(out, books...)
		}
	}
	return out, false, nil
}

// correlationFeed follows a correlation id by the highest sequence sent per
// aggregate: pages are only ever appended at an aggregate's end.
type correlationFeed struct {
	st   store.Store
	q    *query
	sent map[store.Aggregate]uint32 // next sequence not yet sent
}

func (f *correlationFeed) next(ctx context.Context) ([]*pb.EventBook, bool, error) {
	books, err := f.st.ByCorrelation(ctx, f.q.cid)
	if err != nil {
		return nil, false, err
	}
	var out []*pb.EventBook
	for _, b := range books {
		agg := store.Aggregate{Domain: b.GetCover().GetDomain(), Root: [16]byte(b.GetCover().GetRoot().GetValue())}
		if f.q.narrowed && agg != f.q.agg || f.q.domain != "" && agg.Domain != f.q.domain {
			continue
		}
		var pages []*pb.EventPage
		for _, p := range b.GetPages() {
			if p.GetNum() >= f.sent[agg] && p.GetNum() >= f.q.sel.Lo && p.GetNum() <= f.q.sel.Hi {
				pages = append(pages, p)
			}
		}
		if len(pages) == 0 {
			continue
		}
		f.sent[agg] = pages[len(pages)-1].GetNum() + 1
		out = append(out, &pb.EventBook{Cover: b.GetCover(), Pages: pages})
	}
	return out, false, nil
}
