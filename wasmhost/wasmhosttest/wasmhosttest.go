// Package wasmhosttest starts wasmhost proxies in tests and builds Go
// proxy-wasm modules with the standard toolchain. Filter end-to-end tests
// use it to run the very .wasm Envoy would load:
//
//	wasm := wasmhosttest.BuildOnce(t, "../filter", "filter.wasm")
//	p := wasmhosttest.Start(t, wasmhost.Config{
//		Plugin:   wasmhost.Plugin{Module: wasm, Configuration: cfgJSON},
//		Upstream: businessLogicAddr,
//		Clusters: map[string]string{"eventsvc": eventsvcAddr},
//	})
//	conn, _ := grpc.NewClient(p.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
package wasmhosttest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/angzarr-mesh/angzarr/wasmhost"
)

// Build compiles the Go proxy-wasm module (package main) in dir to out with
// GOOS=wasip1 GOARCH=wasm -buildmode=c-shared and the given build tags.
func Build(ctx context.Context, dir, out string, tags ...string) error {
	args := []string{"build", "-buildmode=c-shared", "-o", out}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	args = append(args, ".")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOWORK=off", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("wasmhosttest: build %s: %w\n%s", dir, err, b)
	}
	return nil
}

var (
	buildMu    sync.Mutex
	buildCache = map[string][]byte{}
)

// BuildOnce builds the module in dir once per test process (per set of
// tags) and returns its bytes; name names the output file.
func BuildOnce(tb testing.TB, dir, name string, tags ...string) []byte {
	tb.Helper()
	key := dir + "|" + strings.Join(tags, ",")
	buildMu.Lock()
	defer buildMu.Unlock()
	if b, ok := buildCache[key]; ok {
		return b
	}
	tmp, err := os.MkdirTemp("", "wasmhosttest-")
	if err != nil {
		tb.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out := filepath.Join(tmp, name)
	if err := Build(ctx, dir, out, tags...); err != nil {
		tb.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		tb.Fatal(err)
	}
	buildCache[key] = b
	return b
}

// Proxy is a wasmhost serving on loopback.
type Proxy struct {
	Host      *wasmhost.Host
	Addr      string // h2c proxy, 127.0.0.1:port
	AdminAddr string // admin (/stats/prometheus, /ready)
	stop      func()
}

// Start creates a Host from cfg and serves it (and its admin endpoints) on
// 127.0.0.1:0 until the test ends. It returns once /ready answers.
func Start(tb testing.TB, cfg wasmhost.Config) *Proxy {
	tb.Helper()
	p, err := StartContext(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.stop)
	return p
}

// StartContext is Start without testing.TB; call Stop when done.
func StartContext(ctx context.Context, cfg wasmhost.Config) (*Proxy, error) {
	h, err := wasmhost.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.Close()
		return nil, err
	}
	aln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		ln.Close()
		h.Close()
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{Host: h, Addr: ln.Addr().String(), AdminAddr: aln.Addr().String()}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = h.Serve(sctx, ln) }()
	go func() { defer wg.Done(); _ = h.ServeAdmin(sctx, aln) }()
	p.stop = func() {
		cancel()
		wg.Wait()
		h.Close()
	}
	if err := waitReady(ctx, "http://"+p.AdminAddr+"/ready"); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// Stop stops serving and closes the host.
func (p *Proxy) Stop() { p.stop() }

func waitReady(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return errors.New("wasmhosttest: proxy not ready: " + url)
		case <-time.After(5 * time.Millisecond):
		}
	}
}
