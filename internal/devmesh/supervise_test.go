package devmesh

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// shProcess is a real subprocess (sh -c SCRIPT) that is ready once it
// prints "ready".
type shProcess struct {
	ready chan string
	done  chan error
}

func (p *shProcess) Ready() <-chan string { return p.ready }
func (p *shProcess) Done() <-chan error   { return p.done }

func startSh(ctx context.Context, script string) (process, error) {
	cmd := exec.CommandContext(ctx, "sh", "-c", script)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &shProcess{ready: make(chan string, 1), done: make(chan error, 1)}
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			if s.Text() == "ready" {
				p.ready <- "sh"
			}
		}
		err := cmd.Wait()
		if ctx.Err() != nil {
			err = nil
		} else if err == nil {
			err = errors.New("exited")
		}
		p.done <- err
	}()
	return p, nil
}

// waits collects the back-off of every "crashed; restarting" record.
type waits struct {
	mu sync.Mutex
	d  []time.Duration
}

func (w *waits) Enabled(context.Context, slog.Level) bool { return true }
func (w *waits) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "crashed; restarting" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "in" {
			w.mu.Lock()
			w.d = append(w.d, a.Value.Duration())
			w.mu.Unlock()
		}
		return true
	})
	return nil
}
func (w *waits) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *waits) WithGroup(string) slog.Handler      { return w }
func (w *waits) all() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]time.Duration(nil), w.d...)
}

// supervise runs a supervisor of script until it has restarted n times,
// then stops it and returns the logged back-offs.
func supervise(t *testing.T, script string, reset time.Duration, n int) []time.Duration {
	t.Helper()
	w := &waits{}
	restarts := make(chan int, 1)
	sv := &supervisor{log: slog.New(w), ready: make(chan struct{}), restarts: restarts,
		min: 10 * time.Millisecond, max: 40 * time.Millisecond, reset: reset,
		start: func(ctx context.Context) (process, error) { return startSh(ctx, script) }}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- sv.run(ctx) }()
	for got := 0; got < n; {
		select {
		case got = <-restarts:
		case err := <-done:
			t.Fatalf("the supervisor returned %v after %d restarts", err, got)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("stopped: %v, want nil", err)
	}
	select {
	case <-sv.ready:
	default:
		t.Error("ready was never closed")
	}
	return w.all()[:n]
}

// TestSupervisorBacksOffUpToItsCap: a process that crashes as soon as it
// serves is restarted after a back-off that doubles up to the cap (with
// ±20% jitter), and stopping the supervisor returns nil.
func TestSupervisorBacksOffUpToItsCap(t *testing.T) {
	got := supervise(t, "echo ready; exit 3", time.Hour, 6)
	lo := []time.Duration{8, 16, 32, 32, 32, 32}
	hi := []time.Duration{12, 24, 48, 48, 48, 48}
	for i, d := range got {
		if d < lo[i]*time.Millisecond || d > hi[i]*time.Millisecond {
			t.Errorf("back-off %d: %v, want %v..%v (all: %v)", i, d, lo[i]*time.Millisecond, hi[i]*time.Millisecond, got)
		}
	}
}

// TestSupervisorResetsItsBackOffAfterAnUptime: a process that stayed up
// longer than the reset uptime is restarted after the shortest back-off
// again.
func TestSupervisorResetsItsBackOffAfterAnUptime(t *testing.T) {
	for i, d := range supervise(t, "echo ready; sleep 0.05; exit 3", time.Millisecond, 4) {
		if d > 12*time.Millisecond {
			t.Errorf("back-off %d: %v, want the first one (10ms ±20%%) every time", i, d)
		}
	}
}

// TestSupervisorFailsWhenTheFirstRunNeverServes: a process that exits
// before it serves is a configuration error, returned, not restarted.
func TestSupervisorFailsWhenTheFirstRunNeverServes(t *testing.T) {
	sv := &supervisor{log: slog.New(slog.DiscardHandler), ready: make(chan struct{}),
		start: func(ctx context.Context) (process, error) { return startSh(ctx, "echo oops >&2; exit 2") }}
	if err := sv.run(t.Context()); err == nil || !strings.Contains(err.Error(), "exit status 2") {
		t.Fatalf("first run exited: %v, want its exit status", err)
	}
}
