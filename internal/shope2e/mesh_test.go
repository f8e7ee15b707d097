// Package shope2e_test runs the example shop on a real local mesh (the
// event service on SQLite with its fan-out dispatcher, the control plane,
// one xDS-fed wasmhost proxy per domain running the real filter .wasm, and
// the shop's business logic, sagas and projector) and checks what the
// fan-out promises end to end: saga effects exactly once, the cancellation
// saga, the CommandGateway stream, a kill -9 of the dispatcher, and dead
// letters.
//
// Most tests run `angzarr dev` in this process (devmesh.Run); the crash
// test runs it as a subprocess so it can be killed. The order path also
// runs through one real Envoy per domain when ENVOY_BIN names one
// (eachLane in lane_test.go; envoy/README.md).
package shope2e_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/angzarr-mesh/angzarr/eventsvc/eventsvctest"
	"github.com/angzarr-mesh/angzarr/internal/client"
	"github.com/angzarr-mesh/angzarr/internal/devmesh"
	"github.com/angzarr-mesh/angzarr/internal/devmesh/endpoints"
	"github.com/angzarr-mesh/angzarr/internal/testutil"
	"github.com/angzarr-mesh/angzarr/internal/wasmbuild"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// buildDir holds the filter and the CLI, built once per run when a test
// first needs them.
var buildDir string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "angzarr-shope2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	buildDir = dir
	code := m.Run()
	wasmbuild.Cleanup()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	return code
}

var (
	cliOnce sync.Once
	cliPath string
	cliErr  error
)

// filterModule is the filter built as `make filter` builds it, once per
// test binary, and already compiled into wasmhost's process-wide cache:
// without that the six proxies of the first in-process mesh would compile
// it inside the mesh's start-up wait.
func filterModule(t testing.TB) string { return wasmbuild.Filter(t) }

// angzarrCLI builds the CLI as `make build` does, once.
func angzarrCLI(t testing.TB) string {
	t.Helper()
	cliOnce.Do(func() { cliPath, cliErr = eventsvctest.BuildBinary(buildDir) })
	if cliErr != nil {
		t.Fatal(cliErr)
	}
	return cliPath
}

// ports is how many consecutive ports the mesh takes from its base.
const ports = devmesh.PortSpan

// mesh is a running local mesh and clients of its parts.
type mesh struct {
	t       testing.TB
	dataDir string
	ep      *endpoints.File
	cfg     devmesh.Config // as started

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

// startMesh runs `angzarr dev` in this process (devmesh.Run) on free ports
// with a fresh data directory, the Go customer, and every log line kept
// for the failure report. It returns once the endpoints file names it (the
// mesh writes it when every component is ready and the event service has
// its fan-out configuration). When another program takes one of the free
// ports first, it starts again on others.
func startMesh(t *testing.T) *mesh {
	t.Helper()
	return startMeshWith(t, true)
}

// startMeshWith is startMesh with the Go customer (goCustomer) or the
// Python one (which needs /usr/bin/python3 with grpcio; the test fails
// without it).
func startMeshWith(t *testing.T, goCustomer bool) *mesh {
	t.Helper()
	return startMeshLane(t, goCustomer, false)
}

// startMeshLane is startMeshWith whose proxies are real Envoys the test
// starts (envoyLane: devmesh.Config.EnvoyProxies, Insecure; see
// eachLane), or the mesh's wasmhost proxies.
func startMeshLane(t *testing.T, goCustomer, envoyLane bool) *mesh {
	t.Helper()
	for attempt := 1; ; attempt++ {
		m, err := tryStartMesh(t, goCustomer, envoyLane)
		var pe *devmesh.PortError
		if errors.As(err, &pe) && attempt < 3 {
			t.Logf("ports taken meanwhile, trying others: %v", err)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
}

func tryStartMesh(t *testing.T, goCustomer, envoyLane bool) (*mesh, error) {
	t.Helper()
	data := filepath.Join(t.TempDir(), "data")
	logs := &logBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	cfg := devmesh.Config{
		DataDir: data, Filter: filterModule(t), BasePort: testutil.FreePorts(t, ports), NoPython: goCustomer,
		ReadyTimeout: time.Minute,
		Logger:       slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Insecure:     envoyLane, EnvoyProxies: envoyLane,
	}
	if !goCustomer {
		script, err := filepath.Abs("../../" + devmesh.DefaultPythonCustomer)
		if err != nil {
			cancel()
			return nil, err
		}
		cfg.PythonCustomer = script
	}
	go func() { done <- devmesh.Run(ctx, cfg) }()
	stopped := false
	t.Cleanup(func() {
		cancel()
		if stopped {
			return
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("angzarr dev: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("angzarr dev did not stop within 30s")
		}
		if t.Failed() {
			t.Logf("angzarr dev logs (last lines):\n%s", logs.tail(200))
		}
	})
	m := newMesh(t, data)
	m.cfg = cfg
	deadline := time.Now().Add(90 * time.Second)
	for {
		if f, err := endpoints.Read(data); err == nil && f.PID == os.Getpid() {
			m.ep = f
			return m, nil
		}
		select {
		case err := <-done:
			stopped = true
			return nil, fmt.Errorf("angzarr dev stopped before it was ready: %w\n%s", err, logs.tail(100))
		case <-time.After(50 * time.Millisecond): // poll interval
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("angzarr dev not ready after 90s:\n%s", logs.tail(100))
		}
	}
}

func newMesh(t testing.TB, dataDir string) *mesh {
	m := &mesh{t: t, dataDir: dataDir, conns: map[string]*grpc.ClientConn{}}
	t.Cleanup(m.closeConns)
	return m
}

// closeConns closes every client connection (a restarted mesh gets new
// ones).
func (m *mesh) closeConns() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for a, c := range m.conns {
		c.Close()
		delete(m.conns, a)
	}
}

func (m *mesh) conn(addr string) *grpc.ClientConn {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.conns[addr]; ok {
		return c
	}
	dial, err := client.DialFor(m.dataDir)
	if err != nil {
		m.t.Fatal(err)
	}
	c, err := grpc.NewClient(addr, dial)
	if err != nil {
		m.t.Fatal(err)
	}
	m.conns[addr] = c
	return c
}

// coordinator is domain's BusinessCoordinator: its proxy, running the filter.
func (m *mesh) coordinator(domain string) pb.BusinessCoordinatorClient {
	addr := m.ep.Domains[domain].Coordinator
	if addr == "" {
		m.t.Fatalf("no proxy for domain %q in %v", domain, m.ep.Domains)
	}
	return pb.NewBusinessCoordinatorClient(m.conn(addr))
}

func (m *mesh) query() pb.EventQueryClient { return pb.NewEventQueryClient(m.conn(m.ep.EventService)) }
func (m *mesh) admin() pb.FanoutAdminClient {
	return pb.NewFanoutAdminClient(m.conn(m.ep.EventService))
}
func (m *mesh) gateway() pb.CommandGatewayClient {
	return pb.NewCommandGatewayClient(m.conn(m.ep.EventService))
}

// sagas and the projector of the shop, as the topology names them.
var shopSubscribers = []string{"loyalty-earn", "fulfillment", "cancellation", "order-summary"}

// command is a one-page CommandBook for the aggregate at domain/root,
// expecting the aggregate's next sequence to be seq.
func command(t testing.TB, domain string, root uuid.UUID, correlation string, seq uint32, msg proto.Message) *pb.CommandBook {
	t.Helper()
	return newCommand(domain, root, correlation, seq, msg)
}

// newCommand is command for goroutines other than the test's.
func newCommand(domain string, root uuid.UUID, correlation string, seq uint32, msg proto.Message) *pb.CommandBook {
	a, err := anypb.New(msg)
	if err != nil {
		panic(err) // only a nil message cannot be packed
	}
	return &pb.CommandBook{
		Cover: &pb.Cover{Domain: domain, Root: &pb.UUID{Value: root[:]}, CorrelationId: correlation},
		Pages: []*pb.CommandPage{{Sequence: seq, Command: a}},
	}
}

// send executes one command through domain's proxy (SYNC NONE) and fails
// the test when it is refused.
func (m *mesh) send(ctx context.Context, domain string, root uuid.UUID, correlation string, seq uint32, msg proto.Message) *pb.CommandResponse {
	m.t.Helper()
	resp, err := m.coordinator(domain).Handle(ctx, command(m.t, domain, root, correlation, seq, msg))
	if err != nil {
		m.t.Fatalf("%s %s/%s at sequence %d: %v", msg.ProtoReflect().Descriptor().Name(), domain, root, seq, err)
	}
	return resp
}

// event is one stored event, decoded.
type event struct {
	domain      string
	root        uuid.UUID
	correlation string
	sequence    uint32
	msg         proto.Message
}

// typeName is the event's short type name, e.g. "OrderCompleted".
func (e event) typeName() string { return string(e.msg.ProtoReflect().Descriptor().Name()) }

func (e event) String() string {
	return fmt.Sprintf("%s/%s#%d %s %v (correlation %q)", e.domain, e.root, e.sequence, e.typeName(), e.msg, e.correlation)
}

// flatten decodes every page of books.
func flatten(t testing.TB, books []*pb.EventBook) []event {
	t.Helper()
	var out []event
	for _, b := range books {
		root, err := uuid.FromBytes(b.GetCover().GetRoot().GetValue())
		if err != nil {
			t.Fatalf("book root: %v", err)
		}
		for _, p := range b.GetPages() {
			msg, err := p.GetEvent().UnmarshalNew()
			if err != nil {
				t.Fatalf("event %s: %v", p.GetEvent().GetTypeUrl(), err)
			}
			out = append(out, event{domain: b.GetCover().GetDomain(), root: root, correlation: b.GetCover().GetCorrelationId(),
				sequence: p.GetNum(), msg: msg})
		}
	}
	return out
}

// getEvents reads a query's books from EventQuery.
func (m *mesh) getEvents(ctx context.Context, q *pb.Query) ([]*pb.EventBook, error) {
	s, err := m.query().GetEvents(ctx, q)
	if err != nil {
		return nil, err
	}
	var out []*pb.EventBook
	for {
		b, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
}

// history is every event of one aggregate.
func (m *mesh) history(ctx context.Context, domain string, root uuid.UUID) []event {
	m.t.Helper()
	books, err := m.getEvents(ctx, &pb.Query{Cover: &pb.Cover{Domain: domain, Root: &pb.UUID{Value: root[:]}}})
	if err != nil {
		m.t.Fatalf("events of %s/%s: %v", domain, root, err)
	}
	return flatten(m.t, books)
}

// workflow is every event with a correlation id, in append order.
func (m *mesh) workflow(ctx context.Context, correlation string) []event {
	m.t.Helper()
	books, err := m.getEvents(ctx, &pb.Query{Cover: &pb.Cover{CorrelationId: correlation}})
	if err != nil {
		m.t.Fatalf("events of workflow %s: %v", correlation, err)
	}
	return flatten(m.t, books)
}

// ofType keeps the events of one type.
func ofType(events []event, name string) []event {
	var out []event
	for _, e := range events {
		if e.typeName() == name {
			out = append(out, e)
		}
	}
	return out
}

// caughtUp waits until each named subscriber has handled every entry of
// its source logs: every partition has a checkpoint at the log's end.
// Saga commands are executed before their event's checkpoint moves, so
// after this every effect of what was stored before is stored too.
func (m *mesh) caughtUp(ctx context.Context, names ...string) {
	m.t.Helper()
	testutil.EventuallyWhy(m.t, func() (bool, string) {
		for _, name := range names {
			p, err := m.admin().GetSubscriberProgress(ctx, &pb.GetSubscriberProgressRequest{Name: name})
			if err != nil {
				return false, fmt.Sprintf("progress of %s: %v", name, err)
			}
			for _, part := range p.GetPartitions() {
				if !part.GetStarted() || part.GetCommitted() < part.GetEnd() {
					return false, fmt.Sprintf("subscriber %s is behind: %v", name, p)
				}
			}
		}
		return true, ""
	})
}

// noDeadLetters fails the test when any subscriber parked an event.
func (m *mesh) noDeadLetters(ctx context.Context) {
	m.t.Helper()
	dl, err := m.admin().ListDeadLetters(ctx, &pb.ListDeadLettersRequest{})
	if err != nil {
		m.t.Fatal(err)
	}
	for _, d := range dl.GetDeadLetters() {
		m.t.Errorf("dead letter of %s after %d attempts: %s (%v)", d.GetSubscriber(), d.GetAttempts(), d.GetError(), d.GetBook().GetCover())
	}
}

// ctxT is a context that ends after d or with the test.
func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// logBuffer keeps log lines for a failure report.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// tail is the last n lines.
func (l *logBuffer) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := strings.Split(strings.TrimRight(l.b.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
