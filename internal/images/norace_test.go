//go:build !race

package images_test

// raceEnabled: the race detector is on.
const raceEnabled = false
