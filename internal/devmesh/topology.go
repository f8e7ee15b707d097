package devmesh

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	"github.com/angzarr-mesh/angzarr/controlplane"
	"github.com/angzarr-mesh/angzarr/examples/go/shop"
	"github.com/angzarr-mesh/angzarr/filter/config"
	"github.com/angzarr-mesh/angzarr/proto/examples"
	"github.com/angzarr-mesh/angzarr/schema"
)

// TopologyFile is the generated topology's name inside the data directory.
const TopologyFile = "topology.yaml"

// topology is the example shop of examples/topology.yaml with every address
// on the local ports of the plan: the same domains, sagas, projector and
// process manager and
// the same defaults, but the event service, each domain's business logic
// and each subscriber at Host:port. Each proxy's node id is its domain (a
// domain's default workload), so the control plane gives proxy/order the
// cluster angzarr-logic = logic/order and angzarr-eventsvc = eventsvc.
// Each domain's coordinator is its proxy: on one machine nothing intercepts
// the logic's own port, so saga commands (fan-out and CASCADE) must be sent
// to the proxy that runs the domain's filter.
func (c Config) topology(plan []slot) *controlplane.Topology {
	proxies, proxyPorts := map[string]string{}, map[string]int{}
	for _, s := range plan {
		if s.kind == kindProxy {
			proxies[s.domain], proxyPorts[s.domain] = s.addr(c.Host), s.port
		}
	}
	t := &controlplane.Topology{
		APIVersion: controlplane.TopologyAPIVersion,
		Kind:       controlplane.TopologyKind,
		Metadata:   controlplane.Metadata{Name: "angzarr-dev"},
		Defaults: controlplane.Defaults{
			EventServiceTimeout:  config.Duration(5 * time.Second),
			BusinessLogicTimeout: config.Duration(10 * time.Second),
			MaxRetries:           8,
			MaxBodyBytes:         4 << 20,
		},
	}
	for _, s := range plan {
		switch {
		case s.kind == kindEventService:
			t.EventService.Address = s.addr(c.Host)
		case s.shop == nil:
		case s.shop.Kind == shop.Logic:
			// The schema registry guards each domain's stored types with the
			// descriptors its logic serves by reflection (the Python
			// customer has a file instead, see pythonDescriptors).
			d := controlplane.Domain{Name: s.domain, Service: c.Host, Port: s.port, Coordinator: proxies[s.domain],
				Descriptors: &controlplane.DescriptorSource{Reflection: true}}
			if !c.Insecure {
				d.Identities = []string{id(proxyAccount(s.domain))}
			}
			if c.EnvoyProxies {
				// Six Envoys on one host: each listens on its proxy's port.
				d.Workloads = []controlplane.WorkloadRef{{Name: s.domain, IngressPort: proxyPorts[s.domain]}}
			}
			if d.Name == "order" {
				d.MaxRetries = 12 // as in examples/topology.yaml: sagas write back
			}
			d.EventTypes = recordableTypes[d.Name]
			t.Domains = append(t.Domains, d)
		case s.shop.Kind == shop.Saga:
			t.Sagas = append(t.Sagas, controlplane.Saga{Name: s.shop.Name, Address: s.addr(c.Host),
				Sources: s.shop.Subscribes, Targets: s.shop.Targets})
			if !c.Insecure {
				t.Sagas[len(t.Sagas)-1].Identity = id(subscriberAccount(s.shop.Name))
			}
		case s.shop.Kind == shop.ProcessManager:
			t.ProcessManagers = append(t.ProcessManagers, controlplane.ProcessManager{Name: s.shop.Name, Address: s.addr(c.Host),
				Sources: s.shop.Subscribes, Targets: s.shop.Targets})
		case s.shop.Kind == shop.Projector:
			t.Projectors = append(t.Projectors, controlplane.Projector{Name: s.shop.Name, Address: s.addr(c.Host),
				Domains: s.shop.Subscribes, Synchronous: true, StartPosition: controlplane.StartEarliest})
			if !c.Insecure {
				t.Projectors[len(t.Projectors)-1].Identity = id(subscriberAccount(s.shop.Name))
			}
		}
	}
	// Upcasters last: they join the domain they serve, listed above.
	for _, s := range plan {
		if s.shop == nil || s.shop.Kind != shop.Upcaster {
			continue
		}
		for i := range t.Domains {
			if t.Domains[i].Name == s.shop.Domain {
				t.Domains[i].Upcasters = append(t.Domains[i].Upcasters, controlplane.Upcaster{Address: s.addr(c.Host), Types: s.shop.Upcasts})
			}
		}
	}
	if !c.Insecure {
		// Every component has an identity of the local CA; the operator
		// (the client verbs) administers.
		t.Identity = controlplane.WorkloadIdentities{TrustDomain: TrustDomain, EventService: id(eventServiceAccount),
			ControlPlane: id(controlPlaneAccount), Admins: []string{id(operatorAccount), id(consoleAccount)}, Proxies: true}
	}
	return t
}

// recordableTypes are the event types a domain's Record stores, as in
// examples/topology.yaml (the other domains declare none: Record refused).
var recordableTypes = map[string][]string{
	"customer": fullNames(&examples.CustomerCreated{}, &examples.LoyaltyPointsAdded{},
		&examples.LoyaltyPointsRedeemed{}, &examples.LoyaltyPointsRefunded{}),
}

func fullNames(ms ...proto.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m.ProtoReflect().Descriptor().FullName())
	}
	return out
}

// DescriptorsFile is the descriptor set of the Python customer's messages
// inside the data directory (that server serves no gRPC reflection).
const DescriptorsFile = "customer.binpb"

// pythonDescriptors writes the descriptor set of the customer domain's
// messages (the same examples/customer.proto the Python logic is generated
// from, compiled into this binary) and points the customer domain at it.
func (c Config) pythonDescriptors(t *controlplane.Topology) error {
	b, err := proto.Marshal(schema.SetOf((&examples.CustomerCreated{}).ProtoReflect().Descriptor().ParentFile()))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(c.DataDir, DescriptorsFile), b, 0o644); err != nil {
		return err
	}
	for i := range t.Domains {
		if t.Domains[i].Name == "customer" {
			t.Domains[i].Descriptors = &controlplane.DescriptorSource{File: DescriptorsFile}
		}
	}
	return nil
}

const topologyHeader = `# Generated by angzarr dev on every start (edits are overwritten): the
# example shop of examples/topology.yaml with every address on this machine's
# ports. The control plane serves it to the proxies and the event service.
`

// writeTopology writes the topology into the data directory and returns its
// path. It is decoded back first, so a topology the control plane would
// refuse fails here, naming every problem.
func (c Config) writeTopology(t *controlplane.Topology) (string, error) {
	b, err := yaml.Marshal(t)
	if err != nil {
		return "", err
	}
	if _, err := controlplane.DecodeTopology(b); err != nil {
		return "", fmt.Errorf("generated topology: %w", err)
	}
	p := filepath.Join(c.DataDir, TopologyFile)
	if err := os.WriteFile(p, append([]byte(topologyHeader), b...), 0o644); err != nil {
		return "", err
	}
	return p, nil
}
