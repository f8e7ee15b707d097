package devmesh

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// pythonUsable reports whether the Python customer can run: the script
// exists and the interpreter imports grpc. The reason is returned when not.
func (c Config) pythonUsable(ctx context.Context) (bool, string) {
	if c.NoPython {
		return false, "--no-python"
	}
	if _, err := os.Stat(c.PythonCustomer); err != nil {
		return false, fmt.Sprintf("no Python customer script: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, c.Python, "-c", "import grpc").CombinedOutput()
	if err != nil {
		return false, fmt.Sprintf("%s -c 'import grpc' failed (install python3-grpcio: make deps): %v %s", c.Python, err, strings.TrimSpace(string(out)))
	}
	return true, ""
}

// pythonCustomer is the Python customer running as a subprocess.
type pythonCustomer struct {
	cmd   *exec.Cmd
	ready chan string // the address it listens on
	done  chan error  // its exit
	tail  *tail
}

// startPython starts the Python customer on addr. Its output is logged line
// by line; it is stopped with SIGTERM when ctx is done (killed 5s later).
func (c Config) startPython(ctx context.Context, addr string, log *slog.Logger) (*pythonCustomer, error) {
	// The port is free now (checked), so a failure to listen is Python's.
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &PortError{Component: "logic/customer", Addr: addr, Err: err}
	}
	lis.Close()

	cmd := exec.CommandContext(ctx, c.Python, c.PythonCustomer, "--listen", addr)
	// Its own service name for OpenTelemetry, should it export (the OTLP
	// endpoint, if any, is inherited).
	cmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=1", "OTEL_SERVICE_NAME=customer")
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	setParentDeathSignal(cmd)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s %s: %w", c.Python, c.PythonCustomer, err)
	}
	p := &pythonCustomer{cmd: cmd, ready: make(chan string, 1), done: make(chan error, 1), tail: &tail{}}
	log.Info("python customer started", "pid", cmd.Process.Pid, "python", c.Python, "script", c.PythonCustomer)
	var wg sync.WaitGroup
	wg.Go(func() {
		p.lines(stdout, func(line string) {
			if a, ok := strings.CutPrefix(line, "listening on "); ok {
				select {
				case p.ready <- strings.TrimSpace(a):
				default:
				}
			}
			log.Info(line, "stream", "stdout")
		})
	})
	wg.Go(func() { p.lines(stderr, func(line string) { log.Warn(line, "stream", "stderr") }) })
	go func() {
		wg.Wait() // the pipes must be drained before Wait
		err := cmd.Wait()
		if ctx.Err() != nil {
			err = nil // stopped by us
		} else if err == nil {
			err = errors.New("exited")
		}
		if err != nil {
			err = fmt.Errorf("python customer: %w%s", err, p.tail.String())
		}
		p.done <- err
	}()
	return p, nil
}

// Ready implements process.
func (p *pythonCustomer) Ready() <-chan string { return p.ready }

// Done implements process.
func (p *pythonCustomer) Done() <-chan error { return p.done }

// lines calls f with every line of r, keeping the last ones for errors.
func (p *pythonCustomer) lines(r io.Reader, f func(string)) {
	s := bufio.NewScanner(r)
	for s.Scan() {
		p.tail.add(s.Text())
		f(s.Text())
	}
}

// tail keeps the last lines of output.
type tail struct {
	mu    sync.Mutex
	lines []string
}

func (t *tail) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, line)
	if len(t.lines) > 10 {
		t.lines = t.lines[1:]
	}
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == 0 {
		return ""
	}
	return "; last output:\n" + strings.Join(t.lines, "\n")
}
