package envoytest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestWaitReady: the lane waits for Envoy's admin address file and for its
// /ready to answer 200 (503 while the listeners warm), and gives up with
// the context. An HTTP server stands in for Envoy's admin, which cannot run
// here.
func TestWaitReady(t *testing.T) {
	var calls, readyAfter atomic.Int32
	readyAfter.Store(3)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ready" {
			http.NotFound(w, r)
			return
		}
		if calls.Add(1) <= readyAfter.Load() {
			http.Error(w, "PRE_INITIALIZING", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("LIVE\n"))
	}))
	defer srv.Close()
	path := filepath.Join(t.TempDir(), "admin")
	go func() {
		time.Sleep(100 * time.Millisecond) // Envoy writes the file once its admin listens
		_ = os.WriteFile(path, []byte(strings.TrimPrefix(srv.URL, "http://")+"\n"), 0o644)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addr, err := waitReady(ctx, path)
	if err != nil || addr != strings.TrimPrefix(srv.URL, "http://") || calls.Load() != 4 {
		t.Fatalf("waitReady = %q, %v after %d calls; want the admin address after the 4th", addr, err, calls.Load())
	}

	readyAfter.Store(1 << 30) // never ready
	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := waitReady(ctx, path); err == nil {
		t.Fatal("waitReady returned for an Envoy that never became ready")
	}
}
