//go:build race

package images_test

// raceEnabled: the race detector is on. Building and compressing three
// binaries under it takes minutes, so the whole build runs in the non-race
// step of make test (test-e2e) instead.
const raceEnabled = true
