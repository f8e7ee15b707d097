package fanout

import "sync"

// waker wakes the workers of a domain (or of one of its partitions) after
// an append to it.
type waker struct {
	mu   sync.Mutex
	subs map[string]map[*wakeup]struct{}
}

// wakeup is one worker's wake channel; a notification is coalesced with
// any not yet received, so none is lost between a fetch and the wait.
type wakeup struct {
	w         *waker
	domain    string
	partition uint32
	C         chan struct{}
}

func newWaker() *waker { return &waker{subs: map[string]map[*wakeup]struct{}{}} }

func (w *waker) subscribe(domain string, partition uint32) *wakeup {
	u := &wakeup{w: w, domain: domain, partition: partition, C: make(chan struct{}, 1)}
	w.mu.Lock()
	if w.subs[domain] == nil {
		w.subs[domain] = map[*wakeup]struct{}{}
	}
	w.subs[domain][u] = struct{}{}
	w.mu.Unlock()
	return u
}

func (u *wakeup) close() {
	u.w.mu.Lock()
	delete(u.w.subs[u.domain], u)
	if len(u.w.subs[u.domain]) == 0 {
		delete(u.w.subs, u.domain)
	}
	u.w.mu.Unlock()
}

func (u *wakeup) wake() {
	select {
	case u.C <- struct{}{}:
	default:
	}
}

// notify wakes every worker of domain.
func (w *waker) notify(domain string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for u := range w.subs[domain] {
		u.wake()
	}
}

// notifyPartition wakes the workers of one partition of domain.
func (w *waker) notifyPartition(domain string, partition uint32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for u := range w.subs[domain] {
		if u.partition == partition {
			u.wake()
		}
	}
}
