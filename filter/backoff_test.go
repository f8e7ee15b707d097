package filter

import (
	"testing"
	"time"
)

func TestParseGRPCTimeout(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"1H": time.Hour, "2M": 2 * time.Minute, "3S": 3 * time.Second, "250m": 250 * time.Millisecond,
		"7u": 7 * time.Microsecond, "99999999n": 99999999, "0m": 0,
	} {
		if got, ok := parseGRPCTimeout(in); !ok || got != want {
			t.Errorf("%q: %v %v, want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "m", "5", "5x", "-5m", "123456789m", "1.5S"} {
		if d, ok := parseGRPCTimeout(in); ok {
			t.Errorf("%q parsed as %v", in, d)
		}
	}
}
