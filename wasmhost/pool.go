package wasmhost

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// errPluginFailed: the stream's worker has a failed plugin (its failure
// policy decides: fail closed or pass through).
var errPluginFailed = errors.New("wasmhost: the worker's wasm plugin failed")

// pool holds one VM per worker, like Envoy's per-worker VMs. A stream is
// bound to one VM for its whole life. As in Envoy, where a downstream
// connection belongs to one worker, the streams of a connection accepted by
// Serve go to that connection's VM (its worker, chosen round-robin at
// accept); other streams, and those whose VM is being replaced, go to the
// healthy VM with the fewest streams. A VM that fails leaves its worker's
// plugin failed (its streams fail or pass through, per the failure
// policy); under FailReload a fresh VM replaces it after the back-off.
type pool struct {
	g      *generation
	mu     sync.Mutex
	cond   *sync.Cond // signalled when a slot gets a healthy VM or the pool closes
	slots  []*vm      // nil while a replacement is starting
	next   int
	closed bool
	// lastErr is the last replacement failure, reported to waiting streams.
	lastErr error
	// retiring VMs: failed ones still having streams.
	wg sync.WaitGroup
}

func newPool(ctx context.Context, g *generation, n int) (*pool, error) {
	p := &pool{g: g, slots: make([]*vm, n)}
	p.cond = sync.NewCond(&p.mu)
	for i := range p.slots {
		v, err := newVM(ctx, g, i)
		if err != nil {
			for _, o := range p.slots[:i] {
				o.close(ctx)
			}
			return nil, err
		}
		p.slots[i] = v
	}
	return p, nil
}

// tryAcquire is acquire without waiting: (nil, nil) when no VM is healthy
// now. The common case needs no timeout context.
func (p *pool) tryAcquire(worker int) (*vm, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pick(worker)
}

// pick takes the VM for a new stream, if any (mu held).
func (p *pool) pick(worker int) (*vm, error) {
	if p.closed {
		return nil, ErrClosed
	}
	n := len(p.slots)
	var best *vm
	if worker >= 0 {
		v := p.slots[worker%n]
		if v == nil || v.isFailed() {
			// The worker's plugin failed (and is reloading under
			// FailReload): its streams fail, as in Envoy, where a
			// connection's streams stay on its worker.
			return nil, errPluginFailed
		}
		best = v
	}
	if best == nil {
		best = p.leastBusy()
	}
	if best == nil && !slices.Contains(p.slots, nil) {
		return nil, errPluginFailed // nothing is reloading
	}
	if best != nil {
		p.next = (p.next + 1) % n
		best.active++
	}
	return best, nil
}

// acquire returns a healthy VM for a new stream: the one of worker when it
// is healthy (worker < 0: none preferred), else the least busy, waiting
// (bounded by ctx) while replacements start.
func (p *pool) acquire(ctx context.Context, worker int) (*vm, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	defer stop()
	for {
		if v, err := p.pick(worker); v != nil || err != nil {
			return v, err
		}
		if err := ctx.Err(); err != nil {
			if p.lastErr != nil {
				return nil, errors.Join(ErrNoVM, p.lastErr)
			}
			return nil, ErrNoVM
		}
		p.cond.Wait()
	}
}

// leastBusy is the healthy VM with the fewest streams (nil if none); ties
// rotate (mu held).
func (p *pool) leastBusy() *vm {
	var best *vm
	n := len(p.slots)
	for i := 0; i < n; i++ {
		v := p.slots[(p.next+i)%n]
		if v == nil || v.isFailed() {
			continue
		}
		if best == nil || v.active < best.active {
			best = v
		}
	}
	return best
}

// release ends a stream on v.
func (p *pool) release(v *vm) {
	p.mu.Lock()
	v.active--
	p.mu.Unlock()
}

// replace starts a new VM for the slot of failed VM v. Called with v.mu
// held, so it only spawns work.
func (p *pool) replace(v *vm) {
	p.mu.Lock()
	idx := -1
	for i, s := range p.slots {
		if s == v {
			idx = i
		}
	}
	if idx < 0 || p.closed {
		p.mu.Unlock()
		return
	}
	p.slots[idx] = nil
	p.wg.Add(1)
	p.mu.Unlock()
	go func() {
		defer p.wg.Done()
		// The failed VM is closed once its caller unlocks it.
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			v.close(context.Background())
		}()
		base := cmp.Or(p.g.plugin.ReloadBackoff, DefaultReloadBackoff)
		backoff := base
		for {
			select {
			case <-p.g.h.closing:
				return
			case <-time.After(backoff):
			}
			if backoff < 10*base {
				backoff = min(2*backoff, 10*base)
			}
			nv, err := newVM(context.Background(), p.g, idx)
			p.mu.Lock()
			if err == nil {
				if p.closed {
					p.mu.Unlock()
					nv.close(context.Background())
					return
				}
				p.slots[idx] = nv
				p.lastErr = nil
				p.cond.Broadcast()
				p.mu.Unlock()
				p.g.h.log.Info("wasm VM replaced", "plugin", p.g.plugin.Name, "vm", idx)
				return
			}
			p.lastErr = err
			closed := p.closed
			p.cond.Broadcast()
			p.mu.Unlock()
			p.g.h.log.Error("wasm VM replacement failed", "plugin", p.g.plugin.Name, "vm", idx, "err", err)
			if closed {
				return
			}
		}
	}()
}

// close stops replacements and closes every VM.
func (p *pool) close(ctx context.Context) {
	p.mu.Lock()
	p.closed = true
	slots := append([]*vm(nil), p.slots...)
	p.cond.Broadcast()
	p.mu.Unlock()
	p.wg.Wait()
	p.mu.Lock()
	slots = append(slots, p.slots...)
	p.mu.Unlock()
	for _, v := range slots {
		if v != nil {
			v.close(ctx)
		}
	}
}

// isFailed reports whether the VM failed or closed, without its lock (the
// pool must not take a VM lock: VMs call into the pool while locked).
func (v *vm) isFailed() bool { return v.unusable.Load() }
