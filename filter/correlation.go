package filter

import (
	"encoding/hex"
	"math/rand/v2"

	"github.com/angzarr-mesh/angzarr/internal/wellknown"
)

// CorrelationHeader is the response header that returns a command's
// correlation id to the client.
const CorrelationHeader = wellknown.CorrelationHeader

// newUUIDv4 returns a random RFC 9562 version 4 UUID in its text form. The
// bits come from the runtime's ChaCha8 generator, which Go seeds from the
// host's random source (WASI random_get) and never blocks.
func newUUIDv4(rnd func() uint64) string {
	var b [16]byte
	hi, lo := rnd(), rnd()
	for i := 0; i < 8; i++ {
		b[i] = byte(hi >> (8 * i))
		b[8+i] = byte(lo >> (8 * i))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return formatUUID(b[:])
}

// defaultRandom is the generator correlation ids come from.
func defaultRandom() uint64 { return rand.Uint64() }

// formatUUID writes 16 bytes as 8-4-4-4-12 lowercase hex.
func formatUUID(b []byte) string {
	const digits = "0123456789abcdef"
	var out [36]byte
	j := 0
	for i, c := range b[:16] {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out[j] = '-'
			j++
		}
		out[j], out[j+1] = digits[c>>4], digits[c&15]
		j += 2
	}
	return string(out[:])
}

// rootString renders an aggregate root for messages: a UUID when it has 16
// bytes, hex otherwise.
func rootString(b []byte) string {
	if len(b) == 16 {
		return formatUUID(b)
	}
	return hex.EncodeToString(b)
}
