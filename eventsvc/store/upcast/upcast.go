// Package upcast applies each domain's upcasters (angzarr.Upcaster) to the
// events the event service reads, so that logic (Load), sagas and
// projectors (fan-out), queries and the CLI see only current event versions
// while the stored bytes stay as they were written.
//
// Store decorates the backend at composition time (like the instrumented
// decorator): Load, Range, ByCorrelation, ReadLog and the dispatcher's Fetch
// pass their pages through the domain's upcasters; everything else goes to
// the backend unchanged. A read marked store.WithRaw skips them
// (EventQuery's Query.raw, `angzarr events --raw`). Table holds the
// upcasters of every domain and follows the fan-out configuration
// (DomainEndpoint.upcasters) the control plane pushes.
//
// One read makes at most one Upcast call per upcaster and pass, with every
// event of the types that upcaster declares, so a 1,000-event history of
// old versions costs one round trip, not a thousand. An upcaster that
// cannot be reached fails the read as UNAVAILABLE: handing old versions to
// logic that only knows new ones would decide on a misread history.
package upcast

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	"github.com/angzarr-mesh/angzarr/schema"
)

// Backend is what Store decorates: the store and what the dispatcher needs
// of it.
type Backend interface {
	store.Store
	store.Checkpointer
	store.DeadLetters
}

// Store is a Backend whose reads come back upcast.
type Store struct {
	Backend
	t *Table
}

// New decorates b with the upcasters of t.
func New(b Backend, t *Table) *Store { return &Store{Backend: b, t: t} }

// Load implements store.Loader.
func (s *Store) Load(ctx context.Context, agg store.Aggregate, q store.LoadQuery) (*store.Loaded, error) {
	l, err := s.Backend.Load(ctx, agg, q)
	if err != nil || l == nil {
		return l, err
	}
	if err := s.t.pages(ctx, agg.Domain, l.Pages); err != nil {
		return nil, err
	}
	if l.Prior != nil {
		if err := s.t.pages(ctx, agg.Domain, l.Prior.Pages); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// Range implements store.Reader.
func (s *Store) Range(ctx context.Context, agg store.Aggregate, lo, hi uint32) ([]*pb.EventBook, error) {
	books, err := s.Backend.Range(ctx, agg, lo, hi)
	if err != nil {
		return nil, err
	}
	return books, s.t.books(ctx, books)
}

// ByCorrelation implements store.Reader.
func (s *Store) ByCorrelation(ctx context.Context, correlationID string) ([]*pb.EventBook, error) {
	books, err := s.Backend.ByCorrelation(ctx, correlationID)
	if err != nil {
		return nil, err
	}
	return books, s.t.books(ctx, books)
}

// ReadLog implements store.LogReader.
func (s *Store) ReadLog(ctx context.Context, domain string, partition uint32, after uint64, limit int) ([]*pb.EventBook, error) {
	books, err := s.Backend.ReadLog(ctx, domain, partition, after, limit)
	if err != nil {
		return nil, err
	}
	return books, s.t.books(ctx, books)
}

// Fetch implements store.Checkpointer: sagas and projectors get current
// versions too.
func (s *Store) Fetch(ctx context.Context, subscriber, domain string, partition uint32, limit int) ([]store.LogEntry, error) {
	entries, err := s.Backend.Fetch(ctx, subscriber, domain, partition, limit)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if err := s.t.pages(ctx, e.Book.GetCover().GetDomain(), e.Book.GetPages()); err != nil {
			return nil, err
		}
	}
	return entries, nil
}

// Options configure a Table.
type Options struct {
	// DialOptions are used to reach upcasters. Default: plaintext, as the
	// dispatcher reaches subscribers (fanout.Options.DialOptions).
	DialOptions []grpc.DialOption
	// CallTimeout bounds each Upcast call (within the read's own
	// deadline). Default 5s.
	CallTimeout time.Duration
}

// Table is every domain's upcasters, replaced as a whole by Apply.
type Table struct {
	opts    Options
	mu      sync.RWMutex
	domains map[string]*domain
	conns   map[string]*grpc.ClientConn // by address, shared by domains
}

// domain is one domain's upcasters, in their configured order.
type domain struct {
	ups    []*upcaster
	byType map[protoreflect.FullName]*upcaster
}

type upcaster struct {
	addr   string
	types  map[protoreflect.FullName]bool
	client pb.UpcasterClient
}

// NewTable returns a Table without upcasters.
func NewTable(opts Options) *Table {
	if opts.CallTimeout == 0 {
		opts.CallTimeout = 5 * time.Second
	}
	if opts.DialOptions == nil {
		opts.DialOptions = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	return &Table{opts: opts, domains: map[string]*domain{}, conns: map[string]*grpc.ClientConn{}}
}

// Check refuses a configuration whose upcasters are invalid: an address
// that is not host:port, no type or a type that is not a message name, a
// type given to two upcasters of one domain. Apply would refuse it too;
// Check lets a caller refuse it before anything else takes it.
func (t *Table) Check(cfg *pb.FanoutConfig) error {
	_, _, err := parse(cfg)
	return err
}

// Apply takes the upcasters of cfg's domains, or refuses cfg (keeping the
// current ones) as Check does.
func (t *Table) Apply(cfg *pb.FanoutConfig) error {
	next, addrs, err := parse(cfg)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for addr := range addrs {
		if t.conns[addr] == nil {
			conn, err := grpc.NewClient(addr, t.opts.DialOptions...)
			if err != nil {
				return fmt.Errorf("upcaster %s: %w", addr, err)
			}
			t.conns[addr] = conn
		}
	}
	for addr, conn := range t.conns {
		if !addrs[addr] {
			_ = conn.Close()
			delete(t.conns, addr)
		}
	}
	for _, dom := range next {
		for _, up := range dom.ups {
			up.client = pb.NewUpcasterClient(t.conns[up.addr])
		}
	}
	t.domains = next
	return nil
}

func parse(cfg *pb.FanoutConfig) (map[string]*domain, map[string]bool, error) {
	next := map[string]*domain{}
	addrs := map[string]bool{}
	for _, d := range cfg.GetDomains() {
		if len(d.GetUpcasters()) == 0 {
			continue
		}
		dom := &domain{byType: map[protoreflect.FullName]*upcaster{}}
		for i, u := range d.GetUpcasters() {
			where := fmt.Sprintf("domain %q: upcaster %d", d.GetDomain(), i)
			if _, _, err := net.SplitHostPort(u.GetAddress()); err != nil {
				return nil, nil, fmt.Errorf("%s: address %q: want host:port", where, u.GetAddress())
			}
			if len(u.GetTypes()) == 0 {
				return nil, nil, fmt.Errorf("%s (%s): declares no type", where, u.GetAddress())
			}
			up := &upcaster{addr: u.GetAddress(), types: map[protoreflect.FullName]bool{}}
			for _, ty := range u.GetTypes() {
				n := protoreflect.FullName(ty)
				if !n.IsValid() {
					return nil, nil, fmt.Errorf("%s: type %q is not a message name", where, ty)
				}
				if other, dup := dom.byType[n]; dup {
					return nil, nil, fmt.Errorf("%s: type %s is already upcast by %s", where, n, other.addr)
				}
				dom.byType[n], up.types[n] = up, true
			}
			dom.ups = append(dom.ups, up)
			addrs[up.addr] = true
		}
		next[d.GetDomain()] = dom
	}
	return next, addrs, nil
}

// Close closes the connections to the upcasters.
func (t *Table) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for addr, conn := range t.conns {
		_ = conn.Close()
		delete(t.conns, addr)
	}
	t.domains = map[string]*domain{}
}

func (t *Table) domain(name string) *domain {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.domains[name]
}

func (t *Table) books(ctx context.Context, books []*pb.EventBook) error {
	for _, b := range books {
		if err := t.pages(ctx, b.GetCover().GetDomain(), b.GetPages()); err != nil {
			return err
		}
	}
	return nil
}

// pages replaces, in the slice, every page whose event is of a type one of
// the domain's upcasters declares by a copy carrying the upcast event
// (pages are never changed in place: a backend may share them). An
// upcaster's output may be a later one's input (v1 → v2 → v3); after as
// many passes as there are upcasters, an event still of a declared type
// means a loop, and the read fails.
func (t *Table) pages(ctx context.Context, domainName string, pages []*pb.EventPage) error {
	if len(pages) == 0 || store.IsRaw(ctx) {
		return nil
	}
	dom := t.domain(domainName)
	if dom == nil {
		return nil
	}
	// Upcasters run in their configured order, each on what the ones
	// before it produced: with upcasters listed oldest first, one pass
	// does a whole chain.
	for range len(dom.ups) {
		ran := false
		for _, up := range dom.ups {
			var idx []int
			for i, p := range pages {
				if up.types[typeName(p.GetEvent())] {
					idx = append(idx, i)
				}
			}
			if len(idx) > 0 {
				if err := t.call(ctx, domainName, up, pages, idx); err != nil {
					return err
				}
				ran = true
			}
		}
		if !ran {
			return nil
		}
	}
	for _, p := range pages {
		if up := dom.byType[typeName(p.GetEvent())]; up != nil {
			return fmt.Errorf("%w: domain %q: events of type %s are still of a declared old type after every upcaster ran (a loop between upcasters)", store.ErrUnavailable, domainName, typeName(p.GetEvent()))
		}
	}
	return nil
}

// call upcasts pages[idx...] with up.
func (t *Table) call(ctx context.Context, domainName string, up *upcaster, pages []*pb.EventPage, idx []int) error {
	req := &pb.UpcastRequest{Domain: domainName, Events: make([]*anypb.Any, len(idx))}
	for j, i := range idx {
		req.Events[j] = pages[i].GetEvent()
	}
	cctx, cancel := context.WithTimeout(ctx, t.opts.CallTimeout)
	defer cancel()
	resp, err := up.client.Upcast(cctx, req)
	if err != nil {
		return fmt.Errorf("%w: domain %q: upcaster %s: %v (its %d stored events of old versions cannot be read without it)", store.ErrUnavailable, domainName, up.addr, err, len(idx))
	}
	if got := len(resp.GetEvents()); got != len(idx) {
		return fmt.Errorf("%w: domain %q: upcaster %s answered %d events for %d", store.ErrUnavailable, domainName, up.addr, got, len(idx))
	}
	for j, i := range idx {
		ev := resp.GetEvents()[j]
		name := typeName(ev)
		if ev == nil || !name.IsValid() {
			return fmt.Errorf("%w: domain %q: upcaster %s answered an event without a type for sequence %d", store.ErrUnavailable, domainName, up.addr, pages[i].GetNum())
		}
		if up.types[name] {
			return fmt.Errorf("%w: domain %q: upcaster %s left sequence %d as %s, a type it declares it upcasts", store.ErrUnavailable, domainName, up.addr, pages[i].GetNum(), name)
		}
		// A new page around the old one's sequence and time (not a clone:
		// that would copy the old event's bytes only to drop them).
		p := pages[i]
		pages[i] = &pb.EventPage{Sequence: p.GetSequence(), CreatedAt: p.GetCreatedAt(), Event: ev}
	}
	return nil
}

// typeName is the full message name of an Any's type URL.
func typeName(a *anypb.Any) protoreflect.FullName { return schema.MessageName(a.GetTypeUrl()) }

// LoadEncoded implements store.EncodedLoader: the stored bytes pass
// through as they are when nothing of the domain is upcast (or the read is
// raw) and the backend can hand them out; otherwise it is Load, decoded
// and upcast.
func (s *Store) LoadEncoded(ctx context.Context, agg store.Aggregate, q store.LoadQuery) (*store.Loaded, error) {
	if el, ok := s.Backend.(store.EncodedLoader); ok && (store.IsRaw(ctx) || s.t.domain(agg.Domain) == nil) {
		return el.LoadEncoded(ctx, agg, q)
	}
	return s.Load(ctx, agg, q)
}
