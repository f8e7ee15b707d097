package eventsvctest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/angzarr-mesh/angzarr/internal/testredis"
)

// BuildBinary builds the angzarr CLI into dir and returns its path. Call it
// once from TestMain (it takes a while); it finds the module root itself.
func BuildBinary(dir string) (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	bin := filepath.Join(dir, "angzarr")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/angzarr")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/angzarr: %w\n%s", err, b)
	}
	return bin, nil
}

// Process is an `angzarr eventsvc` subprocess.
type Process struct {
	t    testing.TB
	bin  string
	args []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan error
	addr   string
}

// StartProcess runs `bin eventsvc --store storeURL --listen 127.0.0.1:0
// extraArgs...` and waits until it serves.
func StartProcess(t testing.TB, bin, storeURL string, extraArgs ...string) *Process {
	t.Helper()
	p := &Process{t: t, bin: bin, args: append([]string{"eventsvc", "--store", storeURL, "--listen", "127.0.0.1:0", "--insecure"}, extraArgs...)}
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	return p
}

// Addr is the process's gRPC address (it changes on Restart).
func (p *Process) Addr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

// Kill sends SIGKILL and waits for the process to exit.
func (p *Process) Kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
	p.cmd = nil
}

// Restart starts the process again (killing it first if it runs).
func (p *Process) Restart() {
	p.t.Helper()
	p.Kill()
	if err := p.start(); err != nil {
		p.t.Fatal(err)
	}
}

var servingRE = regexp.MustCompile(`msg="eventsvc serving" addr=(\S+)`)

func (p *Process) start() error {
	cmd := exec.Command(p.bin, p.args...)
	testredis.DieWithParent(cmd)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	cmd.Stdout = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	addrc := make(chan string, 1)
	var logs strings.Builder
	var logMu sync.Mutex
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			logMu.Lock()
			logs.WriteString(line + "\n")
			logMu.Unlock()
			if m := servingRE.FindStringSubmatch(line); m != nil {
				select {
				case addrc <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		exited <- cmd.Wait()
	}()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-exited:
		logMu.Lock()
		defer logMu.Unlock()
		return fmt.Errorf("angzarr eventsvc exited before serving (%v):\n%s", err, logs.String())
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		return errors.New("angzarr eventsvc did not log its address within 60s")
	}
	// WaitReady consumes exited only when the process dies; keep a relay.
	relay := make(chan error, 1)
	died := make(chan error, 1)
	go func() { err := <-exited; relay <- err; died <- err }()
	if err := WaitReady(addr, 30*time.Second, relay); err != nil {
		_ = cmd.Process.Kill()
		<-died
		return err
	}
	p.mu.Lock()
	p.cmd, p.exited, p.addr = cmd, died, addr
	p.mu.Unlock()
	return nil
}

// RunWithBinary is a TestMain body for packages whose tests run the CLI as a
// subprocess: it builds angzarr into a temp dir, stores its path in *bin,
// runs the tests, fails them on leaked goroutines (goleak) when they passed,
// and returns the exit code for os.Exit.
func RunWithBinary(m *testing.M, bin *string) int {
	dir, err := os.MkdirTemp("", "angzarr-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if *bin, err = BuildBinary(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	return code
}
