package grpcframe

import (
	"bytes"
	"errors"
	"testing"
)

func TestDecode(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want []byte
		err  error
	}{
		{"empty message", []byte{0, 0, 0, 0, 0}, []byte{}, nil},
		{"one message", []byte{0, 0, 0, 0, 2, 'h', 'i'}, []byte("hi"), nil},
		{"compressed", []byte{1, 0, 0, 0, 2, 'h', 'i'}, nil, ErrCompressed},
		{"bad flag", []byte{7, 0, 0, 0, 0}, nil, ErrBadFlag},
		{"short header", []byte{0, 0, 0}, nil, ErrTruncated},
		{"nothing", nil, nil, ErrTruncated},
		{"short message", []byte{0, 0, 0, 0, 3, 'h', 'i'}, nil, ErrTruncated},
		{"huge length", []byte{0, 0xff, 0xff, 0xff, 0xff, 'h'}, nil, ErrTruncated},
		{"two messages", []byte{0, 0, 0, 0, 1, 'h', 0, 0, 0, 0, 1, 'i'}, nil, ErrTrailingData},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(tt.in)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err == nil && !bytes.Equal(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	for _, msg := range [][]byte{{}, []byte("x"), bytes.Repeat([]byte("ab"), 70000)} {
		got, err := Decode(Encode(msg))
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("round trip of %d bytes: %v", len(msg), err)
		}
	}
}

// FuzzDecode checks Decode never panics and accepts exactly what Encode
// produces.
func FuzzDecode(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 2, 'h', 'i'})
	f.Add([]byte{1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, body []byte) {
		msg, err := Decode(body)
		if err != nil {
			return
		}
		if !bytes.Equal(Encode(msg), body) {
			t.Fatalf("accepted %x but it does not re-encode identically", body)
		}
	})
}
