//go:build wasip1

package filter

import "testing"

// newWasmGuest needs a Wasm runtime, which a wasip1 test binary does not
// have: its scenarios run natively only.
func newWasmGuest(t *testing.T, _ *fakeHost, _ []byte) guest {
	t.Skip("wasm mode runs on the build host only")
	return nil
}
