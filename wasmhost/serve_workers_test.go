package wasmhost_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestServeHTTPAfterClose: once the host (and its worker goroutines) is
// closed, a stream handed to ServeHTTP is still answered, on the caller's
// goroutine: 503.
func TestServeHTTPAfterClose(t *testing.T) {
	e := newEnv(t)
	if err := e.proxy.Host.Close(); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	e.proxy.Host.ServeHTTP(rec, httptest.NewRequest("POST", "/x", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d after Close, want 503", rec.Code)
	}
}

// panicWriter panics when the response headers are written.
type panicWriter struct{ *httptest.ResponseRecorder }

type writerPanic struct{}

func (panicWriter) WriteHeader(int) { panic(writerPanic{}) }

// TestServeHTTPPanicReachesCaller: a panic while serving on a worker
// goroutine is re-raised on ServeHTTP's goroutine, where net/http recovers
// it, instead of crashing the process.
func TestServeHTTPPanicReachesCaller(t *testing.T) {
	e := newEnv(t)
	req := httptest.NewRequest("GET", "/echo", nil)
	req.Header.Set("x-case", "panic-writer")
	defer func() {
		if p := recover(); p != (writerPanic{}) {
			t.Fatalf("ServeHTTP panicked with %v, want the writer's panic", p)
		}
	}()
	e.proxy.Host.ServeHTTP(panicWriter{httptest.NewRecorder()}, req)
	t.Fatal("ServeHTTP returned")
}

// TestResponseDate: proxied responses and local replies carry a current
// Date header (the host sets it, cached per second, as net/http would).
func TestResponseDate(t *testing.T) {
	e := newEnv(t)
	for _, kase := range []string{"none", "local-reply-http"} {
		resp := e.do(t, kase, http.MethodGet, "/echo", "", nil)
		d, err := http.ParseTime(resp.Header.Get("Date"))
		if err != nil {
			t.Fatalf("%s: Date %q: %v", kase, resp.Header.Get("Date"), err)
		}
		if age := time.Since(d); age < -2*time.Second || age > 5*time.Second {
			t.Errorf("%s: Date %s is %s old", kase, d, age)
		}
		if n := len(resp.Header.Values("Date")); n != 1 {
			t.Errorf("%s: %d Date headers", kase, n)
		}
	}
}
