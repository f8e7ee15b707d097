package wasmhost

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitDone fails t unless wg finishes within d.
func waitDone(t *testing.T, wg *sync.WaitGroup, d time.Duration, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s: still running after %s", what, d)
	}
}

// TestWorkerPoolReuses: tasks run one after another share one goroutine.
func TestWorkerPoolReuses(t *testing.T) {
	p := newWorkerPool(time.Minute)
	defer p.close()
	done := make(chan struct{})
	if !p.run(func() { done <- struct{}{} }) {
		t.Fatal("run refused a task on an open pool")
	}
	<-done
	for i := 0; i < 5; i++ {
		// A send on work completes only into an idle worker: the first one,
		// back from its task.
		select {
		case p.work <- task{f: func() { done <- struct{}{} }}:
		case <-time.After(10 * time.Second):
			t.Fatal("the worker did not come back for another task")
		}
		<-done
	}
	if n := p.started.Load(); n != 1 {
		t.Fatalf("%d workers started for 6 sequential tasks, want 1", n)
	}
}

// TestWorkerPoolNeverWaits: a task does not wait for a busy worker; a new
// one runs it.
func TestWorkerPoolNeverWaits(t *testing.T) {
	p := newWorkerPool(time.Minute)
	defer p.close()
	release := make(chan struct{})
	blocked := make(chan struct{})
	p.run(func() { close(blocked); <-release })
	<-blocked
	ran := make(chan struct{})
	p.run(func() { close(ran) })
	select {
	case <-ran:
	case <-time.After(5 * time.Second):
		t.Fatal("second task waited for the busy worker")
	}
	close(release)
	if n := p.started.Load(); n != 2 {
		t.Fatalf("%d workers started, want 2", n)
	}
}

// TestWorkerPoolIdleExit: an idle worker exits after the idle timeout.
func TestWorkerPoolIdleExit(t *testing.T) {
	p := newWorkerPool(10 * time.Millisecond)
	defer p.close()
	var ran atomic.Bool
	p.run(func() { ran.Store(true) })
	waitDone(t, &p.running, 5*time.Second, "idle worker")
	if !ran.Load() {
		t.Fatal("task did not run")
	}
	// The pool still works: a new worker starts.
	done := make(chan struct{})
	p.run(func() { close(done) })
	<-done
	if n := p.started.Load(); n != 2 {
		t.Fatalf("%d workers started, want 2", n)
	}
}

// TestWorkerPoolClose: close waits for busy workers, stops idle ones, and
// the pool then refuses tasks (goWorker runs them on a goroutine instead).
func TestWorkerPoolClose(t *testing.T) {
	p := newWorkerPool(time.Minute)
	idleDone := make(chan struct{})
	p.run(func() { close(idleDone) })
	<-idleDone
	release := make(chan struct{})
	busy := make(chan struct{})
	var finished atomic.Bool
	p.run(func() {
		close(busy)
		<-release
		time.Sleep(10 * time.Millisecond)
		finished.Store(true)
	})
	<-busy
	closed := make(chan struct{})
	go func() { p.close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("close returned while a task was running")
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("close did not return after the task finished")
	}
	if !finished.Load() {
		t.Fatal("close returned before the busy task finished")
	}
	if p.run(func() { t.Error("closed pool ran a task") }) {
		t.Fatal("closed pool accepted a task")
	}
	ran := make(chan struct{})
	p.goWorker(func() { close(ran) }, nil)
	<-ran
	var wg sync.WaitGroup
	wg.Add(1)
	p.goWorker(func() {}, &wg)
	waitDone(t, &wg, 5*time.Second, "goWorker on a closed pool")
	p.close() // twice is fine
}

// TestWorkerPoolDone: goWorker marks its WaitGroup done after the task.
func TestWorkerPoolDone(t *testing.T) {
	p := newWorkerPool(time.Minute)
	defer p.close()
	var wg sync.WaitGroup
	var n atomic.Int32
	for i := 0; i < 10; i++ {
		wg.Add(1)
		p.goWorker(func() { time.Sleep(time.Millisecond); n.Add(1) }, &wg)
	}
	waitDone(t, &wg, 5*time.Second, "tasks")
	if n.Load() != 10 {
		t.Fatalf("WaitGroup done after %d of 10 tasks", n.Load())
	}
}

// BenchmarkWorkerPoolHandoff: one task handed to an idle worker and
// waited for, as ServeHTTP does.
func BenchmarkWorkerPoolHandoff(b *testing.B) {
	p := newWorkerPool(time.Minute)
	defer p.close()
	done := make(chan struct{}, 1)
	f := func() { done <- struct{}{} }
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		p.run(f)
		<-done
	}
}
