package fanout

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff is an exponential backoff: base doubling per attempt up to max,
// with up to 20% of random jitter added so retries of many workers spread.
type backoff struct {
	base, max time.Duration
}

// delay is the wait after the given failed attempt (1 for the first).
func (b backoff) delay(attempt int) time.Duration {
	d := b.base
	for i := 1; i < attempt && d < b.max; i++ {
		d *= 2
	}
	d = min(d, b.max)
	if j := int64(d) / 5; j > 0 {
		d += time.Duration(rand.Int64N(j))
	}
	return d
}

// sleep waits for the delay of attempt, or less if ctx is done first; it
// reports whether the full delay passed.
func (b backoff) sleep(ctx context.Context, attempt int) bool {
	t := time.NewTimer(b.delay(attempt))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
