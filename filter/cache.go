package filter

import "github.com/angzarr-mesh/angzarr/filter/internal/wire"

// aggCache keeps the histories of recently written aggregates, as the
// event service's Load answered them plus the pages appended through this
// VM since, so that the next command on a hot aggregate skips the load.
//
// It is an optimisation that never changes an answer. It is used only for
// a command that states its expected sequence (no auto_resequence) and has
// no idempotency key (whose check needs the load), and only when the
// entry's next sequence is the one the command expects. An entry can be
// stale — another VM, worker or replica wrote the aggregate since — and
// then the logic decided on an old history. Both ways that can matter are
// caught: the append at the old sequence is refused as a write conflict
// (answered ABORTED after a fresh load, as without the cache), and a
// business rejection is checked against a fresh load before it is passed
// on (ABORTED if the aggregate moved, the rejection itself if not). A
// decision the logic accepts on a stale history never gets stored.
//
// Bounded by bytes (Config.AggregateCacheBytes), least recently used
// first out. An entry is dropped on anything that leaves its state in
// doubt: a failed or duplicate append, a snapshot, forced sequences, a
// Record.
type aggCache struct {
	max, used int
	entries   map[string]*cacheEntry
	// lru is the sentinel of a ring: lru.next is the most recently used.
	lru cacheEntry
}

// cacheEntry is one aggregate's history.
type cacheEntry struct {
	key string
	// book is the raw EventBook of the history (snapshot and pages; the
	// cover is the one of the load and is replaced when the book is used).
	book []byte
	// next is the sequence the aggregate's next event gets.
	next          uint32
	before, after *cacheEntry
}

// entryOverhead approximates an entry's bookkeeping beyond its bytes.
const entryOverhead = 96

// newAggCache returns a cache of at most max bytes, or nil when max <= 0
// (every method of a nil cache is a no-op).
func newAggCache(max int) *aggCache {
	if max <= 0 {
		return nil
	}
	c := &aggCache{max: max, entries: map[string]*cacheEntry{}}
	c.lru.before, c.lru.after = &c.lru, &c.lru
	return c
}

func cacheKey(c *wire.Cover) string { return c.Domain + "\x00" + string(c.Root) }

func (e *cacheEntry) size() int { return len(e.key) + cap(e.book) + entryOverhead }

// get returns the entry of key, marking it recently used.
func (c *aggCache) get(key string) (*cacheEntry, bool) {
	if c == nil {
		return nil, false
	}
	e, ok := c.entries[key]
	if !ok {
		return nil, false
	}
	c.unlink(e)
	c.pushFront(e)
	return e, true
}

// put records the history a load answered (book is copied).
func (c *aggCache) put(key string, book []byte, next uint32) {
	if c == nil {
		return
	}
	c.drop(key)
	e := &cacheEntry{key: key, book: append([]byte(nil), book...), next: next}
	c.admit(e)
}

// extend adds the raw page fields stored at sequence at (the entry's next)
// to key's entry, whose next sequence becomes next; an entry at another
// sequence is dropped, as its state is in doubt.
func (c *aggCache) extend(key string, at uint32, pages []byte, next uint32) {
	if c == nil {
		return
	}
	e, ok := c.entries[key]
	if !ok {
		return
	}
	if e.next != at {
		c.drop(key)
		return
	}
	// The entry stays in the map unless it no longer fits.
	c.unlink(e)
	c.used -= e.size()
	e.book = append(e.book, pages...)
	e.next = next
	if !c.fit(e) {
		delete(c.entries, key)
		return
	}
	c.used += e.size()
	c.pushFront(e)
}

// drop forgets key.
func (c *aggCache) drop(key string) {
	if c == nil {
		return
	}
	if e, ok := c.entries[key]; ok {
		c.unlink(e)
		delete(c.entries, key)
		c.used -= e.size()
	}
}

// admit inserts e (not present) and evicts from the cold end until the
// cache fits; an entry larger than an eighth of the cache is not kept.
func (c *aggCache) admit(e *cacheEntry) {
	if !c.fit(e) {
		return
	}
	c.entries[e.key] = e
	c.used += e.size()
	c.pushFront(e)
}

// fit makes room for e (not in the ring) by evicting from the cold end,
// and reports false, evicting nothing, when e is larger than an eighth of
// the cache.
func (c *aggCache) fit(e *cacheEntry) bool {
	sz := e.size()
	if sz > c.max/8 {
		return false
	}
	for c.used+sz > c.max && c.lru.before != &c.lru {
		c.drop(c.lru.before.key)
	}
	return true
}

func (c *aggCache) unlink(e *cacheEntry) {
	e.before.after = e.after
	e.after.before = e.before
	e.before, e.after = nil, nil
}

func (c *aggCache) pushFront(e *cacheEntry) {
	e.before, e.after = &c.lru, c.lru.after
	c.lru.after.before = e
	c.lru.after = e
}

// len is the number of entries (tests).
func (c *aggCache) len() int {
	if c == nil {
		return 0
	}
	return len(c.entries)
}
