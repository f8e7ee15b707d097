//go:build race && !wasip1

package e2e

// raceEnabled reports whether the race detector is on: it slows the Wasm
// interpreter enough that the 10,000-command run becomes a non-race job.
const raceEnabled = true
