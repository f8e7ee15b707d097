package wasmhost

import (
	"sync"
	"sync/atomic"
	"time"
)

// workerPool runs tasks on long-lived goroutines. Calls into a VM need a
// deep Go stack (wazero's call engine, then the host functions): a fresh
// goroutine grows its stack by copying it several times on every stream
// or callout, which measured 2–3 % of the command path's CPU. A worker
// keeps its grown stack from task to task (until the GC shrinks an idle
// one).
//
// run never waits for a worker: with none idle it starts one, so tasks
// that block (a callout waiting for its response, a request body pump)
// cannot starve the others. Workers left idle for idleTimeout exit, and
// close stops them all.
type workerPool struct {
	work        chan func() // unbuffered: a send succeeds only into an idle worker
	quit        chan struct{}
	idleTimeout time.Duration

	mu      sync.Mutex
	closed  bool
	running sync.WaitGroup // workers
	started atomic.Int64   // workers ever started
}

func newWorkerPool(idleTimeout time.Duration) *workerPool {
	return &workerPool{work: make(chan func()), quit: make(chan struct{}), idleTimeout: idleTimeout}
}

// run runs f on an idle worker, or on a new one. It returns false, and
// runs nothing, once the pool is closed.
func (p *workerPool) run(f func()) bool {
	select {
	case p.work <- f:
		return true
	default:
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.running.Add(1)
	p.started.Add(1)
	go p.worker(f)
	return true
}

func (p *workerPool) worker(f func()) {
	defer p.running.Done()
	idle := time.NewTimer(p.idleTimeout)
	defer idle.Stop()
	for {
		f()
		f = nil // let the task be collected while the worker waits
		idle.Reset(p.idleTimeout)
		select {
		case f = <-p.work:
		case <-idle.C:
			return
		case <-p.quit:
			return
		}
	}
}

// close stops the idle workers and waits for the busy ones to finish their
// task; run then refuses new tasks.
func (p *workerPool) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	close(p.quit)
	p.mu.Unlock()
	p.running.Wait()
}

// goWorker runs f on a worker of the pool, or on a goroutine of its own
// once the pool is closed.
func (p *workerPool) goWorker(f func()) {
	if !p.run(f) {
		go f()
	}
}
