package devmesh

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/angzarr-mesh/angzarr/console"
	"github.com/angzarr-mesh/angzarr/examples/go/shop"
)

// writeTable prints where everything listens, the commands go first.
func (m *mesh) writeTable(w io.Writer) {
	host := m.cfg.Host
	rel := func(name string) string { return filepath.Join(m.cfg.DataDir, name) }
	fmt.Fprintf(w, "\nAngzarr Mesh is running locally. Data: %s (kept across restarts). Endpoints: %s\n\n", m.cfg.DataDir, rel("endpoints.json"))
	row := func(name, addr, what string) { fmt.Fprintf(w, "  %-26s %-17s %s\n", name, addr, what) }
	row("COMPONENT", "ADDRESS", "SERVES")
	for _, s := range m.plan {
		if s.kind == kindProxy {
			row(s.name, s.addr(host), "angzarr.BusinessCoordinator for "+s.domain+" (send commands here)")
		}
	}
	for _, s := range m.plan {
		a := s.addr(host)
		switch s.kind {
		case kindEventService:
			row(s.name, a, "angzarr.EventQuery, CommandGateway, EventStore, FanoutAdmin (SQLite "+rel(StoreFile)+")")
		case kindEventServiceMetrics:
			row(s.name, a, "/metrics (Prometheus: store, fan-out, sagas, projector, gRPC)")
		case kindControlPlane:
			row(s.name, a, "xDS (topology "+rel(TopologyFile)+")")
		case kindControlPlaneMetrics:
			row(s.name, a, "/metrics (Prometheus: topology versions, xDS pushes)")
		case kindConsole:
			row(s.name, a, "web console: open "+console.LoginURL(a, m.consoleToken))
		case kindProxyAdmin:
			if !m.cfg.EnvoyProxies { // an Envoy's admin is its own
				row(s.name, a, "/ready, /stats/prometheus")
			}
		case string(shop.Logic):
			row(s.name, a, "angzarr.BusinessLogic ("+m.language(s.domain)+")")
		case string(shop.Saga):
			row(s.name, a, fmt.Sprintf("angzarr.Saga: %v → %v", s.shop.Subscribes, s.shop.Targets))
		case string(shop.Projector):
			row(s.name, a, fmt.Sprintf("angzarr.Projector: %v", s.shop.Subscribes))
		case string(shop.Upcaster):
			row(s.name, a, fmt.Sprintf("angzarr.Upcaster for %s: %v", s.domain, s.shop.Upcasts))
		case string(shop.ProcessManager):
			row(s.name, a, fmt.Sprintf("angzarr.ProcessManager: %v → %v", s.shop.Subscribes, s.shop.Targets))
		}
	}
	fmt.Fprintf(w, "\nTry: angzarr send customer alice examples.CreateCustomer '{\"name\":\"Alice\",\"email\":\"alice@example.com\"}'\n")
	fmt.Fprintf(w, "     angzarr events customer alice      (make demo walks through the whole shop)\n\n")
}
