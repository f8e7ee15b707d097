package filter

import (
	"fmt"
	"testing"
)

// TestFormatUUID: 8-4-4-4-12 lowercase hex of the 16 bytes, and version 4
// with the RFC 9562 variant for generated ids.
func TestFormatUUID(t *testing.T) {
	for _, b := range [][]byte{
		make([]byte, 16),
		{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff},
		{0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0xfa, 0xf9, 0xf8, 0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78},
	} {
		want := fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
		if got := formatUUID(b); got != want {
			t.Errorf("formatUUID(%x) = %s, want %s", b, got, want)
		}
		if got := rootString(b); got != want {
			t.Errorf("rootString(%x) = %s, want %s", b, got, want)
		}
	}
	if got := rootString([]byte{0xab, 0x01}); got != "ab01" {
		t.Errorf("rootString of 2 bytes = %s", got)
	}
	n := uint64(0)
	id := newUUIDv4(func() uint64 { n += 0x9e3779b97f4a7c15; return n })
	if len(id) != 36 || id[14] != '4' || (id[19] != '8' && id[19] != '9' && id[19] != 'a' && id[19] != 'b') {
		t.Errorf("newUUIDv4 = %s: not a version 4 UUID", id)
	}
}
