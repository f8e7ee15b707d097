package wasmhost

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
)

// Header names and property paths cross the host boundary on every stream:
// lower-cased from net/http's canonical form for the plugin, canonicalised
// back for net/http, copied out of guest memory by the host functions. The
// same few names recur, so their forms are looked up in bounded,
// process-wide tables instead of being allocated each time. Lookups take
// no lock (copy-on-write maps); a table stops learning when full, after
// which unknown names are converted as before.

// internTable is a bounded copy-on-write map, safe for concurrent use.
type internTable[V any] struct {
	m    atomic.Pointer[map[string]V]
	full atomic.Bool
	mu   sync.Mutex // serialises learners
	max  int
}

func (t *internTable[V]) get(k string) (V, bool) {
	if m := t.m.Load(); m != nil {
		v, ok := (*m)[k]
		return v, ok
	}
	var zero V
	return zero, false
}

// getBytes looks k up without converting it to a string.
func (t *internTable[V]) getBytes(k []byte) (V, bool) {
	if m := t.m.Load(); m != nil {
		v, ok := (*m)[string(k)]
		return v, ok
	}
	var zero V
	return zero, false
}

// learning reports whether the table still takes entries.
func (t *internTable[V]) learning() bool { return !t.full.Load() }

// learn adds entries unless the table is full.
func (t *internTable[V]) learn(entries map[string]V) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var old map[string]V
	if p := t.m.Load(); p != nil {
		old = *p
	}
	if len(old)+len(entries) > t.max {
		t.full.Store(true)
		return
	}
	m := make(map[string]V, len(old)+len(entries))
	for k, v := range old {
		m[k] = v
	}
	for k, v := range entries {
		m[k] = v
	}
	t.m.Store(&m)
}

// keyForms are the two spellings of a header name.
type keyForms struct{ lower, canon string }

// headerKeys maps a header name in lower-case or canonical form to both.
var headerKeys = func() *internTable[keyForms] {
	t := &internTable[keyForms]{max: 1024}
	for _, k := range []string{
		":authority", ":method", ":path", ":scheme", ":status",
		"accept", "accept-encoding", "authorization", "content-length", "content-type",
		"date", "grpc-accept-encoding", "grpc-encoding", "grpc-message", "grpc-status",
		"grpc-status-details-bin", "grpc-timeout", "te", "traceparent", "tracestate",
		"user-agent", "x-request-id",
	} {
		learnKey(t, k)
	}
	return t
}()

// learnKey converts k to both forms and remembers them, under k too.
func learnKey(t *internTable[keyForms], k string) keyForms {
	f := keyForms{lower: strings.ToLower(k)}
	f.canon = f.lower
	if f.lower == "" || f.lower[0] != ':' {
		f.canon = http.CanonicalHeaderKey(f.lower)
	}
	if t.learning() {
		t.learn(map[string]keyForms{k: f, f.lower: f, f.canon: f})
	}
	return f
}

// lowerKey is strings.ToLower(k) for a header name.
func lowerKey(k string) string {
	if f, ok := headerKeys.get(k); ok {
		return f.lower
	}
	return learnKey(headerKeys, k).lower
}

// canonicalKey is http.CanonicalHeaderKey(k) for a header name.
func canonicalKey(k string) string {
	if f, ok := headerKeys.get(k); ok {
		return f.canon
	}
	return learnKey(headerKeys, k).canon
}

// guestKey is the lower-case header name in guest bytes b.
func guestKey(b []byte) string {
	if f, ok := headerKeys.getBytes(b); ok {
		return f.lower
	}
	return learnKey(headerKeys, string(b)).lower
}

// guestStrings interns names plugins pass again and again: property
// paths, header names in pairs, gRPC callout paths.
var guestStrings = &internTable[string]{max: 1024}

// guestString is b as a string, interned.
func guestString(b []byte) string {
	if p, ok := guestStrings.getBytes(b); ok {
		return p
	}
	p := string(b)
	if guestStrings.learning() {
		guestStrings.learn(map[string]string{p: p})
	}
	return p
}

// grpcMethodPath is "/" + service + "/" + method, interned.
func grpcMethodPath(service, method []byte) string {
	var buf [256]byte
	b := append(append(append(append(buf[:0], '/'), service...), '/'), method...)
	return guestString(b)
}

// trailerKeys maps a lower-case trailer name to net/http's key for it in
// a handler's header map (http.TrailerPrefix + canonical name).
var trailerKeys = &internTable[string]{max: 256}

// trailerKey is http.TrailerPrefix + http.CanonicalHeaderKey(k).
func trailerKey(k string) string {
	if tk, ok := trailerKeys.get(k); ok {
		return tk
	}
	tk := http.TrailerPrefix + canonicalKey(k)
	if trailerKeys.learning() {
		trailerKeys.learn(map[string]string{k: tk})
	}
	return tk
}
