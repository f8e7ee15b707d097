package server

import (
	"context"
	"log/slog"
	"sync"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
)

// tails shares blocking reads of domains' log tails (store.TailWatcher:
// Redis XREAD BLOCK, on connections of their own) among the live
// Synchronize streams of this process: while at least one follows a
// domain, one watch per partition of its log wakes them at every append,
// whichever replica made it. Without a TailWatcher (SQLite, single node)
// streams poll for appends made through other processes.
type tails struct {
	tw     store.TailWatcher
	parts  uint32
	notify func(domain string)
	log    *slog.Logger

	mu   sync.Mutex
	doms map[string]*domainTail
}

type domainTail struct {
	users  int
	cancel context.CancelFunc
	ready  chan struct{} // closed once every partition's watch is in place
}

func newTails(tw store.TailWatcher, parts uint32, notify func(string), log *slog.Logger) *tails {
	return &tails{tw: tw, parts: parts, notify: notify, log: log, doms: map[string]*domainTail{}}
}

// follow starts (or joins) the watch of domain. ready is closed once an
// append made after it wakes the domain's subscribers; it is nil when
// there is no blocking read (no TailWatcher, or domain "" for every
// domain): the caller polls. release ends the caller's share.
func (t *tails) follow(domain string) (ready <-chan struct{}, release func()) {
	if t.tw == nil || domain == "" {
		return nil, func() {}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	dt := t.doms[domain]
	if dt == nil {
		ctx, cancel := context.WithCancel(context.Background())
		dt = &domainTail{cancel: cancel, ready: make(chan struct{})}
		t.doms[domain] = dt
		var mu sync.Mutex
		pending := t.parts
		for p := range t.parts {
			go func() {
				err := t.tw.WatchLog(ctx, domain, p, func() {
					mu.Lock()
					defer mu.Unlock()
					if pending--; pending == 0 {
						close(dt.ready)
					}
				}, func() { t.notify(domain) })
				if err != nil && ctx.Err() == nil {
					t.log.Warn("synchronize tail watch ended", "domain", domain, "partition", p, "err", err)
				}
			}()
		}
	}
	dt.users++
	return dt.ready, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if dt.users--; dt.users == 0 {
			dt.cancel()
			delete(t.doms, domain)
		}
	}
}
