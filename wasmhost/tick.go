package wasmhost

import "time"

// tickState drives proxy_on_tick for a VM's root context. The timer
// goroutine posts each tick onto the VM (taking its lock), like Envoy's
// per-worker timer.
type tickState struct {
	period  time.Duration
	updates chan time.Duration // to the running goroutine; nil when none
	quit    chan struct{}
}

// set changes the period (mu held).
func (t *tickState) set(v *vm, d time.Duration) {
	t.period = d
	if t.updates == nil {
		if d == 0 || v.closed || v.failed {
			return
		}
		t.updates = make(chan time.Duration, 1)
		t.quit = make(chan struct{})
		updates, quit := t.updates, t.quit
		v.gen.h.goBackground(func() { runTicker(v, d, updates, quit) })
		return
	}
	select {
	case <-t.updates:
	default:
	}
	t.updates <- d
}

// stop ends the goroutine (mu held).
func (t *tickState) stop() {
	if t.quit != nil {
		close(t.quit)
		t.quit = nil
		t.updates = nil
	}
}

func runTicker(v *vm, d time.Duration, updates <-chan time.Duration, quit <-chan struct{}) {
	var timer *time.Timer
	var c <-chan time.Time
	reset := func(d time.Duration) {
		if timer != nil {
			timer.Stop()
		}
		c = nil
		if d > 0 {
			timer = time.NewTimer(d)
			c = timer.C
		}
	}
	reset(d)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-quit:
			return
		case <-v.gen.h.closing:
			return
		case nd := <-updates:
			d = nd
			reset(d)
		case <-c:
			v.mu.Lock()
			if v.closed || v.failed {
				v.mu.Unlock()
				return
			}
			v.callExport("proxy_on_tick", v.rootID, uint64(v.rootID))
			v.mu.Unlock()
			reset(d)
		}
	}
}
