//go:build !race && !wasip1

package e2e

// raceEnabled reports whether the race detector is on.
const raceEnabled = false
