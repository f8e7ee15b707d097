// Package eventsvctest starts event services for tests: in-process on a free
// loopback port (Start), or as an `angzarr eventsvc` subprocess that can be
// killed with SIGKILL (StartProcess, for crash tests). Both are stopped by
// t.Cleanup and are ready (gRPC health SERVING) when they return.
//
//	addr := eventsvctest.Start(t, "sqlite:"+filepath.Join(t.TempDir(), "e.db"))
//	addr := eventsvctest.Start(t, "redis://"+testredis.Start(t)+"/0")
//	conn := eventsvctest.Dial(t, addr)
//	client := pb.NewEventStoreClient(conn)
package eventsvctest

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/angzarr-mesh/angzarr/eventsvc"
	"github.com/angzarr-mesh/angzarr/internal/identity"
)

// Start serves an event service on storeURL in this process and returns its
// gRPC address.
func Start(t testing.TB, storeURL string) string {
	t.Helper()
	return StartConfig(t, eventsvc.Config{Store: storeURL})
}

// StartConfig is Start with a full configuration (Listen is ignored: the
// service listens on a free 127.0.0.1 port). Logs go to t.Log at warn level
// unless cfg.Logger is set.
func StartConfig(t testing.TB, cfg eventsvc.Config) string {
	t.Helper()
	addr, _ := StartStoppable(t, cfg)
	return addr
}

// StartStoppable is StartConfig that also returns stop, which stops the
// service gracefully and waits until it has (an error of Serve fails the
// test), so that a test can start another service on the same store.
// Cleanup calls it too; calls after the first do nothing.
func StartStoppable(t testing.TB, cfg eventsvc.Config) (addr string, stop func()) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	// Serve's result goes to the cleanup (done) and to WaitReady (exited),
	// so a service that fails to start fails the test instead of hanging it.
	done, exited := make(chan error, 1), make(chan error, 1)
	go func() {
		err := eventsvc.Serve(ctx, lis, cfg)
		done <- err
		exited <- err
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("eventsvc: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	addr = lis.Addr().String()
	dial := grpc.WithTransportCredentials(insecure.NewCredentials())
	if c := cfg.Identity; c.CertFile != "" {
		// The service's own certificate: health checks need no rule.
		f, err := identity.LoadFiles(c.CertFile, c.KeyFile, c.CAFile, c.TrustDomain)
		if err != nil {
			t.Fatal(err)
		}
		dial = identity.DialOption(f, identity.ID{})
	}
	if err := waitReady(addr, 30*time.Second, exited, dial); err != nil {
		t.Fatal(err)
	}
	return addr, stop
}

// Dial connects to addr (plaintext) and closes the connection at cleanup.
func Dial(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// WaitReady polls the gRPC health service at addr until it reports SERVING,
// the timeout passes, or exited yields (the server stopped: its error is
// returned).
func WaitReady(addr string, timeout time.Duration, exited <-chan error) error {
	return waitReady(addr, timeout, exited, grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// waitReady is WaitReady with the client's credentials.
func waitReady(addr string, timeout time.Duration, exited <-chan error, dial grpc.DialOption) error {
	conn, err := grpc.NewClient(addr, dial)
	if err != nil {
		return err
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		if time.Now().After(deadline) {
			return &notReadyError{addr: addr, last: err}
		}
		select {
		case err := <-exited:
			return &exitedError{addr: addr, err: err}
		case <-time.After(20 * time.Millisecond): // poll interval
		}
	}
}

type notReadyError struct {
	addr string
	last error
}

func (e *notReadyError) Error() string {
	return "eventsvc at " + e.addr + " not ready: " + errString(e.last)
}

type exitedError struct {
	addr string
	err  error
}

func (e *exitedError) Error() string { return "eventsvc at " + e.addr + " exited: " + errString(e.err) }

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
