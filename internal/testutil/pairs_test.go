package testutil

import (
	"strings"
	"testing"
)

// TestPairs: a warm-up pair, then ABBA order; the median of the ratios.
func TestPairs(t *testing.T) {
	var order []string
	rates := map[string][]float64{"b": {0, 100, 100, 100, 50}, "c": {0, 80, 90, 70, 100}}
	next := func(which string) func() float64 {
		return func() float64 {
			order = append(order, which)
			r := rates[which][0]
			rates[which] = rates[which][1:]
			return r
		}
	}
	p := Pairs(4, next("b"), next("c"))
	if got := strings.Join(order, ""); got != "bc"+"bccbbccb" {
		t.Fatalf("order %s", got)
	}
	if m := p.Median(); m != 0.9 {
		t.Fatalf("median %v of %v", m, p.Ratios)
	}
	var sb strings.Builder
	p.Print(&sb, "base", "cand", "target")
	if !strings.Contains(sb.String(), "load average") || !strings.Contains(sb.String(), "0.90") {
		t.Fatal(sb.String())
	}
}
