package controlplane

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/angzarr-mesh/angzarr/filter/config"
)

// The version and kind every topology document declares.
const (
	TopologyAPIVersion = "angzarr.io/v1alpha1"
	TopologyKind       = "Topology"
)

// Topology is the declarative description of an Angzarr Mesh deployment:
// where the event service is, which domains exist and which service
// implements each, and the sagas and projectors fed by the event service.
// It is written in YAML (see examples/topology.yaml) and decoded strictly by
// DecodeTopology.
type Topology struct {
	// APIVersion must be "angzarr.io/v1alpha1".
	APIVersion string `json:"apiVersion"`
	// Kind must be "Topology".
	Kind string `json:"kind"`
	// Metadata names the topology.
	Metadata Metadata `json:"metadata,omitempty"`
	// EventService is where the event service listens.
	EventService EventService `json:"eventService"`
	// Defaults apply to every domain that does not override them.
	Defaults Defaults `json:"defaults,omitempty"`
	// Domains are the aggregates' domains, each served by one business-logic
	// service. Kubernetes workloads annotated `angzarr.io/domain` add to them.
	Domains []Domain `json:"domains,omitempty"`
	// Projectors consume the events of some domains and keep read models.
	Projectors []Projector `json:"projectors,omitempty"`
	// Sagas consume the events of source domains and send commands to
	// target domains.
	Sagas []Saga `json:"sagas,omitempty"`
	// ProcessManagers consume the events of source domains, keep a stream
	// per workflow (correlation id) in a domain of their own and send
	// commands to target domains.
	ProcessManagers []ProcessManager `json:"processManagers,omitempty"`
	// Identity maps workload identities to what they may do in the event
	// service (the access policy served with the fan-out configuration).
	Identity WorkloadIdentities `json:"identity,omitempty"`
}

// Metadata names a topology document.
type Metadata struct {
	// Name of the topology, for logs. Optional.
	Name string `json:"name,omitempty"`
}

// EventService locates the event service (angzarr.EventStore over HTTP/2).
type EventService struct {
	// Address is host:port of the event service, e.g.
	// "angzarr-eventsvc.angzarr-system.svc.cluster.local:9090". Required.
	Address string `json:"address"`
	// FailureDomain is where the event service records refused saga
	// commands that their origin did not compensate (angzarr.SagaFailed
	// events). Default "saga-failures"; it must not be a declared domain.
	FailureDomain string `json:"failureDomain,omitempty"`
}

// Defaults are the filter settings that apply unless a domain overrides
// them. Zero means the filter's own default (filter/config).
type Defaults struct {
	// EventServiceTimeout bounds each event-service callout. Default 5s.
	EventServiceTimeout config.Duration `json:"eventServiceTimeout,omitempty"`
	// BusinessLogicTimeout bounds each business-logic call. Default 10s.
	BusinessLogicTimeout config.Duration `json:"businessLogicTimeout,omitempty"`
	// MaxRetries bounds the reload-and-retry loop on write conflicts.
	// Default 8.
	MaxRetries int `json:"maxRetries,omitempty"`
	// MaxBodyBytes is the largest body the filter buffers. Default 4 MiB.
	MaxBodyBytes int `json:"maxBodyBytes,omitempty"`
	// SnapshotEvery hints how many events an aggregate may accumulate before
	// a snapshot is worth storing; 0 means never. Carried to the filter
	// (snapshot_every), which does not act on it yet.
	SnapshotEvery int `json:"snapshotEvery,omitempty"`
}

// Domain is one aggregate domain and the service that implements its
// business logic (angzarr.BusinessLogic).
type Domain struct {
	// Name of the domain, as in Cover.domain: lower-case letters, digits
	// and '-', starting with a letter. Required, unique.
	Name string `json:"name"`
	// Service is the host name of the business-logic service, e.g.
	// "order.shop.svc.cluster.local". Required.
	Service string `json:"service"`
	// Port is the business logic's gRPC port, the container port (an Istio
	// sidecar's inbound cluster for the logic is named after it:
	// inbound|<port>||). Required.
	Port int `json:"port"`
	// ServicePort is the port of the Service in front of the logic, when
	// it differs from Port: Istio names a Service's outbound clusters by
	// the Service port (outbound|<service port>||<host>), and callers reach
	// the domain's coordinator through it. Default Port. The Kubernetes
	// source reads it from the Service that selects an annotated workload.
	ServicePort int `json:"servicePort,omitempty"`
	// Workloads are the Kubernetes workloads (or standalone node ids) that
	// serve the domain. Default: one workload named after the domain, in
	// any namespace. Kubernetes annotations add to them.
	Workloads []WorkloadRef `json:"workloads,omitempty"`
	// MaxRetries overrides Defaults.MaxRetries for this domain.
	MaxRetries int `json:"maxRetries,omitempty"`
	// BusinessLogicTimeout overrides Defaults.BusinessLogicTimeout.
	BusinessLogicTimeout config.Duration `json:"businessLogicTimeout,omitempty"`
	// SnapshotEvery overrides Defaults.SnapshotEvery.
	SnapshotEvery int `json:"snapshotEvery,omitempty"`
	// Coordinator is host:port of the domain's angzarr.BusinessCoordinator
	// (its filter in front of the logic): where the event service's
	// dispatcher and CASCADE commands send the domain's saga commands.
	// Default service:port, which is right under Istio (the service's
	// inbound sidecar runs the filter); set it for standalone proxies
	// (`angzarr proxy`, a standalone Envoy), whose ingress has its own port.
	Coordinator string `json:"coordinator,omitempty"`
	// Upcasters turn the domain's stored events of old versions into
	// current ones as the event service reads them (angzarr.Upcaster),
	// applied in order; each declares the old types it takes.
	Upcasters []Upcaster `json:"upcasters,omitempty"`
	// Descriptors says where the descriptors of the domain's events come
	// from, for the event service's schema registry: before it pushes a
	// topology, the control plane registers them, and a change that would
	// misread stored events (angzarr schema check's rules) is refused, the
	// last good configuration serving on. Default: none, the domain's
	// stored types are not guarded.
	Descriptors *DescriptorSource `json:"descriptors,omitempty"`
	// Identities are the SPIFFE IDs of the domain's workloads (its
	// filters): they alone Load/Append the domain. Default: for each
	// workload with a namespace, spiffe://<trust domain>/ns/<namespace>/sa/<name>;
	// annotated Kubernetes workloads add their service accounts.
	Identities []string `json:"identities,omitempty"`
	// Readers may query the domain's events (EventQuery).
	Readers []string `json:"readers,omitempty"`
	// Recorders may Record events of the domain (importers, operators).
	Recorders []string `json:"recorders,omitempty"`
	// EventTypes are the full message names of the domain's events (e.g.
	// examples.CustomerCreated; for old versions an importer stores,
	// those too): the domain's filters Record only events of these types
	// and refuse any other with INVALID_ARGUMENT naming it. Default none:
	// every Record of the domain is refused (FAILED_PRECONDITION), and the
	// control plane logs so when it applies the topology. Commands are not
	// affected: their events come from the domain's own logic.
	EventTypes []string `json:"eventTypes,omitempty"`
	// AllowSnapshotOnly lets the domain's filters append a snapshot
	// without events. Default false.
	AllowSnapshotOnly bool `json:"allowSnapshotOnly,omitempty"`
	// AllowForcedSequences lets them append pages with force. Default false.
	AllowForcedSequences bool `json:"allowForcedSequences,omitempty"`
	// AllowUntypedEvents lets them append events without a type. Default
	// false.
	AllowUntypedEvents bool `json:"allowUntypedEvents,omitempty"`
}

// DescriptorSource is where a domain's descriptors come from. A file wins
// over reflection: it is a reviewed artifact of the build, whereas
// reflection reports whatever binary runs.
type DescriptorSource struct {
	// File is a FileDescriptorSet (protoc --include_imports
	// --descriptor_set_out, buf build -o), relative to the topology file's
	// directory. Re-read on every check.
	File string `json:"file,omitempty"`
	// Reflection asks the logic's gRPC reflection (service:port), which
	// every SDK-built service serves, for the files of the domain's stored
	// types (as the registry lists them).
	Reflection bool `json:"reflection,omitempty"`
}

// Upcaster is an angzarr.Upcaster service of a domain.
type Upcaster struct {
	// Address is host:port of the service, as the event service reaches
	// it. Required.
	Address string `json:"address"`
	// Types are the full message names of the stored event types it
	// upcasts (e.g. examples.ProductCreated), each given to one upcaster
	// of the domain at most. Required.
	Types []string `json:"types"`
}

// coordinator returns host and port of the domain's BusinessCoordinator.
func (d *Domain) coordinator() (string, uint32) {
	if d.Coordinator != "" {
		return splitAddress(d.Coordinator)
	}
	return d.Service, d.servicePort()
}

// servicePort is the port callers use to reach the domain's Service.
func (d *Domain) servicePort() uint32 {
	if d.ServicePort != 0 {
		return uint32(d.ServicePort)
	}
	return uint32(d.Port)
}

// WorkloadRef names a workload: a Kubernetes Deployment (Istio's
// WORKLOAD_NAME) in a namespace, or the node id of a standalone Envoy or
// `angzarr proxy`.
type WorkloadRef struct {
	// Name of the workload. Required.
	Name string `json:"name"`
	// Namespace of the workload; empty matches any namespace.
	Namespace string `json:"namespace,omitempty"`
	// IngressPort is the port of the ingress listener of this workload's
	// standalone Envoy (or `angzarr proxy`), 1-65535: several sidecars on
	// one host need one each. 0 (the default): the control plane's
	// --ingress-port. Istio sidecars ignore it (istiod owns their
	// listeners).
	IngressPort int `json:"ingressPort,omitempty"`
}

// Projector is a read model fed by the events of some domains.
type Projector struct {
	// Name of the projector; unique among sagas and projectors. Required.
	Name string `json:"name"`
	// Address is host:port of its angzarr.Projector service. Required.
	Address string `json:"address"`
	// Domains whose events it consumes. At least one, each declared.
	Domains []string `json:"domains"`
	// Synchronous projectors are also called on the command path
	// (SIMPLE/CASCADE) so the response can carry their projection.
	Synchronous bool `json:"synchronous,omitempty"`
	// StartPosition for a projector without a checkpoint: "earliest"
	// (default for projectors) or "latest".
	StartPosition string `json:"startPosition,omitempty"`
	// Identity is the projector's SPIFFE ID: a reader of its domains.
	// Optional.
	Identity string `json:"identity,omitempty"`
}

// Saga reacts to the events of source domains with commands to target
// domains.
type Saga struct {
	// Name of the saga; unique among sagas and projectors. Required.
	Name string `json:"name"`
	// Address is host:port of its angzarr.Saga service. Required.
	Address string `json:"address"`
	// Sources are the domains whose events it consumes. At least one.
	Sources []string `json:"sources"`
	// Targets are the domains its commands go to. At least one.
	Targets []string `json:"targets"`
	// StartPosition for a saga without a checkpoint: "earliest" or
	// "latest" (default for sagas).
	StartPosition string `json:"startPosition,omitempty"`
	// CompensationFallback is what the event service does, in order, about
	// a command of the saga refused by its target when the aggregate whose
	// event triggered it does not answer the angzarr.SagaCompensation it is
	// sent: "record-failure", "dead-letter", "escalate", "stop". Default
	// [record-failure, dead-letter].
	CompensationFallback []string `json:"compensationFallback,omitempty"`
	// Identity is the saga's SPIFFE ID: a reader of its source domains.
	// Optional.
	Identity string `json:"identity,omitempty"`
}

// ProcessManager is a stateful orchestrator (angzarr.ProcessManager): the
// event service feeds it the events of its source domains that carry a
// correlation id, keeps its state as one stream per workflow in Domain,
// and sends its commands to target domains.
type ProcessManager struct {
	// Name of the process manager; unique among subscribers. Required.
	Name string `json:"name"`
	// Address is host:port of its angzarr.ProcessManager service. Required.
	Address string `json:"address"`
	// Domain is where its workflow streams are kept: not a declared domain
	// (the streams are the framework's), unique among process managers.
	// Default: the name.
	Domain string `json:"domain,omitempty"`
	// Sources are the domains whose events it consumes. At least one.
	Sources []string `json:"sources"`
	// Targets are the domains its commands go to. At least one.
	Targets []string `json:"targets"`
	// StartPosition without a checkpoint: "earliest" or "latest"
	// (default).
	StartPosition string `json:"startPosition,omitempty"`
	// CompensationFallback is what the event service does about a refused
	// command the process manager does not answer when told of it; as for
	// sagas. Default [record-failure, dead-letter].
	CompensationFallback []string `json:"compensationFallback,omitempty"`
}

// domain is the process manager's stream domain.
func (p *ProcessManager) domain() string {
	if p.Domain != "" {
		return p.Domain
	}
	return p.Name
}

// Start positions accepted in the topology.
const (
	StartEarliest = "earliest"
	StartLatest   = "latest"
)

// DecodeTopology parses a YAML (or JSON) topology strictly and validates it.
// Every problem is reported at once, joined into one error: every unknown
// or duplicate field with its path, the first type mismatch, and every
// validation problem.
func DecodeTopology(data []byte) (*Topology, error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	if len(bytes.TrimSpace(js)) == 0 || bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
		return nil, errors.New("topology: empty document")
	}
	var errs []error
	var generic any
	if err := json.Unmarshal(js, &generic); err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	errs = append(errs, unknownFields(generic, reflect.TypeOf(Topology{}), "")...)
	t := &Topology{}
	if err := json.Unmarshal(js, t); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			errs = append(errs, fmt.Errorf("%s: cannot be %s, want %s", te.Field, te.Value, te.Type))
		} else {
			errs = append(errs, err)
		}
	}
	if err := t.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("invalid topology:\n%w", err)
	}
	return t, nil
}

// unknownFields walks decoded JSON against the Go type it will be decoded
// into and reports every key the type does not have, with its path.
func unknownFields(v any, t reflect.Type, path string) []error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var errs []error
	switch val := v.(type) {
	case map[string]any:
		if t.Kind() != reflect.Struct {
			return nil
		}
		fields := jsonFields(t)
		keys := make([]string, 0, len(val))
		for k := range val {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ft, ok := fields[k]
			p := joinPath(path, k)
			if !ok {
				errs = append(errs, fmt.Errorf("%s: unknown field", p))
				continue
			}
			errs = append(errs, unknownFields(val[k], ft, p)...)
		}
	case []any:
		if t.Kind() != reflect.Slice {
			return nil
		}
		for i, e := range val {
			errs = append(errs, unknownFields(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i))...)
		}
	}
	return errs
}

func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// domain returns the declared domain with that name.
func (t *Topology) domain(name string) (*Domain, bool) {
	for i := range t.Domains {
		if t.Domains[i].Name == name {
			return &t.Domains[i], true
		}
	}
	return nil, false
}

// workloads returns the domain's workloads, defaulting to one named after
// the domain.
func (d *Domain) workloads() []WorkloadRef {
	if len(d.Workloads) == 0 {
		return []WorkloadRef{{Name: d.Name}}
	}
	return d.Workloads
}

// clone returns a deep copy, so merging Kubernetes workloads never mutates
// the decoded file topology.
func (t *Topology) clone() *Topology {
	c := *t
	c.Domains = slices.Clone(t.Domains)
	for i := range c.Domains {
		c.Domains[i].Workloads = slices.Clone(c.Domains[i].Workloads)
		c.Domains[i].Identities = slices.Clone(c.Domains[i].Identities)
		c.Domains[i].Readers = slices.Clone(c.Domains[i].Readers)
		c.Domains[i].Recorders = slices.Clone(c.Domains[i].Recorders)
		c.Domains[i].EventTypes = slices.Clone(c.Domains[i].EventTypes)
	}
	c.Projectors = slices.Clone(t.Projectors)
	for i := range c.Projectors {
		c.Projectors[i].Domains = slices.Clone(c.Projectors[i].Domains)
	}
	c.Sagas = slices.Clone(t.Sagas)
	for i := range c.Sagas {
		c.Sagas[i].Sources = slices.Clone(c.Sagas[i].Sources)
		c.Sagas[i].Targets = slices.Clone(c.Sagas[i].Targets)
	}
	c.ProcessManagers = slices.Clone(t.ProcessManagers)
	for i := range c.ProcessManagers {
		pm := &c.ProcessManagers[i]
		pm.Sources, pm.Targets = slices.Clone(pm.Sources), slices.Clone(pm.Targets)
		pm.CompensationFallback = slices.Clone(pm.CompensationFallback)
	}
	c.Identity.Admins = slices.Clone(t.Identity.Admins)
	c.Identity.Readers = slices.Clone(t.Identity.Readers)
	c.Identity.Gateways = slices.Clone(t.Identity.Gateways)
	return &c
}
