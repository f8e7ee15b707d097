package console

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzLogCursor: a cursor from a client either is refused or round-trips
// through formatCursor to the same positions.
func FuzzLogCursor(f *testing.F) {
	for _, s := range []string{"", "0:0", "0:12,3:99", "1:2,1:3", "x", "0:18446744073709551615", "4294967296:1", ",", "0:1,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r := httptest.NewRequest("GET", "/api/domains/d/log?cursor="+url.QueryEscape(s), nil)
		c, err := logCursor(r)
		if err != nil {
			return
		}
		r2 := httptest.NewRequest("GET", "/api/domains/d/log?cursor="+url.QueryEscape(formatCursor(c)), nil)
		c2, err := logCursor(r2)
		if err != nil || len(c2) != len(c) {
			t.Fatalf("%q → %v → %q → %v, %v", s, c, formatCursor(c), c2, err)
		}
		for p, off := range c {
			if c2[p] != off {
				t.Fatalf("%q: partition %d at %d, then %d", s, p, off, c2[p])
			}
		}
	})
}

// FuzzParseAction: an action body is refused or names a valid subscriber
// and 1 to 1000 valid dead letter ids.
func FuzzParseAction(f *testing.F) {
	for _, s := range []string{`{"subscriber":"audit","ids":["1"]}`, `{"subscriber":"","ids":[]}`, `{"subscriber":"a","ids":["../x"]}`, `[]`, `{"subscriber":"a","ids":["1"],"x":1}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest("POST", "/api/deadletters/replay", strings.NewReader(body))
		req, err := parseAction(r)
		if err != nil {
			return
		}
		if subscriberName("subscriber", req.Subscriber) != nil || len(req.IDs) == 0 || len(req.IDs) > 1000 {
			t.Fatalf("accepted %q as %+v", body, req)
		}
		for _, id := range req.IDs {
			if deadLetterID(id) != nil {
				t.Fatalf("accepted id %q", id)
			}
		}
	})
}
