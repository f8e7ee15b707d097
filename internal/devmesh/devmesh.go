package devmesh

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/angzarr-mesh/angzarr/console"
	"github.com/angzarr-mesh/angzarr/controlplane"
	"github.com/angzarr-mesh/angzarr/controlplane/xdsclient"
	"github.com/angzarr-mesh/angzarr/controlplane/xdsproxy"
	"github.com/angzarr-mesh/angzarr/eventsvc"
	"github.com/angzarr-mesh/angzarr/examples/go/shop"
	"github.com/angzarr-mesh/angzarr/internal/devmesh/endpoints"
	"github.com/angzarr-mesh/angzarr/internal/identity"
	"github.com/angzarr-mesh/angzarr/wasmhost"
)

// consoleUser is the web console's user in the local mesh.
const consoleUser = "developer"

// StoreFile is the SQLite database's name inside the data directory.
const StoreFile = "events.db"

// ErrNoFilter means the filter module is missing.
var ErrNoFilter = errors.New("filter module not found")

// Run starts the local mesh and serves until ctx is done, then stops every
// component and returns. It returns early with an error naming the
// component when one cannot start or fails.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("angzarr dev: %w", err)
	}
	cfg = cfg.withDefaults()
	log := cfg.Logger
	m := &mesh{cfg: cfg, log: log, self: log.With("component", "dev")}
	if err := m.prepare(ctx); err != nil {
		return fmt.Errorf("angzarr dev: %w", err)
	}
	defer m.unlock()
	return m.run(ctx)
}

// mesh is one run of the local mesh.
type mesh struct {
	cfg  Config
	log  *slog.Logger // for the components, each adds its name
	self *slog.Logger // the mesh's own lines (component=dev)

	filter    string // absolute
	dataDir   string // absolute
	unlock    func()
	plan      []slot
	python    bool
	topology  string
	listeners map[string]net.Listener
	// consoleToken logs the developer in to the web console.
	consoleToken string
	ids          *meshIdentity // nil with Config.Insecure
}

// prepare checks the filter, takes the data directory, decides on Python,
// writes the topology and listens on every port.
func (m *mesh) prepare(ctx context.Context) error {
	cfg := m.cfg
	var err error
	if m.filter, err = filepath.Abs(cfg.Filter); err != nil {
		return err
	}
	if _, err := os.Stat(m.filter); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: %s does not exist: build it with `make filter` (`make dev` does it for you), or pass --filter PATH", ErrNoFilter, cfg.Filter)
		}
		return fmt.Errorf("filter module: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if m.dataDir, err = filepath.Abs(cfg.DataDir); err != nil {
		return err
	}
	if m.unlock, err = lock(m.dataDir); err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			m.unlock()
		}
	}()
	_ = os.Remove(endpoints.Path(m.dataDir)) // a crashed run's
	m.plan = cfg.plan()
	if m.consoleToken = cfg.ConsoleToken; m.consoleToken == "" {
		if m.consoleToken, err = console.NewToken(); err != nil {
			return err
		}
	}
	var why string
	m.python, why = cfg.pythonUsable(ctx)
	if m.python {
		m.log.Info("the customer domain runs in Python", "component", "logic/customer", "python", cfg.Python, "script", cfg.PythonCustomer)
	} else {
		m.log.Info("the customer domain runs in Go: Python is not usable", "component", "logic/customer", "reason", why)
	}
	if !cfg.Insecure {
		var accounts []string
		for _, s := range m.plan {
			switch {
			case s.kind == kindProxy:
				accounts = append(accounts, proxyAccount(s.domain))
			case s.shop != nil && servedOverMTLS(s.shop.Kind):
				accounts = append(accounts, subscriberAccount(s.shop.Name))
			}
		}
		if m.ids, err = newMeshIdentity(m.dataDir, append(accounts, eventServiceAccount, controlPlaneAccount, consoleAccount)); err != nil {
			return err
		}
	} else {
		m.log.Warn("INSECURE: angzarr dev runs plaintext without identities or authorization", "component", "dev")
	}
	topo := cfg.topology(m.plan)
	if m.python {
		if err := cfg.pythonDescriptors(topo); err != nil {
			return err
		}
	}
	if m.topology, err = cfg.writeTopology(topo); err != nil {
		return err
	}
	skip := map[string]bool{}
	if m.python {
		skip["logic/customer"] = true
	}
	for _, s := range m.plan {
		if cfg.EnvoyProxies && (s.kind == kindProxy || s.kind == kindProxyAdmin) {
			skip[s.name] = true // the caller's Envoys listen there
		}
	}
	if m.listeners, err = listenAll(cfg.Host, m.plan, skip); err != nil {
		return err
	}
	ok = true
	return nil
}

// run serves every component until ctx is done or one fails.
func (m *mesh) run(ctx context.Context) error {
	cfg := m.cfg
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	named := func(name string, err error) error {
		if err == nil || gctx.Err() != nil && errors.Is(err, context.Canceled) {
			return nil
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	addr := func(name string) string {
		for _, s := range m.plan {
			if s.name == name {
				return s.addr(cfg.Host)
			}
		}
		return ""
	}
	cpAddr := addr(kindControlPlane)

	// What can fail comes first, before anything runs.
	cp, err := controlplane.New(controlplane.Config{
		Topology:        m.topology,
		Filter:          controlplane.Options{WasmFile: m.filter},
		MetricsListener: m.listeners[kindControlPlaneMetrics], // Serve closes it
		Logger:          m.log.With("component", kindControlPlane),
		Identity:        m.identityConfig(controlPlaneAccount),
		// Types stored for the first time are guarded within seconds
		// (reflection asks for the types the registry has seen).
		SchemaInterval: 5 * time.Second,
	})
	if err != nil {
		m.closeListeners()
		return fmt.Errorf("angzarr dev: %s: %w", kindControlPlane, err)
	}
	fconn, err := grpc.NewClient(cpAddr, m.dial(eventServiceAccount))
	if err != nil {
		m.closeListeners()
		return fmt.Errorf("angzarr dev: %w", err)
	}
	defer fconn.Close()
	var waits []wait
	if m.python {
		// The Python customer is the mesh's one subprocess: restarted with
		// back-off when it exits (kill -9, a crash), while every other
		// domain keeps serving.
		plog := m.log.With("component", "logic/customer")
		sv := &supervisor{
			log: plog.With("kind", shop.Logic, "language", "python"), ready: make(chan struct{}),
			min: cfg.RestartMin, max: cfg.RestartMax, reset: cfg.RestartReset,
			start: func(ctx context.Context) (process, error) {
				return cfg.startPython(ctx, addr("logic/customer"), plog)
			},
		}
		g.Go(func() error { return named("logic/customer", sv.run(gctx)) })
		waits = append(waits, wait{"logic/customer", sv.ready})
	}

	// The business logic, sagas and projector of the example shop.
	for _, s := range m.plan {
		if s.shop == nil || m.listeners[s.name] == nil {
			continue
		}
		lis, c := m.listeners[s.name], *s.shop
		if m.ids != nil && servedOverMTLS(c.Kind) {
			lis = m.ids.serverListener(lis, subscriberAccount(c.Name))
		}
		m.log.Info("serving", "component", s.name, "addr", lis.Addr().String(), "kind", c.Kind, "language", "go")
		g.Go(func() error { return named(s.name, shop.Serve(gctx, lis, c)) })
	}

	// The event service, fed its fan-out configuration by the control plane.
	src := &fanoutSource{
		inner: &xdsclient.FanoutClient{Conn: fconn, Node: &core.Node{Id: "angzarr-dev-eventsvc", Cluster: "angzarr-eventsvc"},
			Logger: m.log.With("component", "eventsvc/fanout-xds")},
		applied: make(chan struct{}),
	}
	ecfg := eventsvc.Config{
		Store:           "sqlite:" + filepath.Join(m.dataDir, StoreFile),
		ShutdownTimeout: 5 * time.Second,
		Logger:          m.log.With("component", kindEventService),
		FanoutSource:    src,
		MetricsListener: m.listeners[kindEventServiceMetrics],
		Identity:        m.identityConfig(eventServiceAccount),
	}
	elis := m.listeners[kindEventService]
	g.Go(func() error { return named(kindEventService, eventsvc.Serve(gctx, elis, ecfg)) })
	eready := make(chan struct{})
	g.Go(func() error {
		if err := healthy(gctx, addr(kindEventService), m.dial(operatorAccount)); err != nil {
			return named(kindEventService, err)
		}
		close(eready)
		return nil
	})
	waits = append(waits, wait{kindEventService, eready}, wait{"eventsvc fan-out configuration", src.applied})

	// The control plane on the generated topology.
	clis := m.listeners[kindControlPlane]
	g.Go(func() error { return named(kindControlPlane, cp.Serve(gctx, clis)) })
	waits = append(waits, wait{kindControlPlane + " topology", cp.Publisher().Applied()})

	// The web console, for the developer (an operator).
	ccfg := console.Config{EventService: addr(kindEventService), ControlPlane: cpAddr,
		Tokens: map[string]string{m.consoleToken: consoleUser}, Operators: []string{consoleUser},
		DialOptions: []grpc.DialOption{m.dial(consoleAccount)}, Logger: m.log.With("component", kindConsole)}
	conLis := m.listeners[kindConsole]
	g.Go(func() error { return named(kindConsole, console.Serve(gctx, conLis, ccfg)) })

	// One xDS-fed proxy per domain (unless the caller runs Envoys).
	for _, s := range m.plan {
		if s.kind != kindProxy || cfg.EnvoyProxies {
			continue
		}
		name := s.name
		plog := m.log.With("component", name)
		ready := make(chan struct{})
		var once sync.Once
		pcfg := xdsproxy.Config{
			XDS:      cpAddr,
			Node:     s.domain,
			Metadata: map[string]any{controlplane.MetaDomain: s.domain},
			Host:     wasmhost.Config{VMs: cfg.ProxyVMs, Logger: plog},
			Applied:  func(xdsclient.ProxyConfig) { once.Do(func() { close(ready) }) },
			XDSDial:  m.dial(proxyAccount(s.domain)),
		}
		if m.ids != nil {
			f := m.ids.files[proxyAccount(s.domain)]
			pcfg.Host.ListenerTLS, pcfg.Host.ListenerID = identity.ServerTLS(f), f.ID().String()
			pcfg.Host.ClusterTLS = identity.ClientTLS(f, identity.ID{})
		}
		lis, admin := m.listeners[name], m.listeners[kindProxyAdmin+"/"+s.domain]
		g.Go(func() error { return named(name, xdsproxy.Serve(gctx, lis, admin, pcfg)) })
		waits = append(waits, wait{name, ready})
	}
	m.listeners = nil // every listener is owned by its server now

	if err := m.awaitReady(gctx, waits); err != nil {
		m.self.Error("stopping", "err", err)
		cancel()
		_ = g.Wait()
		return err
	}
	if gctx.Err() == nil {
		if err := endpoints.Write(m.dataDir, m.endpoints()); err != nil {
			m.self.Error("cannot write the endpoints file", "err", err)
		}
		defer os.Remove(endpoints.Path(m.dataDir))
		m.writeTable(cfg.Out)
		m.self.Info("angzarr dev is ready", "endpoints", endpoints.Path(cfg.DataDir))
	}
	err = g.Wait()
	m.self.Info("angzarr dev stopped", "data", cfg.DataDir)
	if err != nil {
		return fmt.Errorf("angzarr dev: %w", err)
	}
	return nil
}

// wait is a component's readiness.
type wait struct {
	name  string
	ready <-chan struct{}
}

// awaitReady waits until every component is ready. A component failing
// first returns nil here (run reports its error); a timeout names every
// component still not ready.
func (m *mesh) awaitReady(gctx context.Context, waits []wait) error {
	timer := time.NewTimer(m.cfg.ReadyTimeout)
	defer timer.Stop()
	for _, w := range waits {
		select {
		case <-w.ready:
		case <-gctx.Done():
			return nil
		case <-timer.C:
			var late []string
			for _, w := range waits {
				select {
				case <-w.ready:
				default:
					late = append(late, w.name)
				}
			}
			return fmt.Errorf("angzarr dev: not ready after %v: %v (see their logs)", m.cfg.ReadyTimeout, late)
		}
	}
	return nil
}

// healthy waits until the gRPC server at addr reports SERVING.
func healthy(ctx context.Context, addr string, dial grpc.DialOption) error {
	conn, err := grpc.NewClient(addr, dial)
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
	return err
}

// identityConfig is the identity of a component: its certificate files,
// or --insecure.
func (m *mesh) identityConfig(sa string) identity.Config {
	if m.ids == nil {
		return identity.Config{Insecure: true}
	}
	return m.ids.config(sa)
}

// dial is a component's transport to another: mTLS with its certificate,
// or plaintext.
func (m *mesh) dial(sa string) grpc.DialOption {
	if m.ids == nil {
		return grpc.WithTransportCredentials(insecure.NewCredentials())
	}
	return identity.DialOption(m.ids.files[sa], identity.ID{})
}

func (m *mesh) closeListeners() {
	for _, l := range m.listeners {
		l.Close()
	}
	m.listeners = nil
}

// endpoints is the endpoints file of the running mesh.
func (m *mesh) endpoints() *endpoints.File {
	f := &endpoints.File{PID: os.Getpid(), DataDir: m.dataDir, Domains: map[string]endpoints.Domain{},
		Sagas: map[string]string{}, Projectors: map[string]string{}, MTLS: m.ids != nil}
	for _, s := range m.plan {
		a := s.addr(m.cfg.Host)
		switch {
		case s.kind == kindEventService:
			f.EventService = a
		case s.kind == kindEventServiceMetrics:
			f.EventServiceMetrics = a
		case s.kind == kindControlPlane:
			f.ControlPlane = a
		case s.kind == kindControlPlaneMetrics:
			f.ControlPlaneMetrics = a
		case s.kind == kindConsole:
			f.Console = a
		case s.kind == kindProxy:
			d := f.Domains[s.domain]
			d.Coordinator = a
			f.Domains[s.domain] = d
		case s.kind == kindProxyAdmin && !m.cfg.EnvoyProxies:
			d := f.Domains[s.domain]
			d.Admin = a
			f.Domains[s.domain] = d
		case s.kind == string(shop.Logic):
			d := f.Domains[s.domain]
			d.Logic, d.Language = a, m.language(s.domain)
			f.Domains[s.domain] = d
		case s.kind == string(shop.Saga):
			f.Sagas[s.shop.Name] = a
		case s.kind == string(shop.Projector):
			f.Projectors[s.shop.Name] = a
		case s.kind == string(shop.ProcessManager):
			if f.ProcessManagers == nil {
				f.ProcessManagers = map[string]string{}
			}
			f.ProcessManagers[s.shop.Name] = a
		}
	}
	return f
}

func (m *mesh) language(domain string) string {
	if domain == "customer" && m.python {
		return "python"
	}
	return "go"
}
