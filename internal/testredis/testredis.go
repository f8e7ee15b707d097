// Package testredis starts real redis-server processes for tests: a single
// server or a Redis Cluster of several masters, each on free 127.0.0.1 ports,
// stopped by t.Cleanup. Readiness is polled (PING, CLUSTER INFO), never slept
// for.
//
//	addr := testredis.Start(t)                      // "127.0.0.1:PORT"
//	addrs := testredis.StartCluster(t, 3)           // three masters, slots assigned
//	srv := testredis.StartServer(t, testredis.Options{AppendOnly: true})
//	srv.Kill(); srv.Restart()                       // crash and recover, same port and data
//	c := testredis.StartReplicatedCluster(t, 3)     // three masters, one replica each
//	c.HoldReplication(0, key)                       // master 0's later writes never reach its replica
//	c.KillMasterAndPromote(ctx, 0)                  // kill -9, CLUSTER FAILOVER TAKEOVER
//	c.RejoinAsReplica(ctx, 0)                       // the killed master comes back as a replica
package testredis

import (
	"bufio"
	"errors"
	"fmt"
	"github.com/angzarr-mesh/angzarr/internal/testutil"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Options configure a server.
type Options struct {
	// AppendOnly turns on the append-only file with appendfsync always, so
	// every acknowledged write survives kill -9.
	AppendOnly bool
	// Cluster starts the server with cluster-enabled yes (used by
	// StartCluster).
	Cluster bool
	// Args are extra redis-server arguments, e.g. "--maxmemory", "64mb".
	Args []string
}

// Server is one running (or killed) redis-server.
type Server struct {
	t       testing.TB
	opts    Options
	dir     string
	port    int
	busPort int

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan error // receives cmd.Wait's result
}

// Start starts a redis-server and returns its address.
func Start(t testing.TB) string {
	return StartServer(t, Options{}).Addr()
}

// StartServer starts a redis-server with opts.
func StartServer(t testing.TB, opts Options) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server not found: run `make deps` (installs redis-server)")
	}
	s := &Server{t: t, opts: opts, dir: t.TempDir()}
	// A free port can be taken by someone else before redis binds it: try a
	// few fresh ports, each start is checked.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		s.port, s.busPort = testutil.FreePort(t), testutil.FreePort(t)
		if lastErr = s.start(bin); lastErr == nil {
			t.Cleanup(s.stop)
			return s
		}
	}
	t.Fatalf("redis-server did not start: %v", lastErr)
	return nil
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Dir is the server's data directory.
func (s *Server) Dir() string { return s.dir }

// Kill sends SIGKILL to the server and waits for it to exit.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd, s.exited = nil, nil
}

// Signal sends sig to the running server (e.g. SIGSTOP, SIGCONT).
func (s *Server) Signal(sig os.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return errors.New("redis-server is not running")
	}
	return s.cmd.Process.Signal(sig)
}

// Restart starts the server again on the same port and data directory
// (killing it first if it still runs) and waits until it answers PING.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	bin, _ := exec.LookPath("redis-server")
	if err := s.start(bin); err != nil {
		s.t.Fatalf("redis-server restart: %v", err)
	}
}

func (s *Server) stop() { s.Kill() }

func (s *Server) start(bin string) error {
	args := []string{
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--protected-mode", "no",
		"--dir", s.dir, "--save", "", "--daemonize", "no",
		"--logfile", filepath.Join(s.dir, "redis.log"),
	}
	if s.opts.AppendOnly {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	if s.opts.Cluster {
		args = append(args, "--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(s.busPort),
			"--cluster-config-file", filepath.Join(s.dir, "nodes.conf"), "--cluster-node-timeout", "5000")
	}
	args = append(args, s.opts.Args...)
	cmd := exec.Command(bin, args...)
	dieWithParent(cmd)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if reply, err := Do(s.Addr(), "PING"); err == nil && reply == "+PONG" {
			break
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			return fmt.Errorf("redis-server exited (%v): %s", err, tail(log))
		case <-time.After(10 * time.Millisecond): // poll interval
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return errors.New("redis-server did not answer PING within 20s")
		}
	}
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	return nil
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// Do sends one inline command to addr and returns the first line of the
// reply (e.g. "+PONG"), or the whole bulk string for a bulk reply.
func Do(addr string, args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if strings.HasPrefix(line, "$") {
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", fmt.Errorf("bad reply %q", line)
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	if strings.HasPrefix(line, "-") {
		return line, errors.New(line[1:])
	}
	return line, nil
}
