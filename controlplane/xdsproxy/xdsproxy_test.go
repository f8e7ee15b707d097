package xdsproxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/angzarr-mesh/angzarr/controlplane/xdsclient"
)

// The whole proxy (control plane + this package + wasmhost + the filter +
// eventsvc + logic) is tested end to end in controlplane's
// TestEndToEndConfigOverXDS; these are the parts that test cannot reach.

func TestValidate(t *testing.T) {
	c := Config{Metadata: map[string]any{"bad": make(chan int)}}
	err := c.Validate()
	for _, want := range []string{"xds:", "node:", "metadata:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

// TestRemoteModule fetches a module by URL, checks its sha256, caches it,
// and refuses one whose digest differs.
func TestRemoteModule(t *testing.T) {
	module := []byte("\x00asm\x01\x00\x00\x00")
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits++
		_, _ = w.Write(module)
	}))
	defer srv.Close()
	sum := sha256.Sum256(module)
	p := &proxy{log: slog.New(slog.DiscardHandler), modules: map[string][]byte{}}
	f := &xdsclient.Filter{URL: srv.URL + "/filter.wasm", SHA256: hex.EncodeToString(sum[:])}
	for range 2 {
		b, err := p.module(context.Background(), f)
		if err != nil || string(b) != string(module) {
			t.Fatalf("module %q, %v", b, err)
		}
	}
	if hits != 1 {
		t.Errorf("fetched %d times, want 1 (cached by digest)", hits)
	}
	f.SHA256 = strings.Repeat("0", 64)
	if _, err := p.module(context.Background(), f); err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Errorf("a module with the wrong digest: %v", err)
	}
}
