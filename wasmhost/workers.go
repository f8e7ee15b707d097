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
// cannot starve the others. Workers left idle for one to two idleTimeouts
// exit, and close stops them all.
type workerPool struct {
	work        chan task // unbuffered: a send succeeds only into an idle worker
	quit        chan struct{}
	idleTimeout time.Duration

	mu      sync.Mutex
	closed  bool
	running sync.WaitGroup // workers
	started atomic.Int64   // workers ever started
}

// task is a function to run and, if set, a WaitGroup to mark done after
// it (so callers need no wrapping closure).
type task struct {
	f    func()
	done *sync.WaitGroup
}

func (t task) run() {
	if t.done != nil {
		defer t.done.Done()
	}
	t.f()
}

func newWorkerPool(idleTimeout time.Duration) *workerPool {
	return &workerPool{work: make(chan task), quit: make(chan struct{}), idleTimeout: idleTimeout}
}

// run runs f on an idle worker, or on a new one. It returns false, and
// runs nothing, once the pool is closed.
func (p *workerPool) run(f func()) bool { return p.runTask(task{f: f}) }

func (p *workerPool) runTask(t task) bool {
	select {
	case p.work <- t:
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
	go p.worker(t)
	return true
}

func (p *workerPool) worker(t task) {
	defer p.running.Done()
	// A ticker rather than a timer reset per task: the worker exits at the
	// first tick that finds it ran nothing since the previous one, after
	// one to two idle timeouts.
	tick := time.NewTicker(p.idleTimeout)
	defer tick.Stop()
	busy := false
	for {
		if t.f != nil {
			t.run()
			t = task{} // let the task be collected while the worker waits
			busy = true
		}
		select {
		case t = <-p.work:
		case <-tick.C:
			if !busy {
				return
			}
			busy = false
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
// once the pool is closed; then, if done is not nil, it calls done.Done.
func (p *workerPool) goWorker(f func(), done *sync.WaitGroup) {
	t := task{f: f, done: done}
	if !p.runTask(t) {
		go t.run()
	}
}
