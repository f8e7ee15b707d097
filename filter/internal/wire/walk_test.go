package wire

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// walkWithProtowire is walk reading every tag, varint and length with
// protowire (no inline one-byte cases): the reference for walk.
func walkWithProtowire(what string, b []byte, fn func(f field) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: %s: bad tag: %v", ErrMalformed, what, protowire.ParseError(n))
		}
		f := field{num: num, typ: typ}
		var m int
		switch typ {
		case protowire.VarintType:
			f.v, m = protowire.ConsumeVarint(b[n:])
		case protowire.BytesType:
			f.b, m = protowire.ConsumeBytes(b[n:])
		default:
			m = protowire.ConsumeFieldValue(num, typ, b[n:])
		}
		if m < 0 {
			return fmt.Errorf("%w: %s: field %d: %v", ErrMalformed, what, num, protowire.ParseError(m))
		}
		f.raw = b[:n+m]
		if err := fn(f); err != nil {
			return err
		}
		b = b[n+m:]
	}
	return nil
}

// TestWalkMatchesProtowire: walk reads the same fields, and fails with the
// same error at the same point, as the protowire reference, on valid
// messages and on random corruptions of them.
func TestWalkMatchesProtowire(t *testing.T) {
	trace := func(walker func(fn func(f field) error) error) string {
		out := ""
		err := walker(func(f field) error {
			out += fmt.Sprintf("%d/%d/%d/%x/%x/%d;", f.num, f.typ, f.v, f.b, f.raw, cap(f.b))
			return nil
		})
		return fmt.Sprintf("%s err=%v", out, err)
	}
	seeds := [][]byte{
		marshal(t, sampleCommand(t)),
		marshal(t, sampleCommand(t).Pages[0]),
		{0x08, 0x96, 0x01, 0x12, 0x00, 0x1a, 0x80, 0x01},
		{0x00}, {0x80}, {0xf8, 0x01, 0x05}, {0x0d, 1, 2, 3, 4}, {0x09, 1}, {0x0e}, {0x0a, 0x7f},
	}
	for _, p := range sizedPages(t) {
		seeds = append(seeds, marshal(t, p))
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, seed := range seeds {
		for i := 0; i < 300; i++ {
			b := append([]byte(nil), seed...)
			if i > 0 && len(b) > 0 {
				for k := rnd.IntN(3) + 1; k > 0; k-- {
					switch j := rnd.IntN(len(b)); rnd.IntN(3) {
					case 0:
						b[j] = byte(rnd.UintN(256))
					case 1:
						b = b[:j]
					default:
						b[j] ^= 0x80
					}
					if len(b) == 0 {
						break
					}
				}
			}
			got := trace(func(fn func(f field) error) error { return walk("M", b, nil, fn) })
			want := trace(func(fn func(f field) error) error { return walkWithProtowire("M", b, fn) })
			if got != want {
				t.Fatalf("%x:\nwalk      %s\nprotowire %s", b, got, want)
			}
		}
	}
}
