package testutil

import (
	"errors"
	"io"
	"testing"
)

// Collect reads a gRPC server stream (any Recv() (T, error)) to its end
// and returns every message; an error other than io.EOF fails the test.
func Collect[T any](tb testing.TB, s interface{ Recv() (T, error) }) []T {
	tb.Helper()
	var out []T
	for {
		m, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			tb.Fatalf("stream: %v (after %d messages)", err, len(out))
		}
		out = append(out, m)
	}
}
