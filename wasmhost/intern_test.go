package wasmhost

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
)

func TestHeaderKeyForms(t *testing.T) {
	for _, k := range []string{"content-type", "Content-Type", "CONTENT-TYPE", "x-Odd-Name", ":path", "grpc-status", "X-New-One", "weird key", ""} {
		for i := 0; i < 2; i++ { // learned, then from the table
			if got, want := lowerKey(k), strings.ToLower(k); got != want {
				t.Errorf("lowerKey(%q) = %q, want %q", k, got, want)
			}
			want := http.CanonicalHeaderKey(strings.ToLower(k))
			if strings.HasPrefix(k, ":") {
				want = k
			}
			if got := canonicalKey(k); got != want {
				t.Errorf("canonicalKey(%q) = %q, want %q", k, got, want)
			}
			if got, want := guestKey([]byte(k)), strings.ToLower(k); got != want {
				t.Errorf("guestKey(%q) = %q, want %q", k, got, want)
			}
		}
	}
	if got := guestString([]byte("a\x00b")); got != "a\x00b" {
		t.Errorf("guestString = %q", got)
	}
}

// TestInternTableBounded: a full table stops learning (names keep
// converting correctly) and lookups stay allocation-free.
func TestInternTableBounded(t *testing.T) {
	tab := &internTable[keyForms]{max: 8}
	for i := 0; i < 20; i++ {
		k := "X-Name-" + strconv.Itoa(i)
		if f := learnKey(tab, k); f.lower != strings.ToLower(k) || f.canon != k {
			t.Fatalf("learnKey(%q) = %+v", k, f)
		}
	}
	if n := len(*tab.m.Load()); n > 8 {
		t.Fatalf("table holds %d entries, max 8", n)
	}
	if tab.learning() {
		t.Fatal("full table still learning")
	}
	if _, ok := tab.get("x-name-0"); !ok {
		t.Fatal("early name forgotten")
	}
	b := []byte("content-type")
	if n := testing.AllocsPerRun(100, func() { _ = guestKey(b); _ = canonicalKey("content-type"); _ = lowerKey("Content-Type") }); n != 0 {
		t.Errorf("known names: %v allocs per lookup", n)
	}
}

// TestInternConcurrent runs lookups and learning at once (for -race).
func TestInternConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				k := "X-Conc-" + strconv.Itoa(i%50)
				if lowerKey(k) != strings.ToLower(k) || canonicalKey(strings.ToLower(k)) != k {
					t.Error("wrong form for", k)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestToHTTPSharedValues: names appear once each with their values, a
// repeated name keeps both, and a value slice does not alias another's.
func TestToHTTPSharedValues(t *testing.T) {
	m := &headerMap{}
	m.add(":path", "/x")
	m.add("a", "1")
	m.add("b", "2")
	m.add("a", "3")
	m.add("connection", "close")
	h := http.Header{}
	m.toHTTP(h)
	if len(h) != 2 || strings.Join(h["A"], ",") != "1,3" || strings.Join(h["B"], ",") != "2" {
		t.Fatalf("toHTTP = %v", h)
	}
	h["B"] = append(h["B"], "4")
	if strings.Join(h["A"], ",") != "1,3" {
		t.Fatalf("appending to B changed A: %v", h)
	}
}

// TestCommandAttrsTable: a (domain, outcome) pair is built once and found
// from bytes without allocating; past the bound pairs are still built,
// correctly, but not kept.
func TestCommandAttrsTable(t *testing.T) {
	var tab commandAttrTable
	a := commandAttrsFor(&tab, "counter", "ok")
	if b := commandAttrsFor(&tab, []byte("counter"), []byte("ok")); b != a {
		t.Fatal("same pair built twice")
	}
	if b := commandAttrsFor(&tab, "counter", "rejected"); b == a {
		t.Fatal("different outcomes share attributes")
	}
	d, o := []byte("counter"), []byte("ok")
	if n := testing.AllocsPerRun(100, func() { _ = commandAttrsFor(&tab, d, o) }); n != 0 {
		t.Errorf("known pair: %v allocs per lookup", n)
	}
	for i := 0; i < 2*maxCommandAttrs; i++ {
		commandAttrsFor(&tab, "d"+strconv.Itoa(i), "ok")
	}
	if tab.n > maxCommandAttrs {
		t.Fatalf("table holds %d pairs, max %d", tab.n, maxCommandAttrs)
	}
	extra := commandAttrsFor(&tab, "beyond", "ok")
	if extra == nil || len(extra.rec) != 1 || len(extra.add) != 1 {
		t.Fatal("no attributes for a pair beyond the bound")
	}
	if commandAttrsFor(&tab, "counter", "ok") != a {
		t.Fatal("early pair forgotten")
	}
}

func TestGRPCMethodPath(t *testing.T) {
	long := strings.Repeat("s", 300)
	for _, c := range [][2]string{{"pkg.Svc", "Method"}, {long, "M"}, {"", ""}} {
		if got, want := grpcMethodPath([]byte(c[0]), []byte(c[1])), "/"+c[0]+"/"+c[1]; got != want {
			t.Errorf("grpcMethodPath(%q, %q) = %q", c[0], c[1], got)
		}
	}
	s, m := []byte("pkg.Svc"), []byte("Method")
	if n := testing.AllocsPerRun(100, func() { _ = grpcMethodPath(s, m) }); n != 0 {
		t.Errorf("known path: %v allocs", n)
	}
}

func TestTrailerKey(t *testing.T) {
	for _, k := range []string{"grpc-status", "x-echo-trailer", "grpc-status"} {
		if got, want := trailerKey(k), http.TrailerPrefix+http.CanonicalHeaderKey(k); got != want {
			t.Errorf("trailerKey(%q) = %q, want %q", k, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = trailerKey("grpc-status") }); n != 0 {
		t.Errorf("known trailer: %v allocs", n)
	}
}
