package identity

import (
	"errors"
	"testing"
)

// TestIDCache: a remembered identity is the derived one, a failure is
// derived again on every call, and the cache starts over when full.
func TestIDCache(t *testing.T) {
	c := newIDCache[string](2)
	calls := 0
	derive := func(s string) func() (ID, error) {
		return func() (ID, error) {
			calls++
			return Parse(s)
		}
	}
	a := "spiffe://td/ns/a/sa/x"
	for range 3 {
		id, err := c.get(a, derive(a))
		if err != nil || id.String() != a {
			t.Fatalf("get: %v %v", id, err)
		}
	}
	if calls != 1 {
		t.Fatalf("derived %d times, want once", calls)
	}
	for range 2 {
		if _, err := c.get("bad", derive("spiffe://td/not-a-workload")); !errors.Is(err, ErrInvalidID) {
			t.Fatalf("bad: %v", err)
		}
	}
	if calls != 3 {
		t.Fatalf("a failure was remembered (%d derivations)", calls)
	}
	b, d := "spiffe://td/ns/b/sa/x", "spiffe://td/ns/d/sa/x"
	_, _ = c.get(b, derive(b))
	_, _ = c.get(d, derive(d)) // the third entry: starts over
	calls = 0
	if id, err := c.get(a, derive(a)); err != nil || id.String() != a || calls != 1 {
		t.Fatalf("after starting over: %v %v, %d derivations", id, err, calls)
	}
}
