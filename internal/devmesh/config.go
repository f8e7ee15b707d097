package devmesh

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/angzarr-mesh/angzarr/examples/go/shop"
	"github.com/angzarr-mesh/angzarr/internal/devmesh/endpoints"
)

// Defaults of Config.
const (
	DefaultFilter         = "build/angzarr-filter.wasm"
	DefaultHost           = "127.0.0.1"
	DefaultBasePort       = 13100
	DefaultPython         = "/usr/bin/python3"
	DefaultPythonCustomer = "examples/python/customer/server.py"
	DefaultReadyTimeout   = 2 * time.Minute
)

// Config configures the local mesh.
type Config struct {
	// DataDir holds the SQLite store (events.db), the generated topology
	// (topology.yaml), the lock and, while the mesh runs, endpoints.json.
	// It is kept across restarts. Default ".angzarr".
	DataDir string
	// Filter is the filter module every proxy loads. Default
	// "build/angzarr-filter.wasm" (`make filter` builds it).
	Filter string
	// Host is the address every component listens on. Default "127.0.0.1".
	Host string
	// BasePort places every component at a fixed offset from it (see
	// Ports): event service +0, control plane +1, their metrics +2 and +3,
	// proxies +10.., proxy admin +20.., business logic, sagas, projector
	// and process manager +30... Default 13100 (below the ephemeral port range, where outgoing
	// connections could take a port at random).
	BasePort int
	// Ports overrides the port of single components, by name ("eventsvc",
	// "eventsvc-metrics", "controlplane", "controlplane-metrics", "console",
	// "proxy/order", "proxy-admin/order", "logic/order",
	// "saga/loyalty-earn", "projector/order-summary"). Optional.
	Ports map[string]int
	// Python is the interpreter of the Python customer. It is used when
	// `PYTHON -c 'import grpc'` works; otherwise the Go customer serves the
	// domain (the log says so). Default "/usr/bin/python3" (Debian's, with
	// python3-grpcio).
	Python string
	// NoPython serves the Go customer even when Python could.
	NoPython bool
	// PythonCustomer is the Python customer's server script. Default
	// "examples/python/customer/server.py".
	PythonCustomer string
	// ProxyVMs is the number of Wasm VMs per proxy. Default 1.
	ProxyVMs int
	// ConsoleToken is the login token of the web console's user
	// "developer" (an operator); the endpoint table prints its login URL.
	// Default: a random one per start.
	ConsoleToken string
	// ReadyTimeout bounds the start: every component must be ready within
	// it. Default 2m.
	ReadyTimeout time.Duration
	// Out receives the endpoint table once the mesh is ready. Default
	// io.Discard.
	Out io.Writer
	// Logger receives every component's logs, each with attribute
	// component=<name>. Default slog.Default().
	Logger *slog.Logger
	// RestartMin, RestartMax and RestartReset tune how a subprocess that
	// exits (the Python customer) is restarted: after a back-off doubling
	// from RestartMin to at most RestartMax, from RestartMin again once it
	// stayed up RestartReset. Defaults DefaultRestartMin, DefaultRestartMax,
	// DefaultRestartReset.
	RestartMin, RestartMax, RestartReset time.Duration
	// Insecure runs every component in plaintext without identities or
	// authorization (a warning is logged). Default false: a local CA under
	// DataDir/identity issues a certificate per component, every server
	// requires mTLS, the event service authorizes each call, and the client
	// verbs use the operator certificate there.
	Insecure bool
	// EnvoyProxies leaves each domain's proxy to a real Envoy that the
	// caller runs with its bootstrap from EnvoyBootstraps (the Envoy lane
	// of the shop's end-to-end tests, with ENVOY_BIN): the mesh neither
	// listens on the proxies' ports and admin ports nor waits for them,
	// and the topology gives each proxy's node (its domain) its proxy port
	// as ingress port. It requires Insecure: the control plane gives a
	// standalone Envoy no TLS on its listener and clusters (wasmhost
	// proxies take theirs from the mesh), so a real Envoy can only join a
	// plaintext mesh.
	EnvoyProxies bool
}

// withDefaults returns c with its defaults applied.
func (c Config) withDefaults() Config {
	if c.DataDir == "" {
		c.DataDir = endpoints.DefaultDir
	}
	if c.Filter == "" {
		c.Filter = DefaultFilter
	}
	if c.Host == "" {
		c.Host = DefaultHost
	}
	if c.BasePort == 0 {
		c.BasePort = DefaultBasePort
	}
	if c.Python == "" {
		c.Python = DefaultPython
	}
	if c.PythonCustomer == "" {
		c.PythonCustomer = DefaultPythonCustomer
	}
	if c.ProxyVMs == 0 {
		c.ProxyVMs = 1
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = DefaultReadyTimeout
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	plan := c.plan()
	if c.BasePort < 1 || c.BasePort+PortSpan > 65535 {
		errs = append(errs, fmt.Errorf("base port %d: must leave room for %d ports below 65536", c.BasePort, PortSpan))
	}
	known := map[string]bool{}
	for _, p := range plan {
		known[p.name] = true
	}
	for _, name := range slices.Sorted(maps.Keys(c.Ports)) {
		if !known[name] {
			errs = append(errs, fmt.Errorf("port of %q: no such component (the components are %s)", name, strings.Join(componentNames(plan), ", ")))
		}
		if p := c.Ports[name]; p < 1 || p > 65535 {
			errs = append(errs, fmt.Errorf("port of %s: %d is not a port", name, p))
		}
	}
	byPort := map[int][]string{}
	for _, p := range plan {
		byPort[p.port] = append(byPort[p.port], p.name)
	}
	for _, port := range slices.Sorted(maps.Keys(byPort)) {
		if names := byPort[port]; len(names) > 1 {
			errs = append(errs, fmt.Errorf("port %d is given to %s: give each its own (--port NAME=PORT)", port, strings.Join(names, " and ")))
		}
	}
	if c.ProxyVMs < 0 {
		errs = append(errs, fmt.Errorf("proxy VMs %d: must not be negative", c.ProxyVMs))
	}
	if c.ReadyTimeout < 0 {
		errs = append(errs, fmt.Errorf("ready timeout %v: must not be negative", c.ReadyTimeout))
	}
	if c.EnvoyProxies && !c.Insecure {
		errs = append(errs, errors.New("proxies run by Envoy need an insecure mesh: the control plane gives a standalone Envoy no TLS on its listener and clusters"))
	}
	return errors.Join(errs...)
}

// ParsePort parses a NAME=PORT override (the --port flag).
func ParsePort(s string) (string, int, error) {
	name, port, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return "", 0, fmt.Errorf("port %q: want NAME=PORT, e.g. eventsvc=1313", s)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %q is not a number", s, port)
	}
	return name, n, nil
}

// Port offsets from Config.BasePort.
const (
	offEventService        = 0
	offControlPlane        = 1
	offEventServiceMetrics = 2
	offControlPlaneMetrics = 3
	offConsole             = 4
	offProxy               = 10
	offProxyAdmin          = 20
	offComponent           = 30
)

// PortSpan is how many consecutive ports from Config.BasePort the mesh may
// take: 30 for its own parts, then one per shop component (up to 30).
const PortSpan = 60

// Component kinds of the plan.
const (
	kindEventService        = "eventsvc"
	kindEventServiceMetrics = "eventsvc-metrics"
	kindControlPlane        = "controlplane"
	kindControlPlaneMetrics = "controlplane-metrics"
	kindProxy               = "proxy"
	kindProxyAdmin          = "proxy-admin"
	kindConsole             = "console"
)

// slot is one listening component of the mesh.
type slot struct {
	name string // "eventsvc", "eventsvc-metrics", "proxy/order", "logic/order", "saga/fulfillment"
	kind string // kindEventService, ..., or a shop.Kind
	port int
	// shop is the example component (logic, saga, projector).
	shop *shop.Component
	// domain of a proxy or logic.
	domain string
}

// addr is the slot's address on host.
func (s slot) addr(host string) string {
	return host + ":" + strconv.Itoa(s.port)
}

// plan lists every component with its port.
func (c Config) plan() []slot {
	port := func(name string, off int) int {
		if p, ok := c.Ports[name]; ok {
			return p
		}
		return c.BasePort + off
	}
	out := []slot{
		{name: kindEventService, kind: kindEventService, port: port(kindEventService, offEventService)},
		{name: kindEventServiceMetrics, kind: kindEventServiceMetrics, port: port(kindEventServiceMetrics, offEventServiceMetrics)},
		{name: kindControlPlane, kind: kindControlPlane, port: port(kindControlPlane, offControlPlane)},
		{name: kindControlPlaneMetrics, kind: kindControlPlaneMetrics, port: port(kindControlPlaneMetrics, offControlPlaneMetrics)},
		{name: kindConsole, kind: kindConsole, port: port(kindConsole, offConsole)},
	}
	all := shop.All()
	i := 0
	for _, sc := range all {
		if sc.Kind != shop.Logic {
			continue
		}
		out = append(out,
			slot{name: kindProxy + "/" + sc.Domain, kind: kindProxy, domain: sc.Domain, port: port(kindProxy+"/"+sc.Domain, offProxy+i)},
			slot{name: kindProxyAdmin + "/" + sc.Domain, kind: kindProxyAdmin, domain: sc.Domain, port: port(kindProxyAdmin+"/"+sc.Domain, offProxyAdmin+i)})
		i++
	}
	for j, sc := range all {
		name := string(sc.Kind) + "/" + sc.Name
		out = append(out, slot{name: name, kind: string(sc.Kind), shop: &all[j], domain: sc.Domain, port: port(name, offComponent+j)})
	}
	return out
}

func componentNames(plan []slot) []string {
	names := make([]string, len(plan))
	for i, p := range plan {
		names[i] = p.name
	}
	return names
}
