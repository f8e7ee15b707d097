package devmesh_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/angzarr-mesh/angzarr/examples/go/roots"
	"github.com/angzarr-mesh/angzarr/internal/client"
	"github.com/angzarr-mesh/angzarr/internal/devmesh"
	"github.com/angzarr-mesh/angzarr/internal/devmesh/endpoints"
	"github.com/angzarr-mesh/angzarr/internal/identity"
	"github.com/angzarr-mesh/angzarr/internal/testutil"
	"github.com/angzarr-mesh/angzarr/internal/wasmbuild"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
	ex "github.com/angzarr-mesh/angzarr/proto/examples"
)

// repoRoot is the module's root, two levels up from this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// buildAll builds the CLI and the filter as `make build` and `make filter` do.
func buildAll(t *testing.T) (cli, filter string) {
	t.Helper()
	dir := t.TempDir()
	cli = filepath.Join(dir, "angzarr")
	cmd := exec.Command("go", "build", "-o", cli, "./cmd/angzarr")
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/angzarr: %v\n%s", err, out)
	}
	filter, err := wasmbuild.Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	return cli, filter
}

// syncBuffer is a bytes.Buffer safe for a process writing and a test
// reading.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// meshProc is a running `angzarr dev`.
type meshProc struct {
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	done           chan error
	ep             *endpoints.File
}

type env struct {
	t                 *testing.T
	cli, filter, data string
	base              int
}

func (e *env) devArgs(data string) []string {
	return []string{"dev", "--data-dir", data, "--base-port", strconv.Itoa(e.base), "--filter", e.filter,
		"--python-customer", filepath.Join(repoRoot(e.t), "examples/python/customer/server.py")}
}

// start starts `angzarr dev` and polls until its endpoints file names it.
func (e *env) start() *meshProc {
	t := e.t
	t.Helper()
	m := &meshProc{stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan error, 1)}
	m.cmd = exec.Command(e.cli, e.devArgs(e.data)...)
	m.cmd.Dir = t.TempDir() // runs anywhere: every path is given
	m.cmd.Stdout, m.cmd.Stderr = m.stdout, m.stderr
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { m.done <- m.cmd.Wait() }()
	t.Cleanup(func() {
		if m.cmd.ProcessState == nil {
			_ = m.cmd.Process.Kill()
			<-m.done
		}
		if t.Failed() {
			t.Logf("angzarr dev stderr:\n%s", m.stderr.String())
		}
	})
	// Ready includes every proxy compiling the filter: no fixed bound, the
	// wait ends with the test's deadline or the process's exit.
	deadline := testutil.Deadline(t)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-m.done:
			m.done <- err
			t.Fatalf("angzarr dev exited before it was ready: %v\n%s", err, m.stderr.String())
		case <-deadline:
			t.Fatalf("angzarr dev not ready before the test's deadline:\n%s", m.stderr.String())
		case <-tick.C:
		}
		if f, err := endpoints.Read(e.data); err == nil && f.PID == m.cmd.Process.Pid {
			m.ep = f
			return m
		}
	}
}

// stop sends Ctrl-C and waits for a clean exit.
func (m *meshProc) stop(t *testing.T) {
	t.Helper()
	if err := m.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-m.done:
		m.done <- err
		if err != nil {
			t.Fatalf("angzarr dev exit: %v\n%s", err, m.stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("angzarr dev did not stop within 30s of SIGINT")
	}
}

// run runs the CLI and returns stdout, failing on a non-zero exit.
func (e *env) run(args ...string) string {
	e.t.Helper()
	out, errOut, err := e.try(args...)
	if err != nil {
		e.t.Fatalf("angzarr %v: %v\n%s%s", args, err, out, errOut)
	}
	return out
}

func (e *env) try(args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.cli, append(args, "--data-dir", e.data)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

// eventLines runs `angzarr events ARGS -o json`.
func (e *env) eventLines(args ...string) []client.EventLine {
	e.t.Helper()
	out := e.run(append(append([]string{"events"}, args...), "-o", "json")...)
	var lines []client.EventLine
	for l := range strings.Lines(out) {
		var el client.EventLine
		if err := json.Unmarshal([]byte(l), &el); err != nil {
			e.t.Fatalf("events line %q: %v", l, err)
		}
		lines = append(lines, el)
	}
	return lines
}

func types(lines []client.EventLine) []string {
	var out []string
	for _, l := range lines {
		out = append(out, l.Type)
	}
	return out
}

func TestDevMeshEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the CLI and the filter and runs the whole mesh")
	}
	cli, filter := buildAll(t)
	e := &env{t: t, cli: cli, filter: filter, data: filepath.Join(t.TempDir(), "data"), base: testutil.FreePorts(t, devmesh.PortSpan)}
	m := e.start()

	// The endpoint table and the endpoints file name every domain's proxy.
	for _, d := range []string{"customer", "product", "cart", "inventory", "order", "fulfillment"} {
		addr := m.ep.Domains[d].Coordinator
		if addr != "127.0.0.1:"+strconv.Itoa(e.base+10+indexOf(d)) {
			t.Errorf("domain %s coordinator %q", d, addr)
		}
		if !strings.Contains(m.stdout.String(), "proxy/"+d) || !strings.Contains(m.stdout.String(), addr) {
			t.Errorf("the endpoint table lacks proxy/%s at %s:\n%s", d, addr, m.stdout.String())
		}
	}
	wantLang := "go"
	if exec.Command("/usr/bin/python3", "-c", "import grpc").Run() == nil {
		wantLang = "python"
	}
	if got := m.ep.Domains["customer"].Language; got != wantLang {
		t.Errorf("the customer runs in %q, want %q", got, wantLang)
	}
	for _, c := range []string{"dev", "eventsvc", "controlplane", "proxy/order", "logic/customer", "saga/loyalty-earn"} {
		if !strings.Contains(m.stderr.String(), "component="+c) {
			t.Errorf("no log line with component=%s", c)
		}
	}

	// The demo, as `make demo` runs it.
	demo := exec.Command(filepath.Join(repoRoot(t), "scripts/demo.sh"))
	demo.Env = append(os.Environ(), "ANGZARR="+cli, "DATA_DIR="+e.data, "DEMO_RUN=e2e", "DEADLINE=60")
	out, err := demo.CombinedOutput()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	for _, want := range []string{"examples.CustomerCreated", "examples.OrderCompleted", "examples.LoyaltyPointsAdded", `"newBalance":50`, "examples.ShipmentCreated"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("demo output lacks %s:\n%s", want, out)
		}
	}

	// The event service and the control plane serve Prometheus metrics
	// at fixed offsets, listed in the table and the file (the demo's
	// commands have used the store).
	for _, ep := range []struct {
		name, addr string
		offset     int
		metric     string
	}{
		{"eventsvc-metrics", m.ep.EventServiceMetrics, 2, "angzarr_storage_duration_seconds"},
		{"controlplane-metrics", m.ep.ControlPlaneMetrics, 3, "angzarr_controlplane_snapshots_total"},
	} {
		want := "127.0.0.1:" + strconv.Itoa(e.base+ep.offset)
		if ep.addr != want || !strings.Contains(m.stdout.String(), ep.name+" ") || !strings.Contains(m.stdout.String(), want) {
			t.Errorf("%s at %q, want %s in the file and the table:\n%s", ep.name, ep.addr, want, m.stdout.String())
			continue
		}
		if body := httpGet(t, "http://"+ep.addr+"/metrics"); !strings.Contains(body, ep.metric) {
			t.Errorf("%s/metrics lacks %s:\n%s", ep.addr, ep.metric, body)
		}
	}

	// The web console listens at +4, in the file and the table with a
	// login URL that logs the developer in as an operator.
	if want := "127.0.0.1:" + strconv.Itoa(e.base+4); m.ep.Console != want {
		t.Errorf("console at %q, want %s", m.ep.Console, want)
	}
	if login := regexp.MustCompile(`http://\S+/login\?token=\S+`).FindString(m.stdout.String()); login == "" {
		t.Errorf("the endpoint table has no console login URL:\n%s", m.stdout.String())
	} else {
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar}
		if resp, err := c.Get(login); err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("console login: %v %v", resp, err)
		} else {
			resp.Body.Close()
		}
		if resp, err := c.Get("http://" + m.ep.Console + "/api/session"); err != nil {
			t.Error(err)
		} else {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(b), `"role":"operator"`) {
				t.Errorf("console session %s, want the developer as an operator", b)
			}
		}
	}

	// The saga effects, as printed events.
	got := types(e.eventLines("customer", "alice-e2e"))
	if want := []string{"examples.CustomerCreated", "examples.LoyaltyPointsAdded"}; !equal(got, want) {
		t.Errorf("customer events %v, want %v", got, want)
	}
	flow := e.eventLines("--correlation-id", "demo-e2e")
	byDomain := map[string][]string{}
	for _, l := range flow {
		byDomain[l.Domain] = append(byDomain[l.Domain], l.Type)
	}
	if !equal(byDomain["order"], []string{"examples.OrderCreated", "examples.PaymentSubmitted", "examples.OrderCompleted"}) ||
		!equal(byDomain["fulfillment"], []string{"examples.ShipmentCreated"}) || !equal(byDomain["customer"], []string{"examples.LoyaltyPointsAdded"}) {
		t.Errorf("workflow demo-e2e by domain: %v", byDomain)
	}
	orderRoot := roots.Of("order-e2e")
	if ship := e.eventLines("fulfillment", roots.Of(orderRoot.String()).String()); len(ship) != 1 || ship[0].Type != "examples.ShipmentCreated" {
		t.Errorf("the shipment of order %s: %v", orderRoot, ship)
	}

	// The same through EventQuery.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dial, err := client.DialFor(m.ep.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(m.ep.EventService, dial)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	eq := pb.NewEventQueryClient(conn)
	books := getEvents(ctx, t, eq, &pb.Query{Cover: &pb.Cover{Domain: "order", Root: &pb.UUID{Value: orderRoot[:]}}})
	var completed ex.OrderCompleted
	if len(books) == 0 || len(books[0].GetPages()) != 3 {
		t.Fatalf("order history %v", books)
	}
	if err := books[0].GetPages()[2].GetEvent().UnmarshalTo(&completed); err != nil || completed.GetLoyaltyPointsEarned() != 50 || completed.GetFinalTotalCents() != 5000 {
		t.Errorf("OrderCompleted %v (%v)", &completed, err)
	}

	// The mesh runs mTLS with authorization: no certificate, no call; a
	// saga's certificate neither writes a domain nor Records through its
	// proxy; nothing is stored.
	if !m.ep.MTLS {
		t.Fatal("angzarr dev does not run mTLS")
	}
	plain, err := grpc.NewClient(m.ep.EventService, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	forged := &pb.AppendRequest{Cover: &pb.Cover{Domain: "customer", Root: &pb.UUID{Value: orderRoot[:]}},
		Pages: []*pb.EventPage{{Sequence: &pb.EventPage_Num{Num: 0}, Event: books[0].GetPages()[2].GetEvent()}}}
	if _, err := pb.NewEventStoreClient(plain).Append(ctx, forged); status.Code(err) != codes.Unavailable {
		t.Errorf("plaintext Append: %v", err)
	}
	sagaCert := filepath.Join(m.ep.DataDir, "identity", "subscriber-loyalty-earn")
	sagaFiles, err := identity.LoadFiles(sagaCert+".crt", sagaCert+".key", filepath.Join(m.ep.DataDir, "identity", "ca.crt"), "")
	if err != nil {
		t.Fatal(err)
	}
	asSaga, err := grpc.NewClient(m.ep.EventService, identity.DialOption(sagaFiles, identity.ID{}))
	if err != nil {
		t.Fatal(err)
	}
	defer asSaga.Close()
	if _, err := pb.NewEventStoreClient(asSaga).Append(ctx, forged); status.Code(err) != codes.PermissionDenied {
		t.Errorf("Append with a saga's certificate: %v", err)
	}
	sagaToProxy, err := grpc.NewClient(m.ep.Domains["customer"].Coordinator, identity.DialOption(sagaFiles, identity.ID{}))
	if err != nil {
		t.Fatal(err)
	}
	defer sagaToProxy.Close()
	if _, err := pb.NewBusinessCoordinatorClient(sagaToProxy).Record(ctx, &pb.EventBook{Cover: forged.GetCover(), Pages: forged.GetPages()}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("Record with a saga's certificate: %v", err)
	}
	// Even an operator, who may Record, stores only the domain's event
	// types: an order's event recorded as a customer's is refused.
	opCert := filepath.Join(m.ep.DataDir, "identity", "operator")
	opFiles, err := identity.LoadFiles(opCert+".crt", opCert+".key", filepath.Join(m.ep.DataDir, "identity", "ca.crt"), "")
	if err != nil {
		t.Fatal(err)
	}
	opToProxy, err := grpc.NewClient(m.ep.Domains["customer"].Coordinator, identity.DialOption(opFiles, identity.ID{}))
	if err != nil {
		t.Fatal(err)
	}
	defer opToProxy.Close()
	_, err = pb.NewBusinessCoordinatorClient(opToProxy).Record(ctx, &pb.EventBook{Cover: forged.GetCover(), Pages: forged.GetPages()})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), `"examples.OrderCompleted"`) {
		t.Errorf("Record of an order event by the operator: %v", err)
	}
	if books := getEvents(ctx, t, eq, &pb.Query{Cover: forged.GetCover()}); len(books) != 0 {
		t.Errorf("forged events stored: %v", books)
	}

	// A stale sequence is refused, saying which one to send.
	_, errOut, err := e.try("send", "customer", "alice-e2e", "AddLoyaltyPoints", `{"points":30,"reason":"bonus"}`)
	if err == nil || !strings.Contains(errOut, "Aborted") || !strings.Contains(errOut, "--expect-sequence 2") {
		t.Errorf("stale sequence: err %v, stderr %s", err, errOut)
	}

	// --follow prints a new event as it is stored.
	follow := exec.Command(cli, "events", "customer", "alice-e2e", "--follow", "-o", "json", "--data-dir", e.data)
	fout, _ := follow.StdoutPipe()
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	seen := make(chan string, 8)
	go func() {
		s := bufio.NewScanner(fout)
		for s.Scan() {
			seen <- s.Text()
		}
		close(seen)
	}()
	e.run("send", "customer", "alice-e2e", "examples.AddLoyaltyPoints", `{"points":30,"reason":"bonus"}`, "--expect-sequence", "2")
	waitLine(t, seen, `"newBalance":80`)
	_ = follow.Process.Signal(os.Interrupt)
	if err := follow.Wait(); err != nil {
		t.Errorf("events --follow after Ctrl-C: %v", err)
	}

	// A second mesh on the same ports is refused, naming the component,
	// the port and what to do.
	clash := exec.Command(cli, e.devArgs(filepath.Join(t.TempDir(), "other"))...)
	cout, err := clash.CombinedOutput()
	if err == nil || !bytes.Contains(cout, []byte("eventsvc: port 127.0.0.1:"+strconv.Itoa(e.base)+" is already in use")) || !bytes.Contains(cout, []byte("--base-port")) {
		t.Errorf("second mesh on the same ports: %v\n%s", err, cout)
	}
	// And a second mesh on the same data directory.
	e2 := *e
	e2.base = e.base + 100
	lock := exec.Command(cli, e2.devArgs(e.data)...)
	if lout, err := lock.CombinedOutput(); err == nil || !bytes.Contains(lout, []byte("another angzarr dev")) {
		t.Errorf("second mesh on the same data directory: %v\n%s", err, lout)
	}

	m.stop(t)
	if _, err := os.Stat(endpoints.Path(e.data)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("endpoints.json after shutdown: %v", err)
	}
	if _, _, err := e.try("events", "customer", "alice-e2e"); err == nil {
		t.Error("events without a running mesh succeeded")
	}

	// Restarted, the mesh has kept everything, and the sagas go on.
	m = e.start()
	got = types(e.eventLines("customer", "alice-e2e"))
	if want := []string{"examples.CustomerCreated", "examples.LoyaltyPointsAdded", "examples.LoyaltyPointsAdded"}; !equal(got, want) {
		t.Errorf("customer events after restart %v, want %v", got, want)
	}
	// HandleSync: NONE answers with the events; SIMPLE also with the
	// synchronous order-summary projection.
	if out := e.run("send", "customer", "bob-e2e", "CreateCustomer", `{"name":"Bob","email":"bob@example.com"}`, "--sync", "none"); !strings.Contains(out, "examples.CustomerCreated") {
		t.Errorf("send --sync none printed:\n%s", out)
	}
	if out := e.run("send", "order", "order-e2e-sync", "CreateOrder", `{"customerId":"bob-e2e","items":[{"productId":"mug-e2e","name":"Mug","quantity":1,"unitPriceCents":1250}]}`, "--sync", "simple"); !strings.Contains(out, "examples.OrderCreated") || !strings.Contains(out, "order-summary") {
		t.Errorf("send --sync simple printed no order-summary projection:\n%s", out)
	}
	e.run("send", "order", "order-e2e-2", "CreateOrder", `{"customerId":"alice-e2e","items":[{"productId":"mug-e2e","name":"Mug","quantity":1,"unitPriceCents":1250}]}`)
	e.run("send", "order", "order-e2e-2", "SubmitPayment", `{"paymentMethod":"card","amountCents":1250}`, "--expect-sequence", "1")
	e.run("send", "order", "order-e2e-2", "ConfirmPayment", `{"paymentReference":"p2"}`, "--auto-resequence")
	testutil.Eventually(t, "the customer's fourth event, 92 points", func() bool {
		l := e.eventLines("customer", "alice-e2e")
		return len(l) == 4 && strings.Contains(string(l[3].Event), `"newBalance":92`)
	})
	// The admin and schema verbs find the mesh (and its operator
	// certificate) through --data-dir too, not only send and events.
	if out := e.run("dlq", "list"); !strings.Contains(out, "no dead letters") && !strings.Contains(out, "SUBSCRIBER") {
		t.Errorf("dlq list: %q", out)
	}
	testutil.Eventually(t, "schema status lists the customer's stored types", func() bool {
		return strings.Contains(e.run("schema", "status", "customer"), "examples.CustomerCreated")
	})
	m.stop(t)
}

func indexOf(domain string) int {
	for i, d := range []string{"customer", "product", "cart", "inventory", "order", "fulfillment"} {
		if d == domain {
			return i
		}
	}
	return -1
}

func getEvents(ctx context.Context, t *testing.T, eq pb.EventQueryClient, q *pb.Query) []*pb.EventBook {
	t.Helper()
	s, err := eq.GetEvents(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	var out []*pb.EventBook
	for {
		b, err := s.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			return out
		}
		out = append(out, b)
	}
}

func waitLine(t *testing.T, lines <-chan string, want string) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("events --follow ended before %s", want)
			}
			if strings.Contains(l, want) {
				return
			}
		case <-timeout:
			t.Fatalf("events --follow: no line with %s within 30s", want)
		}
	}
}

func equal(a, b []string) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

// httpGet returns the body of a GET, failing the test on an error.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", url, resp.Status, err)
	}
	return string(b)
}
