package wasmhost

import (
	"context"
	"errors"
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
	// The worker's VM failed: its streams fail (Envoy: the worker's plugin
	// failed), unpreferred streams go to a healthy VM.
	vms[1].unusable.Store(true)
	if v, err := p.acquire(ctx, 1); !errors.Is(err, errPluginFailed) {
		t.Fatalf("stream of a failed worker on %p: %v, want errPluginFailed", v, err)
	}
	if v, err := p.acquire(ctx, -1); err != nil || v == vms[1] {
		t.Fatalf("unpreferred stream on %p: %v", v, err)
	}
	p.slots[2] = nil // reload in progress (FailReload)
	if v, err := p.acquire(ctx, 2); !errors.Is(err, errPluginFailed) {
		t.Fatalf("stream of a reloading worker on %p: %v, want errPluginFailed", v, err)
	}
	// No healthy VM and none reloading: fail at once.
	vms[0].unusable.Store(true)
	p.slots[2] = vms[2]
	vms[2].unusable.Store(true)
	if _, err := p.acquire(ctx, -1); !errors.Is(err, errPluginFailed) {
		t.Fatalf("no healthy VM: %v, want errPluginFailed", err)
	}
}
