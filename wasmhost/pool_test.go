package wasmhost

import (
	"context"
	"sync"
	"testing"
)

// TestPoolWorkerAffinity: a stream goes to its connection's worker while
// that VM is healthy, to the least busy VM otherwise.
func TestPoolWorkerAffinity(t *testing.T) {
	vms := []*vm{{}, {}, {}}
	p := &pool{slots: append([]*vm(nil), vms...)}
	p.cond = sync.NewCond(&p.mu)
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		v, err := p.acquire(ctx, 4) // worker 4 of 3 slots: slot 1
		if err != nil || v != vms[1] {
			t.Fatalf("stream %d of worker 4 on %p, want slot 1 (%p): %v", i, v, vms[1], err)
		}
	}
	if vms[1].active != 5 {
		t.Fatalf("slot 1 has %d streams, want 5", vms[1].active)
	}
	// No preference: the least busy.
	if v, _ := p.acquire(ctx, -1); v == vms[1] {
		t.Fatal("unpreferred stream went to the busiest VM")
	}
	// The worker's VM failed (being replaced): the least busy healthy one.
	vms[1].unusable.Store(true)
	v, err := p.acquire(ctx, 1)
	if err != nil || v == vms[1] {
		t.Fatalf("stream of a failed worker on %p: %v", v, err)
	}
	p.slots[2] = nil // replacement in progress
	if v, _ := p.acquire(ctx, 2); v != vms[0] {
		t.Fatal("stream of a worker being replaced not on the remaining healthy VM")
	}
}
