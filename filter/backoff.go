package filter

import (
	"strconv"
	"time"
)

// retryDelay is the back-off before the next retry of a write conflict
// (s.retries of them made so far): a random wait ("full jitter") between 0
// and unit·2^(retries+1), where unit is what the attempt that just
// conflicted took (at least RetryBackoff), capped by RetryBackoffMax and by
// half of what the command's deadline leaves. Writers colliding on one
// aggregate so spread out over a window that grows until it holds them
// all, whatever one attempt costs on this proxy, instead of colliding
// again at once. It reports false when the deadline has passed: no retry
// can finish in time. It starts the clock of the retry's attempt.
func (s *Stream) retryDelay() (time.Duration, bool) {
	base, most := s.p.cfg.RetryBackoffs()
	now := s.host().Now()
	unit := max(base, now.Sub(s.attemptStart))
	limit := most
	if s.retries < 30 && unit < most>>(s.retries+1) {
		limit = unit << (s.retries + 1)
	}
	if !s.deadline.IsZero() {
		left := s.deadline.Sub(now)
		if left <= 0 {
			return 0, false
		}
		limit = min(limit, left/2)
	}
	var d time.Duration
	if limit > 0 {
		d = time.Duration(s.p.random() % uint64(limit+1))
	}
	s.attemptStart = now.Add(d)
	return d, true
}

// readDeadline sets s.deadline from the request's grpc-timeout header
// (none when absent or malformed: the client set no deadline).
func (s *Stream) readDeadline() {
	v, ok := s.host().GetHeader(RequestHeaders, "grpc-timeout")
	if !ok {
		return
	}
	if d, ok := parseGRPCTimeout(v); ok {
		s.deadline = s.start.Add(d)
	}
}

// parseGRPCTimeout parses a gRPC timeout header: at most 8 digits and a
// unit (H, M, S, m, u, n).
func parseGRPCTimeout(v string) (time.Duration, bool) {
	if len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	n, err := strconv.ParseUint(v[:len(v)-1], 10, 64)
	if err != nil {
		return 0, false
	}
	var unit time.Duration
	switch v[len(v)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	return time.Duration(n) * unit, true
}
