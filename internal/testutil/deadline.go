// Package testutil holds the waiting and port helpers that tests across the
// repository share.
package testutil

import (
	"testing"
	"time"
)

// Deadline fires when nine tenths of the time left before the test
// binary's -timeout have passed, so a wait that never ends fails with its
// own message rather than the timeout's panic, and no wait has a bound that
// depends on how fast this machine compiles or runs anything. With no
// -timeout it never fires.
func Deadline(tb testing.TB) <-chan time.Time {
	type deadliner interface{ Deadline() (time.Time, bool) }
	if d, ok := tb.(deadliner); ok {
		if at, ok := d.Deadline(); ok {
			return time.After(time.Until(at) * 9 / 10)
		}
	}
	return nil
}
