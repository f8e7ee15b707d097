package console

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc"

	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// rateWindow is the window of the domains' event rates.
const rateWindow = 5 * time.Minute

// liveHub follows every domain of the topology with
// EventQuery.Synchronize, keeps the most recent events for a new page, and
// forwards new ones to every connected browser. It also counts events per
// domain for the topology's rates.
type liveHub struct {
	query pb.EventQueryClient
	topo  *topology
	keep  int
	log   *slog.Logger

	mu      sync.Mutex
	recent  []*pb.EventBook // oldest first, at most keep pages in all
	pages   int
	clients map[chan *pb.EventBook]struct{}
	times   map[string][]time.Time // per domain, created_at of the events in the window
}

func newLiveHub(query pb.EventQueryClient, topo *topology, keep int, log *slog.Logger) *liveHub {
	return &liveHub{query: query, topo: topo, keep: keep, log: log,
		clients: map[chan *pb.EventBook]struct{}{}, times: map[string][]time.Time{}}
}

// run follows each domain of the topology, starting a follower for every
// domain that appears.
func (h *liveHub) run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	following := map[string]bool{}
	for {
		next := h.topo.next()
		for _, d := range topologyDomains(h.topo.current()) {
			if !following[d] {
				following[d] = true
				wg.Add(1)
				go func() {
					defer wg.Done()
					h.follow(ctx, d)
				}()
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-next:
		}
	}
}

// follow synchronizes on one domain until ctx is done, resuming after the
// last position seen when the stream breaks.
func (h *liveHub) follow(ctx context.Context, domain string) {
	after := map[uint32]uint64{}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := h.stream(ctx, domain, after)
		if ctx.Err() != nil {
			return
		}
		h.log.Debug("console: live stream ended; reconnecting", "domain", domain, "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

func (h *liveHub) stream(ctx context.Context, domain string, after map[uint32]uint64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := h.query.Synchronize(ctx, grpc.WaitForReady(true))
	if err != nil {
		return err
	}
	h.mu.Lock()
	if _, ok := h.times[domain]; !ok {
		h.times[domain] = nil // followed: its rate is known, 0 until an event comes
	}
	h.mu.Unlock()
	q := &pb.Query{Cover: &pb.Cover{Domain: domain}}
	for p, off := range after {
		q.After = append(q.After, &pb.LogPosition{Partition: p, Offset: off})
	}
	if err := s.Send(q); err != nil {
		return err
	}
	for {
		b, err := s.Recv()
		if err != nil {
			return err
		}
		if pos := b.GetPosition(); pos != nil {
			after[pos.GetPartition()] = pos.GetOffset()
		}
		h.publish(b)
	}
}

// publish keeps b and forwards it to every client; a client too slow to
// take it is dropped (its browser reconnects).
func (h *liveHub) publish(b *pb.EventBook) {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := b.GetCover().GetDomain()
	cut := time.Now().Add(-rateWindow)
	ts := h.times[d]
	for _, p := range b.GetPages() {
		if t := p.GetCreatedAt().AsTime(); t.After(cut) {
			ts = append(ts, t)
		}
	}
	h.times[d] = prune(ts, cut)
	h.recent = append(h.recent, b)
	h.pages += len(b.GetPages())
	for len(h.recent) > 1 && h.pages > h.keep {
		h.pages -= len(h.recent[0].GetPages())
		h.recent = h.recent[1:]
	}
	for ch := range h.clients {
		select {
		case ch <- b:
		default:
			delete(h.clients, ch)
			close(ch)
		}
	}
}

// prune drops the times before cut (they are in append order, almost
// sorted: a few stragglers are dropped later).
func prune(ts []time.Time, cut time.Time) []time.Time {
	i := 0
	for i < len(ts) && ts[i].Before(cut) {
		i++
	}
	return ts[i:]
}

// rates are each followed domain's events per second over the window.
func (h *liveHub) rates() map[string]float64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	cut := time.Now().Add(-rateWindow)
	out := map[string]float64{}
	for d, ts := range h.times {
		ts = prune(ts, cut)
		h.times[d] = ts
		out[d] = float64(len(ts)) / rateWindow.Seconds()
	}
	return out
}

// subscribe returns the recent books and a channel of the next ones.
func (h *liveHub) subscribe() ([]*pb.EventBook, chan *pb.EventBook) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch := make(chan *pb.EventBook, 256)
	h.clients[ch] = struct{}{}
	return append([]*pb.EventBook(nil), h.recent...), ch
}

func (h *liveHub) unsubscribe(ch chan *pb.EventBook) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.clients[ch]; ok {
		delete(h.clients, ch)
		close(ch)
	}
}

// getLive streams events to the browser as server-sent events: the recent
// ones first, then each new one as it is stored. domain=D keeps one
// domain's.
func (c *Console) getLive(w http.ResponseWriter, r *http.Request) {
	only := r.URL.Query().Get("domain")
	if only != "" {
		if _, err := domainParam(withDomain(r, only)); err != nil {
			badRequest(w, err)
			return
		}
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "streaming unsupported")
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	recent, ch := c.live.subscribe()
	defer c.live.unsubscribe(ch)
	send := func(b *pb.EventBook) error {
		if only != "" && b.GetCover().GetDomain() != only {
			return nil
		}
		for _, e := range decodeBook(b, false) {
			j, err := json.Marshal(e)
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintf(w, "event: event\ndata: %s\n\n", j); err != nil {
				return err
			}
		}
		return nil
	}
	for _, b := range recent {
		if send(b) != nil {
			return
		}
	}
	fmt.Fprint(w, "event: ready\ndata: {}\n\n")
	fl.Flush()
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-keepalive.C:
			fmt.Fprint(w, ": keepalive\n\n")
		case b, ok := <-ch:
			if !ok {
				return // too slow: the browser reconnects
			}
			if send(b) != nil {
				return
			}
		}
		fl.Flush()
	}
}

// withDomain is r with the domain path value set (to validate a query
// parameter the way path parameters are).
func withDomain(r *http.Request, d string) *http.Request {
	r2 := r.Clone(r.Context())
	r2.SetPathValue("domain", d)
	return r2
}
