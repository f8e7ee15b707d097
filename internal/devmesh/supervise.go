package devmesh

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Restart policy of the local mesh's subprocesses (the Python customer):
// one that exits on its own is started again after a back-off that doubles
// from RestartMin up to RestartMax, and starts again from RestartMin once
// the process has stayed up for RestartReset. The rest of the mesh keeps
// serving meanwhile; only the stopped domain's commands fail (UNAVAILABLE
// from its proxy) until it is back.
const (
	DefaultRestartMin   = 250 * time.Millisecond
	DefaultRestartMax   = 15 * time.Second
	DefaultRestartReset = time.Minute
)

// process is one run of a supervised subprocess.
type process interface {
	// Ready receives the address it serves on once it does.
	Ready() <-chan string
	// Done receives its exit: nil when ctx stopped it, else why it ended.
	Done() <-chan error
}

// supervisor keeps a subprocess running until ctx is done.
type supervisor struct {
	start func(ctx context.Context) (process, error)
	log   *slog.Logger // with the component's name
	// min, max and reset are the back-off's bounds and the uptime after
	// which it starts over (the defaults above when zero).
	min, max, reset time.Duration
	// ready is closed when the first run serves.
	ready chan struct{}
	// restarts is sent every restart's number (tests); optional.
	restarts chan<- int
}

// run starts the process and restarts it whenever it exits, until ctx is
// done; it returns nil then. It returns an error only when the first run
// cannot start or exits before it serves: a component that never worked is
// a configuration error (a missing module, a taken port), not a crash.
func (s *supervisor) run(ctx context.Context) error {
	b := &backoff.ExponentialBackOff{
		InitialInterval: cmpDuration(s.min, DefaultRestartMin), MaxInterval: cmpDuration(s.max, DefaultRestartMax),
		Multiplier: 2, RandomizationFactor: 0.2,
	}
	b.Reset()
	reset := cmpDuration(s.reset, DefaultRestartReset)
	served := false
	for n := 0; ; n++ {
		p, err := s.start(ctx)
		var started time.Time
		if err == nil {
			select {
			case a := <-p.Ready():
				started = time.Now()
				if !served {
					served = true
					s.log.Info("serving", "addr", a)
					close(s.ready)
				} else {
					s.log.Info("serving again", "addr", a, "restart", n)
				}
				err = <-p.Done()
			case err = <-p.Done():
				if err == nil && ctx.Err() == nil {
					err = errors.New("exited before it listened")
				}
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		if !served {
			return err
		}
		if !started.IsZero() && time.Since(started) >= reset {
			b.Reset()
		}
		wait := b.NextBackOff()
		s.log.Error("crashed; restarting", "err", err, "in", wait.Round(time.Millisecond), "restart", n+1)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		if s.restarts != nil {
			select {
			case s.restarts <- n + 1:
			default:
			}
		}
	}
}

func cmpDuration(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
