package testutil

import (
	"testing"
	"time"
)

// pollInterval is how often Eventually checks its condition.
const pollInterval = 10 * time.Millisecond

// Eventually waits until cond holds, checking every 10 ms. It has no bound
// of its own, which would depend on how fast this machine is: it fails
// the test when the test binary's deadline nears (Deadline), saying what
// it waited for, or as soon as the test has failed elsewhere (a server
// goroutine's t.Error).
func Eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	EventuallyWhy(tb, func() (bool, string) { return cond(), "waiting for " + what })
}

// EventuallyWhy is Eventually for a condition that says why it does not
// hold yet; the last reason is the failure's message.
func EventuallyWhy(tb testing.TB, cond func() (done bool, why string)) {
	tb.Helper()
	deadline := Deadline(tb)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		ok, why := cond()
		if ok {
			return
		}
		if tb.Failed() {
			tb.FailNow()
		}
		select {
		case <-deadline:
			tb.Fatalf("not before the test's deadline: %s", why)
		case <-tick.C:
		}
	}
}
