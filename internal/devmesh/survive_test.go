package devmesh_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/angzarr-mesh/angzarr/internal/devmesh"
	"github.com/angzarr-mesh/angzarr/internal/testutil"
)

// pythonPIDs lists the pids the mesh logged for its Python customer, in
// order.
func pythonPIDs(stderr string) []int {
	var out []int
	for _, m := range regexp.MustCompile(`python customer started.*? pid=(\d+)`).FindAllStringSubmatch(stderr, -1) {
		n, _ := strconv.Atoi(m[1])
		out = append(out, n)
	}
	return out
}

// TestDevMeshSurvivesAKilledChild: kill -9 of the Python customer (the
// local mesh's logic subprocess) leaves every other domain serving; the
// mesh restarts the customer, which serves again; dlq and replay find the
// mesh through --data-dir; SIGINT then stops everything, the restarted
// customer included.
func TestDevMeshSurvivesAKilledChild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the CLI and the filter and runs the whole mesh")
	}
	if out, err := exec.Command("/usr/bin/python3", "-c", "import grpc").CombinedOutput(); err != nil {
		t.Fatalf("the Python customer cannot run (make deps installs python3-grpcio): %v %s", err, out)
	}
	cli, filter := buildAll(t)
	e := &env{t: t, cli: cli, filter: filter, data: filepath.Join(t.TempDir(), "data"), base: testutil.FreePorts(t, devmesh.PortSpan)}
	m := e.start()
	if lang := m.ep.Domains["customer"].Language; lang != "python" {
		t.Fatalf("the customer runs in %q, want python", lang)
	}
	e.run("send", "customer", "ada-survive", "CreateCustomer", `{"name":"Ada","email":"ada@example.com"}`)
	pids := pythonPIDs(m.stderr.String())
	if len(pids) != 1 {
		t.Fatalf("python customer pids %v, want one\n%s", pids, m.stderr.String())
	}

	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Meanwhile every other domain serves: a product per command, each
	// stored (the command's output names the event).
	for i := range 5 {
		sku := fmt.Sprintf("mug-survive-%d", i)
		if out := e.run("send", "product", sku, "CreateProduct", fmt.Sprintf(`{"sku":%q,"name":"Mug","priceCents":1250}`, sku)); !strings.Contains(out, "examples.ProductListed") {
			t.Fatalf("product %d while the customer restarts: %s", i, out)
		}
	}
	// The customer serves again, in a new process.
	testutil.Eventually(t, "the restarted customer stores a command", func() bool {
		_, _, err := e.try("send", "customer", "ada-survive", "AddLoyaltyPoints", `{"points":5,"reason":"back"}`, "--expect-sequence", "1")
		return err == nil
	})
	select {
	case err := <-m.done:
		t.Fatalf("angzarr dev exited after its child was killed: %v\n%s", err, m.stderr.String())
	default:
	}
	log := m.stderr.String()
	pids = pythonPIDs(log)
	if len(pids) != 2 || pids[1] == pids[0] {
		t.Fatalf("python customer pids %v, want the killed one and its restart", pids)
	}
	for _, want := range []string{"crashed; restarting", "serving again"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log does not say %q", want)
		}
	}
	if l := e.eventLines("customer", "ada-survive"); len(l) != 2 {
		t.Errorf("the customer has %d events, want 2", len(l))
	}

	// The admin verbs find the mesh, and its operator certificate, through
	// --data-dir (e.run passes it), as send and events do.
	if out := e.run("dlq", "list"); !strings.Contains(out, "no dead letters") && !strings.Contains(out, "SUBSCRIBER") {
		t.Errorf("dlq list: %q", out)
	}
	if out := e.run("replay", "--projector", "order-summary", "--timeout", "1m"); !strings.Contains(out, "projector order-summary rebuilt") {
		t.Errorf("replay: %q", out)
	}

	// A clean stop leaves no process behind.
	m.stop(t)
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			state, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
			t.Errorf("python customer %d outlived angzarr dev: %v %s", pid, err, state)
		}
	}
}
