package devmesh

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/angzarr-mesh/angzarr/controlplane"
)

var quiet = slog.New(slog.DiscardHandler)

func TestPlanPorts(t *testing.T) {
	cfg := Config{BasePort: 41000, Ports: map[string]int{"eventsvc": 1313}}.withDefaults()
	want := map[string]int{
		"eventsvc": 1313, "controlplane": 41001, "eventsvc-metrics": 41002, "controlplane-metrics": 41003, "console": 41004,
		"proxy/customer": 41010, "proxy/order": 41014, "proxy/fulfillment": 41015,
		"proxy-admin/customer": 41020, "logic/customer": 41030, "logic/fulfillment": 41035,
		"saga/loyalty-earn": 41036, "saga/fulfillment": 41037, "saga/cancellation": 41038, "projector/order-summary": 41039,
		"upcaster/product-upcaster": 41040,
		"process-manager/checkout":  41041,
	}
	got := map[string]int{}
	for _, s := range cfg.plan() {
		got[s.name] = s.port
	}
	for name, port := range want {
		if got[name] != port {
			t.Errorf("%s: port %d, want %d", name, got[name], port)
		}
	}
	if len(got) != 5+6+6+12 {
		t.Errorf("%d components: %v", len(got), got)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{"defaults", Config{}, nil},
		{"base port too high", Config{BasePort: 65500}, []string{"base port 65500"}},
		{"unknown component", Config{Ports: map[string]int{"proxy/nope": 1}}, []string{`"proxy/nope": no such component`, "proxy/order"}},
		{"not a port", Config{Ports: map[string]int{"eventsvc": 70000}}, []string{"port of eventsvc: 70000"}},
		{"same port twice", Config{BasePort: 41000, Ports: map[string]int{"logic/order": 41000}}, []string{"port 41000 is given to eventsvc and logic/order"}},
		{"everything at once", Config{ProxyVMs: -1, ReadyTimeout: -1, Ports: map[string]int{"x": 1}}, []string{"proxy VMs", "ready timeout", `"x"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestParsePort(t *testing.T) {
	if n, p, err := ParsePort("proxy/order=1400"); err != nil || n != "proxy/order" || p != 1400 {
		t.Errorf("ParsePort: %q %d %v", n, p, err)
	}
	for _, bad := range []string{"eventsvc", "=1", "eventsvc=x"} {
		if _, _, err := ParsePort(bad); err == nil {
			t.Errorf("ParsePort(%q) accepted", bad)
		}
	}
}

func TestTopologyIsLocal(t *testing.T) {
	cfg := Config{BasePort: 41000, DataDir: t.TempDir()}.withDefaults()
	p, err := cfg.writeTopology(cfg.topology(cfg.plan()))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	topo, err := controlplane.DecodeTopology(b)
	if err != nil {
		t.Fatal(err)
	}
	if topo.EventService.Address != "127.0.0.1:41000" {
		t.Errorf("event service %q", topo.EventService.Address)
	}
	ports, coords := map[string]int{}, map[string]string{}
	for _, d := range topo.Domains {
		if d.Service != "127.0.0.1" {
			t.Errorf("domain %s service %q", d.Name, d.Service)
		}
		ports[d.Name], coords[d.Name] = d.Port, d.Coordinator
	}
	if ports["customer"] != 41030 || ports["order"] != 41034 || len(ports) != 6 {
		t.Errorf("domain ports %v", ports)
	}
	// Saga commands go to each domain's proxy (its filter), not its logic.
	if coords["customer"] != "127.0.0.1:41010" || coords["order"] != "127.0.0.1:41014" {
		t.Errorf("domain coordinators %v", coords)
	}
	addrs := map[string]string{}
	for _, s := range topo.Sagas {
		addrs[s.Name] = s.Address
	}
	for _, pr := range topo.Projectors {
		addrs[pr.Name] = pr.Address
	}
	if addrs["loyalty-earn"] != "127.0.0.1:41036" || addrs["cancellation"] != "127.0.0.1:41038" || addrs["order-summary"] != "127.0.0.1:41039" {
		t.Errorf("subscriber addresses %v", addrs)
	}
}

func TestRunWithoutFilterSaysMakeFilter(t *testing.T) {
	defer goleak.VerifyNone(t)
	err := Run(context.Background(), Config{DataDir: t.TempDir(), Filter: filepath.Join(t.TempDir(), "missing.wasm"), NoPython: true, Logger: quiet})
	if !errors.Is(err, ErrNoFilter) || !strings.Contains(err.Error(), "make filter") {
		t.Fatalf("err %v", err)
	}
}

func TestRunReportsEveryTakenPort(t *testing.T) {
	defer goleak.VerifyNone(t)
	filter := filepath.Join(t.TempDir(), "filter.wasm")
	if err := os.WriteFile(filter, []byte("\x00asm"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Three taken ports: the event service's, proxy/order's and the control
	// plane's metrics endpoint's.
	a, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	base := a.Addr().(*net.TCPAddr).Port
	b, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	taken := b.Addr().(*net.TCPAddr).Port
	c, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	takenMetrics := c.Addr().(*net.TCPAddr).Port
	// Move every other component onto free ports.
	ports := map[string]int{"proxy/order": taken, "controlplane-metrics": takenMetrics}
	cfg := Config{Filter: filter, NoPython: true, BasePort: base}.withDefaults()
	var hold []net.Listener
	for _, s := range cfg.plan() {
		if s.name == "eventsvc" || s.name == "proxy/order" || s.name == "controlplane-metrics" {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		hold = append(hold, l)
		ports[s.name] = l.Addr().(*net.TCPAddr).Port
	}
	for _, l := range hold {
		l.Close()
	}
	data := t.TempDir()
	err = Run(context.Background(), Config{DataDir: data, Filter: filter, NoPython: true, BasePort: base, Ports: ports, Logger: quiet})
	var pe *PortError
	if !errors.As(err, &pe) {
		t.Fatalf("err %v, want a *PortError", err)
	}
	for _, want := range []string{
		"eventsvc: port 127.0.0.1:" + strconv.Itoa(base) + " is already in use",
		"proxy/order: port 127.0.0.1:" + strconv.Itoa(taken) + " is already in use",
		"controlplane-metrics: port 127.0.0.1:" + strconv.Itoa(takenMetrics) + " is already in use",
		"--base-port N", "--port proxy/order=PORT",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	// Nothing was left listening or locked: the data directory is free.
	unlock, err := lock(data)
	if err != nil {
		t.Fatal(err)
	}
	unlock()
}

func TestLockKeepsASecondMeshOff(t *testing.T) {
	dir := t.TempDir()
	unlock, err := lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := lock(dir); err == nil || !strings.Contains(err.Error(), "another angzarr dev (pid "+strconv.Itoa(os.Getpid())+")") {
		t.Fatalf("second lock: %v", err)
	}
}

func TestPythonFallsBackToGo(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{NoPython: true}, "--no-python"},
		{Config{PythonCustomer: filepath.Join(t.TempDir(), "none.py")}, "no Python customer script"},
		{Config{Python: filepath.Join(t.TempDir(), "python3"), PythonCustomer: "config_test.go"}, "make deps"},
	} {
		ok, why := tc.cfg.withDefaults().pythonUsable(ctx)
		if ok || !strings.Contains(why, tc.want) {
			t.Errorf("%+v: usable %v, reason %q, want %q", tc.cfg, ok, why, tc.want)
		}
	}
}

func TestAwaitReadyNamesTheLateOnes(t *testing.T) {
	m := &mesh{cfg: Config{ReadyTimeout: 20 * time.Millisecond}}
	done := make(chan struct{})
	close(done)
	err := m.awaitReady(context.Background(), []wait{{"eventsvc", done}, {"proxy/order", make(chan struct{})}, {"saga/x", make(chan struct{})}})
	if err == nil || !strings.Contains(err.Error(), "[proxy/order saga/x]") {
		t.Fatalf("err %v", err)
	}
	// A component that fails first is reported by run, not here.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := m.awaitReady(ctx, []wait{{"proxy/order", make(chan struct{})}}); err != nil {
		t.Fatal(err)
	}
}
