package fanout

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"hash/fnv"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
)

// FencingHeader is the gRPC metadata key of the deliveries made under a
// partition lease: "DOMAIN/PARTITION/TOKEN". A subscriber that wants to
// refuse a stale replica's delivery keeps the highest token per
// partition it has seen.
const FencingHeader = "angzarr-fencing-token"

// part names one partition of a domain's log.
type part struct {
	domain    string
	partition uint32
}

// held is a partition this replica may dispatch: its lease (zero on a
// single-node store), a context cancelled when the lease is lost (the
// local deadline passed without a renewal, or the store fenced it), and
// drain, closed to ask the workers to stop after their current batch
// (rebalancing, shutdown).
type held struct {
	lease  store.Lease
	fenced bool // lease is real: fetch and commit are fenced
	ctx    context.Context
	lose   context.CancelFunc
	drain  chan struct{}
	ready  chan struct{} // closed once the tail watch is in place
	users  sync.WaitGroup

	mu       sync.Mutex
	deadline *time.Timer // fires lose at the local deadline
	drained  bool
}

// extend moves the local deadline to start+ttl less a tenth for clock
// rate differences: start is taken before the request that renewed the
// lease, so the server's expiry is later.
func (h *held) extend(start time.Time, ttl time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ctx.Err() != nil {
		return
	}
	d := time.Until(start.Add(ttl - ttl/10))
	if h.deadline == nil {
		h.deadline = time.AfterFunc(d, h.lose)
		return
	}
	h.deadline.Reset(d)
}

func (h *held) startDrain() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.drained {
		h.drained = true
		close(h.drain)
	}
}

// leases decides which partitions this replica dispatches. On a store
// with store.Leaser it heartbeats, assigns every partition of the wanted
// domains to one live replica by rendezvous hashing (so a join or a leave
// moves few partitions), acquires and renews the leases of its own and
// releases the others after their workers drained. Without a Leaser
// (SQLite: single node) every partition is held at once.
type leases struct {
	d     *Dispatcher
	ls    store.Leaser
	tw    store.TailWatcher // nil: workers poll
	owner string
	ttl   time.Duration

	mu      sync.Mutex
	domains map[string]bool
	held    map[part]*held
	leaving map[part]bool // released, workers still finishing: not taken again until done
	changed chan struct{} // closed and replaced when held changes
	kick    chan struct{}
	watches sync.WaitGroup
}

func newLeases(d *Dispatcher, st Store, owner string, ttl time.Duration) *leases {
	l := &leases{d: d, owner: owner, ttl: ttl, domains: map[string]bool{}, held: map[part]*held{}, leaving: map[part]bool{}, changed: make(chan struct{}), kick: make(chan struct{}, 1)}
	l.ls = store.LeaserOf(st)
	if l.ls != nil {
		l.tw = store.TailWatcherOf(st)
	}
	return l
}

// defaultOwner is a replica id unique per process: the host name (the
// pod's) and random bytes, so a restarted pod is a new replica.
func defaultOwner() string {
	host, _ := os.Hostname()
	if host == "" {
		host = "eventsvc"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return host + "-" + hex.EncodeToString(b)
}

// setDomains makes domains the wanted ones (the source domains of the
// subscriptions) and triggers a round.
func (l *leases) setDomains(domains map[string]bool) {
	l.mu.Lock()
	l.domains = domains
	if l.ls == nil {
		for pt, h := range l.held {
			if !domains[pt.domain] {
				h.startDrain()
				h.lose()
				delete(l.held, pt)
			}
		}
		for dom := range domains {
			for p := range l.d.st.Partitions() {
				if l.held[part{dom, p}] == nil {
					l.add(part{dom, p}, store.Lease{}, false, time.Time{})
				}
			}
		}
	}
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// add records a held partition and starts its tail watch. The caller
// holds l.mu.
func (l *leases) add(pt part, lease store.Lease, fenced bool, start time.Time) *held {
	ctx, cancel := context.WithCancel(context.Background())
	h := &held{lease: lease, fenced: fenced, ctx: ctx, lose: cancel, drain: make(chan struct{}), ready: make(chan struct{})}
	if fenced {
		h.extend(start, l.ttl)
	}
	if l.tw != nil {
		l.watches.Add(1)
		var once sync.Once
		go func() {
			defer l.watches.Done()
			err := l.tw.WatchLog(ctx, pt.domain, pt.partition, func() { once.Do(func() { close(h.ready) }) },
				func() { l.d.wake.notifyPartition(pt.domain, pt.partition) })
			once.Do(func() { close(h.ready) })
			if err != nil && ctx.Err() == nil {
				l.d.log.Warn("fanout tail watch ended", "domain", pt.domain, "partition", pt.partition, "err", err)
			}
		}()
	} else {
		close(h.ready)
	}
	l.held[pt] = h
	close(l.changed)
	l.changed = make(chan struct{})
	return h
}

// polls reports whether idle workers must poll: no blocking tail read.
func (l *leases) polls() bool { return l.tw == nil }

// wait blocks until this replica holds pt and returns it, counted as a
// user until the caller calls h.users.Done; nil when ctx is done.
func (l *leases) wait(ctx context.Context, pt part) *held {
	for {
		l.mu.Lock()
		h, ch := l.held[pt], l.changed
		if h != nil && h.ctx.Err() == nil && !h.isDraining() {
			h.users.Add(1)
			l.mu.Unlock()
			select {
			case <-h.ready:
				return h
			case <-ctx.Done():
				h.users.Done()
				return nil
			}
		}
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil
		}
	}
}

func (h *held) isDraining() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.drained
}

// owns reports whether owner is pt's replica among members.
func owns(members []string, owner string, pt part) bool {
	var best string
	var bestScore uint64
	for _, m := range members {
		f := fnv.New64a()
		f.Write([]byte(m))
		f.Write([]byte{0})
		f.Write([]byte(pt.domain))
		f.Write([]byte{0})
		f.Write([]byte(strconv.FormatUint(uint64(pt.partition), 10)))
		if s := mix(f.Sum64()); best == "" || s > bestScore || (s == bestScore && m < best) {
			best, bestScore = m, s
		}
	}
	return best == owner
}

// mix is MurmurHash3's 64-bit finalizer: FNV alone barely separates
// names that differ in one byte, and one replica would win everything.
func mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// run keeps the leases until ctx is done, then drains and releases them
// and leaves (so that other replicas take over at once, not after the
// TTL).
func (l *leases) run(ctx context.Context) {
	if l.ls == nil {
		<-ctx.Done()
		l.releaseAll()
		return
	}
	tick := time.NewTicker(l.ttl / 3)
	defer tick.Stop()
	for {
		l.round(ctx)
		select {
		case <-ctx.Done():
			l.releaseAll()
			return
		case <-tick.C:
		case <-l.kick:
		}
	}
}

// round is one heartbeat: renew what is held and wanted, release what is
// not, acquire what is this replica's and free.
func (l *leases) round(ctx context.Context) {
	members, err := l.ls.Heartbeat(ctx, l.owner, l.ttl)
	if err != nil && ctx.Err() == nil {
		l.d.log.Warn("fanout heartbeat failed", "owner", l.owner, "err", err)
	}
	l.mu.Lock()
	domains := l.domains
	mine := make(map[part]*held, len(l.held))
	for pt, h := range l.held {
		mine[pt] = h
	}
	l.mu.Unlock()
	for pt, h := range mine {
		if h.ctx.Err() != nil {
			l.forget(pt, h)
			continue
		}
		if !domains[pt.domain] || (err == nil && !owns(members, l.owner, pt)) {
			l.release(pt, h)
			continue
		}
		start := time.Now()
		switch rerr := l.ls.RenewLease(ctx, h.lease, l.ttl); {
		case rerr == nil:
			h.extend(start, l.ttl)
		case errors.Is(rerr, store.ErrFenced):
			l.d.log.Warn("fanout lease lost", "domain", pt.domain, "partition", pt.partition, "token", h.lease.Token)
			h.lose()
			l.forget(pt, h)
		case ctx.Err() == nil:
			l.d.log.Warn("fanout lease renewal failed", "domain", pt.domain, "partition", pt.partition, "err", rerr)
		}
	}
	if err != nil {
		return
	}
	for dom := range domains {
		for p := range l.d.st.Partitions() {
			pt := part{dom, p}
			l.mu.Lock()
			leaving := l.leaving[pt]
			l.mu.Unlock()
			if mine[pt] != nil || leaving || !owns(members, l.owner, pt) {
				continue
			}
			start := time.Now()
			lease, ok, aerr := l.ls.AcquireLease(ctx, dom, p, l.owner, l.ttl)
			if aerr != nil {
				if ctx.Err() == nil {
					l.d.log.Warn("fanout lease acquisition failed", "domain", dom, "partition", p, "err", aerr)
				}
				continue
			}
			if !ok {
				continue // its previous holder has it until it releases it or its TTL ends
			}
			l.d.log.Info("fanout lease acquired", "domain", dom, "partition", p, "token", lease.Token, "owner", l.owner)
			l.mu.Lock()
			l.add(pt, lease, true, start)
			l.mu.Unlock()
			l.d.metrics.leaseAcquired(ctx, dom)
		}
	}
}

// forget drops a lost partition; it is not taken again before its
// workers (cancelled) returned.
func (l *leases) forget(pt part, h *held) {
	h.startDrain()
	l.mu.Lock()
	if l.held[pt] != h {
		l.mu.Unlock()
		return
	}
	delete(l.held, pt)
	l.leaving[pt] = true
	l.mu.Unlock()
	l.watches.Add(1)
	go func() {
		defer l.watches.Done()
		h.users.Wait()
		l.mu.Lock()
		delete(l.leaving, pt)
		l.mu.Unlock()
	}()
}

// release asks pt's workers to stop after their batch and, once they
// did, gives its lease up. It does not wait: the round goes on renewing
// the others.
func (l *leases) release(pt part, h *held) {
	l.d.log.Info("fanout lease released", "domain", pt.domain, "partition", pt.partition, "owner", l.owner)
	h.startDrain()
	l.mu.Lock()
	if l.held[pt] == h {
		delete(l.held, pt)
	}
	l.leaving[pt] = true
	l.mu.Unlock()
	l.watches.Add(1)
	go func() {
		defer l.watches.Done()
		l.finish(h)
		l.mu.Lock()
		delete(l.leaving, pt)
		l.mu.Unlock()
	}()
}

// finish waits for h's workers (they stop after their batch, or at the
// local deadline) and releases the lease.
func (l *leases) finish(h *held) {
	stopped := make(chan struct{})
	go func() { h.users.Wait(); close(stopped) }()
	select {
	case <-stopped:
	case <-h.ctx.Done():
	}
	if h.ctx.Err() == nil && h.fenced {
		ctx, cancel := context.WithTimeout(context.Background(), l.ttl)
		if err := l.ls.ReleaseLease(ctx, h.lease); err != nil {
			l.d.log.Warn("fanout lease release failed", "domain", h.lease.Domain, "partition", h.lease.Partition, "err", err)
		}
		cancel()
	}
	h.lose()
	h.mu.Lock()
	if h.deadline != nil {
		h.deadline.Stop()
	}
	h.mu.Unlock()
}

// releaseAll releases every lease (the workers are stopped by then),
// waits for the tail watches and leaves the live replicas.
func (l *leases) releaseAll() {
	l.mu.Lock()
	all := l.held
	l.held = map[part]*held{}
	l.mu.Unlock()
	for _, h := range all {
		h.startDrain()
		l.watches.Add(1)
		go func() {
			defer l.watches.Done()
			l.finish(h)
		}()
	}
	l.watches.Wait()
	if l.ls != nil {
		ctx, cancel := context.WithTimeout(context.Background(), l.ttl)
		defer cancel()
		if err := l.ls.Leave(ctx, l.owner); err != nil {
			l.d.log.Warn("fanout leave failed", "owner", l.owner, "err", err)
		}
	}
}

// fencedContext is ctx, cancelled also when h's lease is lost, carrying
// the fencing token to subscribers.
func (h *held) fencedContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(h.ctx, cancel)
	if h.fenced {
		ctx = metadata.AppendToOutgoingContext(ctx, FencingHeader,
			h.lease.Domain+"/"+strconv.FormatUint(uint64(h.lease.Partition), 10)+"/"+strconv.FormatUint(h.lease.Token, 10))
	}
	return ctx, func() { stop(); cancel() }
}

// Held returns the partitions this replica dispatches now, by domain,
// sorted: all of them on a single-node store, its share on Redis.
func (d *Dispatcher) Held() map[string][]uint32 {
	l := d.leases
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string][]uint32{}
	for pt, h := range l.held {
		if h.ctx.Err() == nil && !h.isDraining() {
			out[pt.domain] = append(out[pt.domain], pt.partition)
		}
	}
	for _, ps := range out {
		slices.Sort(ps)
	}
	return out
}
