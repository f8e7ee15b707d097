package server

import "sync"

// notifier wakes subscriptions when an append went through this process.
type notifier struct {
	mu   sync.Mutex
	subs map[*subscription]struct{}
}

// subscription is one waiting subscriber. C receives a value (coalesced)
// after an append to its domain, or to any domain when domain is empty.
type subscription struct {
	n      *notifier
	domain string
	C      chan struct{}
}

func newNotifier() *notifier { return &notifier{subs: map[*subscription]struct{}{}} }

// subscribe registers a subscriber for domain ("" for every domain).
func (n *notifier) subscribe(domain string) *subscription {
	s := &subscription{n: n, domain: domain, C: make(chan struct{}, 1)}
	n.mu.Lock()
	n.subs[s] = struct{}{}
	n.mu.Unlock()
	return s
}

// close unregisters the subscriber.
func (s *subscription) close() {
	s.n.mu.Lock()
	delete(s.n.subs, s)
	s.n.mu.Unlock()
}

// notify wakes every subscriber of domain.
func (n *notifier) notify(domain string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for s := range n.subs {
		if s.domain == "" || s.domain == domain {
			select {
			case s.C <- struct{}{}:
			default:
			}
		}
	}
}
