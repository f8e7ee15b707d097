package store

import (
	"bytes"
	"context"
	"strings"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/anypb"

	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Store is a storage backend of the event service.
type Store interface {
	Appender
	Loader
	Reader
	LogReader
	// Close releases the backend's connections.
	Close() error
}

// Appender stores new events.
type Appender interface {
	// Append stores the request's pages (all or none) if the aggregate's next
	// sequence is the expected one, or returns a *ConflictError.
	Append(ctx context.Context, req *AppendRequest) (*AppendResult, error)
}

// Loader loads an aggregate's current history.
type Loader interface {
	// Load returns the latest snapshot, the events after it and the next
	// sequence; with a non-empty q.IdempotencyKey also the earlier append
	// made with that key (Loaded.Prior), if any. q.MaxBytes bounds the
	// page and q.From continues a paged history (see LoadQuery).
	Load(ctx context.Context, agg Aggregate, q LoadQuery) (*Loaded, error)
}

// LoadQuery says which part of an aggregate's history a load returns.
type LoadQuery struct {
	// IdempotencyKey, when set (and From is 0), also looks up the earlier
	// append made with it.
	IdempotencyKey string
	// From 0 loads the first page: the latest snapshot and the events
	// after it. Otherwise the load is a continuation: the events with
	// From <= sequence < To only, with no snapshot and no idempotency
	// lookup; Loaded.Next is then To.
	From, To uint32
	// MaxBytes bounds a page: events are added while the page's bytes (the
	// snapshot's state and the stored events; store.EventBytes) stay within
	// it, but a page carries at least one event whenever one remains, so
	// that paging always progresses (one event is at most
	// Limits.MaxEventBytes). Loaded.More says where the rest begins. 0:
	// no bound, the whole history in one page.
	MaxBytes int
}

// EncodedLoader is a Loader that can also hand a history on in its wire
// form, for the gRPC server to send without decoding it (Loaded.Encoded).
// Both backends implement it. A decorator forwards LoadEncoded only if it
// leaves pages as they are; one that transforms pages (upcasting) must not
// implement it, or must decode, transform and re-encode: the server then
// falls back to Load, so that nothing passes it by.
type EncodedLoader interface {
	// LoadEncoded is Load with the pages in Loaded.Encoded (and
	// EncodedCount) instead of Loaded.Pages; Prior keeps decoded pages.
	LoadEncoded(ctx context.Context, agg Aggregate, q LoadQuery) (*Loaded, error)
}

// Reader answers event queries.
type Reader interface {
	// Range returns the aggregate's pages with lo <= sequence <= hi, in
	// sequence order (hi may be math.MaxUint32 for "to the end"), as books
	// of consecutive pages stored with the same correlation id: each book's
	// cover is the aggregate's with that correlation id (AppendPage builds
	// them; Pages flattens them again).
	Range(ctx context.Context, agg Aggregate, lo, hi uint32) ([]*pb.EventBook, error)
	// ByCorrelation returns every page stored with the correlation id, across
	// aggregates and domains, in append order, as books of consecutive pages
	// of one aggregate (cover.correlation_id set).
	ByCorrelation(ctx context.Context, correlationID string) ([]*pb.EventBook, error)
	// Roots lists the aggregates of a domain, or of every domain when domain
	// is empty, sorted by domain and root: only those sorting after the
	// aggregate after (the zero Aggregate: from the first), and at most
	// limit of them (at least 1; RootsLimit at most). A backend reads about
	// what it returns, never every root of a domain.
	Roots(ctx context.Context, domain string, after Aggregate, limit int) ([]Aggregate, error)
}

// LogReader reads the durable per-domain log.
type LogReader interface {
	// Partitions is the number of partitions of every domain's log.
	Partitions() uint32
	// ReadLog returns up to limit log entries of one partition of a domain's
	// log with an offset greater than after, in log order, each as a book
	// with its position set.
	ReadLog(ctx context.Context, domain string, partition uint32, after uint64, limit int) ([]*pb.EventBook, error)
}

// Aggregate identifies one aggregate: a root within a domain.
type Aggregate struct {
	// Domain is the aggregate type, e.g. "order".
	Domain string
	// Root is the aggregate's id.
	Root uuid.UUID
}

// String renders the aggregate as domain/root.
func (a Aggregate) String() string { return a.Domain + "/" + a.Root.String() }

// Cover returns the protocol cover of the aggregate with a correlation id.
func (a Aggregate) Cover(correlationID string) *pb.Cover {
	return &pb.Cover{Domain: a.Domain, Root: &pb.UUID{Value: a.Root[:]}, CorrelationId: correlationID}
}

// AppendRequest is one compare-and-append.
type AppendRequest struct {
	// Aggregate is the aggregate appended to.
	Aggregate Aggregate
	// CorrelationID is stored with every page.
	CorrelationID string
	// Expected is the next sequence the caller based its decision on.
	Expected uint32
	// Pages are the events; see the package documentation for num and force.
	Pages []*pb.EventPage
	// Snapshot, when set, is stored as the state after the appended pages.
	Snapshot *anypb.Any
	// IdempotencyKey, when set, makes a repeat of the append a no-op that
	// returns the original result.
	IdempotencyKey string
	// Trace is the trace context the append is made in, stored with its
	// log entry (see TraceContext); zero for none. The event service's
	// Append handler sets it to TraceOf its call's context; backends never
	// look at the context's span themselves.
	Trace TraceContext
}

// Checked reports whether the expected sequence is enforced: false only when
// every page is a force page.
func (r *AppendRequest) Checked() bool {
	for _, p := range r.Pages {
		if _, force := p.GetSequence().(*pb.EventPage_Force); !force {
			return true
		}
	}
	return len(r.Pages) == 0
}

// AppendResult is what an append stored.
type AppendResult struct {
	// Pages are the stored pages with num and created_at set.
	Pages []*pb.EventPage
	// First is the sequence of the first stored page.
	First uint32
	// Next is the aggregate's next sequence after the append.
	Next uint32
	// Duplicate is true when the idempotency key had been applied before.
	Duplicate bool
	// Position is where the append sits in the domain's log (zero offset when
	// nothing was logged: a snapshot-only append).
	Position *pb.LogPosition
}

// Loaded is an aggregate's current history.
type Loaded struct {
	// Snapshot is the latest snapshot, nil when there is none.
	Snapshot *pb.Snapshot
	// Pages are the events after the snapshot (all events without one),
	// nil from LoadEncoded.
	Pages []*pb.EventPage
	// Encoded is set by LoadEncoded only (never by Load): the same pages in
	// their wire form, EventBook.pages fields back to back
	// (AppendEncodedPage), which the gRPC server sends without decoding
	// them. EncodedCount is their number. AllPages decodes them.
	Encoded      []byte
	EncodedCount int
	// Next is the sequence the next appended event will get (in a
	// continuation: LoadQuery.To).
	Next uint32
	// More is 0 when the pages reach Next. Otherwise LoadQuery.MaxBytes cut
	// the page: the history goes on with the event of sequence More (load
	// it with LoadQuery{From: More, To: Next}).
	More uint32
	// Prior is the earlier append with the requested idempotency key.
	Prior *AppendResult
}

// PageCount is the number of loaded pages.
func (l *Loaded) PageCount() int {
	if l.Encoded != nil {
		return l.EncodedCount
	}
	return len(l.Pages)
}

// AllPages returns the loaded pages, decoding Encoded when it is set.
func (l *Loaded) AllPages() ([]*pb.EventPage, error) {
	if l.Encoded == nil {
		return l.Pages, nil
	}
	return DecodeEncodedPages(l.Encoded)
}

// RootsLimit is the most aggregates one Roots call returns.
const RootsLimit = 1000

// Compare orders aggregates by domain, then by root's bytes.
func (a Aggregate) Compare(b Aggregate) int {
	if c := strings.Compare(a.Domain, b.Domain); c != 0 {
		return c
	}
	return bytes.Compare(a.Root[:], b.Root[:])
}

// AllRoots lists every aggregate of a domain (or of every domain) page by
// page: for the few places that want them all (the schema registry's
// handful of aggregates), never for a user's domain.
func AllRoots(ctx context.Context, r Reader, domain string) ([]Aggregate, error) {
	var out []Aggregate
	after := Aggregate{}
	for {
		page, err := r.Roots(ctx, domain, after, RootsLimit)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if len(page) < RootsLimit {
			return out, nil
		}
		after = page[len(page)-1]
	}
}

// AppendPage adds page, stored with correlationID, to books of agg: to the
// last book when it has the same correlation id, else in a new book.
func AppendPage(books []*pb.EventBook, agg Aggregate, correlationID string, page *pb.EventPage) []*pb.EventBook {
	if n := len(books); n > 0 && books[n-1].GetCover().GetCorrelationId() == correlationID {
		books[n-1].Pages = append(books[n-1].Pages, page)
		return books
	}
	return append(books, &pb.EventBook{Cover: agg.Cover(correlationID), Pages: []*pb.EventPage{page}})
}

// Pages returns the pages of books, in order.
func Pages(books []*pb.EventBook) []*pb.EventPage {
	if len(books) == 1 {
		return books[0].GetPages()
	}
	var out []*pb.EventPage
	for _, b := range books {
		out = append(out, b.GetPages()...)
	}
	return out
}

// EventBytes is what one stored event counts against LoadQuery.MaxBytes:
// the size of its encoded google.protobuf.Any plus 48 bytes for the page
// around it (sequence, creation time, framing; EncodedPageSize).
func EventBytes(n int) int { return EncodedPageSize(n) }

// Micros converts a store timestamp in microseconds since the Unix epoch.
func Micros(us int64) time.Time { return time.UnixMicro(us).UTC() }
