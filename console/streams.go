package console

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// domainsJSON lists the known domains.
type domainsJSON struct {
	Domains []string `json:"domains"`
}

// getDomains lists the topology's domains, or those the event service has
// aggregates of when no topology is known: one ListRoots call of one root
// per domain (the first root after the previous domain's last possible
// one), never every root.
func (c *Console) getDomains(w http.ResponseWriter, r *http.Request) {
	if cfg := c.topo.current(); cfg != nil && len(cfg.GetDomains()) > 0 {
		writeJSON(w, domainsJSON{Domains: topologyDomains(cfg)})
		return
	}
	out := []string{}
	var after *pb.AggregateRoot
	for len(out) < maxDomains {
		roots, err := c.listRoots(r.Context(), &pb.ListRootsRequest{After: after, Limit: 1})
		if err != nil {
			upstream(w, err)
			return
		}
		if len(roots) == 0 {
			break
		}
		d := roots[0].GetDomain()
		out = append(out, d)
		after = &pb.AggregateRoot{Domain: d, Root: &pb.UUID{Value: uuid.Max[:]}}
	}
	writeJSON(w, domainsJSON{Domains: out})
}

// maxDomains bounds the domains getDomains lists.
const maxDomains = 1000

// listRoots reads one ListRoots stream to its end.
func (c *Console) listRoots(ctx context.Context, req *pb.ListRootsRequest) ([]*pb.AggregateRoot, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := c.store.ListRoots(ctx, req)
	if err != nil {
		return nil, err
	}
	var out []*pb.AggregateRoot
	for {
		a, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
}

// aggregatesJSON is a page of a domain's aggregates.
type aggregatesJSON struct {
	Domain     string   `json:"domain"`
	Aggregates []string `json:"aggregates"`
	// Next is the after parameter of the next page; empty on the last.
	Next string `json:"next,omitempty"`
}

// getAggregates pages a domain's aggregate roots in root order: after=ROOT
// (exclusive), limit=N. The event service reads the page from the store
// (ListRoots with a cursor and a limit of one more than the page, to know
// whether there is a next one), never the domain's every root.
func (c *Console) getAggregates(w http.ResponseWriter, r *http.Request) {
	domain, err := domainParam(r)
	if err != nil {
		badRequest(w, err)
		return
	}
	limit, err := limitParam(r)
	if err != nil {
		badRequest(w, err)
		return
	}
	req := &pb.ListRootsRequest{Domain: domain, Limit: uint32(limit) + 1}
	if s := r.URL.Query().Get("after"); s != "" {
		after, err := uuid.Parse(s)
		if err != nil {
			badRequest(w, errors.New("after: not a UUID"))
			return
		}
		req.After = &pb.AggregateRoot{Domain: domain, Root: &pb.UUID{Value: after[:]}}
	}
	roots, err := c.listRoots(r.Context(), req)
	if err != nil {
		upstream(w, err)
		return
	}
	out := aggregatesJSON{Domain: domain, Aggregates: []string{}}
	for _, a := range roots {
		if len(out.Aggregates) == limit {
			out.Next = out.Aggregates[limit-1]
			break
		}
		out.Aggregates = append(out.Aggregates, rootString(a.GetRoot()))
	}
	writeJSON(w, out)
}

// eventsJSON is a page of events.
type eventsJSON struct {
	Events []eventJSON `json:"events"`
	// Next is the parameter of the next page (from= for an aggregate,
	// cursor= for a domain's log); empty when the page is the last.
	Next string `json:"next,omitempty"`
}

// getLog pages a domain's log in append order without reading it all: the
// cursor holds the last offset read per partition, and the stream of
// EventQuery.GetEvents is cut once the page is full.
func (c *Console) getLog(w http.ResponseWriter, r *http.Request) {
	domain, err := domainParam(r)
	if err != nil {
		badRequest(w, err)
		return
	}
	limit, err := limitParam(r)
	if err != nil {
		badRequest(w, err)
		return
	}
	cursor, err := logCursor(r)
	if err != nil {
		badRequest(w, err)
		return
	}
	out, err := c.logPage(r.Context(), domain, cursor, limit)
	if err != nil {
		upstream(w, err)
		return
	}
	writeJSON(w, out)
}

// logPage reads up to limit events of a domain's log after cursor.
func (c *Console) logPage(ctx context.Context, domain string, cursor map[uint32]uint64, limit int) (*eventsJSON, error) {
	q := &pb.Query{Cover: &pb.Cover{Domain: domain}}
	for p, off := range cursor {
		q.After = append(q.After, &pb.LogPosition{Partition: p, Offset: off})
	}
	slices.SortFunc(q.After, func(a, b *pb.LogPosition) int { return int(a.GetPartition()) - int(b.GetPartition()) })
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := c.query.GetEvents(ctx, q)
	if err != nil {
		return nil, err
	}
	out := &eventsJSON{Events: []eventJSON{}}
	for len(out.Events) < limit {
		b, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out.Events = append(out.Events, decodeBook(b, false)...)
		if pos := b.GetPosition(); pos != nil {
			cursor[pos.GetPartition()] = pos.GetOffset()
		}
	}
	out.Next = formatCursor(cursor)
	return out, nil
}

// getEvents is one aggregate's events: from=SEQ and limit=N page them;
// asOfSeq=SEQ or asOfTime=RFC3339 cut the history (time travel); raw=1 adds
// the stored bytes.
func (c *Console) getEvents(w http.ResponseWriter, r *http.Request) {
	domain, err := domainParam(r)
	if err != nil {
		badRequest(w, err)
		return
	}
	root, err := rootParam(r)
	if err != nil {
		badRequest(w, err)
		return
	}
	limit, err := limitParam(r)
	if err != nil {
		badRequest(w, err)
		return
	}
	from, _, err := uintParam(r, "from", 32)
	if err != nil {
		badRequest(w, err)
		return
	}
	asOfSeq, bySeq, err := uintParam(r, "asOfSeq", 32)
	if err != nil {
		badRequest(w, err)
		return
	}
	asOfTime, byTime, err := timeParam(r, "asOfTime")
	if err != nil {
		badRequest(w, err)
		return
	}
	if bySeq && byTime {
		badRequest(w, errors.New("asOfSeq and asOfTime: one or the other"))
		return
	}
	raw := r.URL.Query().Get("raw") == "1"
	// The raw form is the stored one: before the domain's upcasters.
	q := &pb.Query{Cover: &pb.Cover{Domain: domain, Root: &pb.UUID{Value: root[:]}}, Raw: raw}
	upper := uint64(from) + uint64(limit) // one more than a page: is there a next one?
	if bySeq && asOfSeq < upper {
		upper = asOfSeq
	}
	if byTime {
		q.Selection = &pb.Query_Temporal{Temporal: &pb.TemporalQuery{PointInTime: &pb.TemporalQuery_AsOfTime{AsOfTime: timestamppb.New(asOfTime)}}}
	} else {
		if upper > 1<<32-1 {
			upper = 1<<32 - 1
		}
		u := uint32(upper)
		q.Selection = &pb.Query_Range{Range: &pb.SequenceRange{Lower: uint32(from), Upper: &u}}
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	s, err := c.query.GetEvents(ctx, q)
	if err != nil {
		upstream(w, err)
		return
	}
	out := eventsJSON{Events: []eventJSON{}}
	for {
		b, err := s.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			upstream(w, err)
			return
		}
		for _, e := range decodeBook(b, raw) {
			if uint64(e.Sequence) < from {
				continue // as of a time: the whole history up to it
			}
			if len(out.Events) == limit {
				out.Next = formatUint(uint64(out.Events[limit-1].Sequence) + 1)
				cancel()
				writeJSON(w, out)
				return
			}
			out.Events = append(out.Events, e)
		}
	}
	writeJSON(w, out)
}
