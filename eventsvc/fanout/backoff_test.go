package fanout

import (
	"testing"
	"time"
)

func TestBackoffDoublesUpToMax(t *testing.T) {
	b := backoff{base: 10 * time.Millisecond, max: 70 * time.Millisecond}
	for _, tc := range []struct {
		attempt int
		want    time.Duration
	}{{1, 10 * time.Millisecond}, {2, 20 * time.Millisecond}, {3, 40 * time.Millisecond}, {4, 70 * time.Millisecond}, {50, 70 * time.Millisecond}} {
		for i := 0; i < 20; i++ {
			if d := b.delay(tc.attempt); d < tc.want || d > tc.want+tc.want/5 {
				t.Fatalf("attempt %d: delay %v, want %v plus at most 20%% jitter", tc.attempt, d, tc.want)
			}
		}
	}
}
