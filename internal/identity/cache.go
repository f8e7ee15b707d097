package identity

import (
	"crypto/x509"
	"sync"
	"sync/atomic"
)

// idCache remembers the identity derived from a key that determines it
// (a connection's verified leaf certificate, an x-forwarded-client-cert
// value): deriving it (URI parsing, the SPIFFE and DNS-1123 checks) costs
// more per call than the rest of the authorization. The derivation is a
// pure function of the key, and a certificate is verified by the TLS
// handshake before any call, so remembering changes no decision. Bounded:
// when it holds max entries it starts over.
type idCache[K comparable] struct {
	max int64
	n   atomic.Int64
	m   atomic.Pointer[sync.Map]
}

func newIDCache[K comparable](max int64) *idCache[K] {
	c := &idCache[K]{max: max}
	c.m.Store(&sync.Map{})
	return c
}

// get returns the identity of k, deriving it with derive on a miss;
// failures are not remembered.
func (c *idCache[K]) get(k K, derive func() (ID, error)) (ID, error) {
	m := c.m.Load()
	if v, ok := m.Load(k); ok {
		return v.(ID), nil
	}
	id, err := derive()
	if err != nil {
		return ID{}, err
	}
	if c.n.Add(1) > c.max {
		m = &sync.Map{}
		c.m.Store(m)
		c.n.Store(1)
	}
	m.Store(k, id)
	return id, nil
}

// Sizes of the caches: a server's live connections (certificates) and its
// callers behind a sidecar (header values).
const (
	maxCachedCerts   = 4096
	maxCachedHeaders = 1024
	// maxCachedHeaderLen: longer header values are parsed on every call
	// rather than held.
	maxCachedHeaderLen = 2048
)

var (
	certIDs   = newIDCache[*x509.Certificate](maxCachedCerts)
	headerIDs = newIDCache[string](maxCachedHeaders)
)
