// Package config is the Angzarr filter's plugin configuration: the JSON that
// Envoy (or `angzarr proxy`) hands to proxy_on_configure. The control plane
// builds it from the topology; the filter decodes it strictly. It is pure Go
// so that both native code and the wasip1 filter share one definition.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/angzarr-mesh/angzarr/internal/proxywasm"
)

// Defaults applied by Decode to fields left out of the JSON.
const (
	DefaultEventServiceCluster  = "angzarr-eventsvc"
	DefaultBusinessLogicCluster = "angzarr-logic"
	DefaultMaxRetries           = 8
	DefaultRetryBackoff         = 5 * time.Millisecond
	DefaultRetryBackoffMax      = time.Second
	DefaultEventServiceTimeout  = 5 * time.Second
	DefaultBusinessLogicTimeout = 10 * time.Second
	DefaultMaxBodyBytes         = 4 << 20
	DefaultMaxCascadeDepth      = 8
	DefaultProjectorTimeout     = 5 * time.Second
	DefaultSagaTimeout          = 10 * time.Second
	DefaultCascadeTimeout       = 30 * time.Second
	DefaultAggregateCacheBytes  = 4 << 20
	// MaxAggregateCacheBytes bounds aggregate_cache_bytes (per VM): well
	// below a VM's 1 GiB memory ceiling (Envoy's, and wasmhost's
	// MaxMemoryPages), which must also hold the Go heap's working set and
	// garbage, the bodies in flight and the histories being decoded. At
	// the ceiling the Go runtime dies ("out of memory"), which traps the
	// VM.
	MaxAggregateCacheBytes = 256 << 20
	// MaxCascadeDepthLimit is the largest max_cascade_depth accepted.
	MaxCascadeDepthLimit = 64
	// MaxRetryBackoff bounds retry_backoff and retry_backoff_max: the
	// event service waits at most this long before a load.
	MaxRetryBackoff = time.Second
)

// Config is the filter's plugin configuration for one workload.
type Config struct {
	// Domains this workload serves; commands for any other domain are
	// rejected with INVALID_ARGUMENT. Empty means pass-through: the filter
	// lets every request through untouched (a workload without a domain).
	Domains []string `json:"domains,omitempty"`
	// EventServiceCluster is the Envoy cluster of the event service
	// (angzarr.EventStore over HTTP/2). Default "angzarr-eventsvc".
	EventServiceCluster string `json:"event_service_cluster,omitempty"`
	// BusinessLogicCluster is the cluster of the local business logic, used
	// for callouts when a write conflict makes the filter re-run the logic.
	// Default "angzarr-logic".
	BusinessLogicCluster string `json:"business_logic_cluster,omitempty"`
	// MaxRetries bounds the reload-and-retry loop of auto_resequence
	// commands on write conflicts. Default 8; 0 after decoding means default.
	MaxRetries int `json:"max_retries,omitempty"`
	// RetryBackoff is the least back-off unit of write-conflict retries:
	// before retry n the filter waits a random time between 0 and
	// unit·2^n, where unit is what the conflicting attempt took (load,
	// logic, append) but at least RetryBackoff, capped by RetryBackoffMax
	// and by half the time the command's deadline (grpc-timeout) leaves, so
	// that writers colliding on one aggregate spread out instead of
	// colliding again. Default 5ms (0 means default; the default is
	// applied where it is used, not written into the configuration).
	RetryBackoff Duration `json:"retry_backoff,omitempty"`
	// RetryBackoffMax caps the back-off of one retry. Default 1s, at most 1s
	// (the event service waits for the filter, see
	// angzarr.LoadRequest.delay_ms).
	RetryBackoffMax Duration `json:"retry_backoff_max,omitempty"`
	// EventServiceTimeout bounds each event-service callout. Default 5s.
	EventServiceTimeout Duration `json:"event_service_timeout,omitempty"`
	// BusinessLogicTimeout bounds each business-logic callout. Default 10s.
	BusinessLogicTimeout Duration `json:"business_logic_timeout,omitempty"`
	// MaxBodyBytes is the largest request or response body the filter
	// buffers; larger ones are refused with RESOURCE_EXHAUSTED. Default 4 MiB.
	// It also bounds what the filter hands the logic (history and command:
	// beyond it FAILED_PRECONDITION, with the advice to snapshot), and an
	// append may leave a history without a snapshot of at most
	// MaxBodyBytes less 64 KiB.
	MaxBodyBytes int `json:"max_body_bytes,omitempty"`

	// SyncProjectors are the synchronous projectors of the workload's
	// domains: a HandleSync command in SIMPLE or CASCADE mode calls each
	// (angzarr.Projector/HandleSync) with the stored events and returns
	// their projections. Default none.
	SyncProjectors []Projector `json:"sync_projectors,omitempty"`
	// Sagas are the sagas fed by the workload's domains. CASCADE calls each
	// (angzarr.Saga/HandleSync) and executes the commands it returns through
	// the target domains' coordinators; other modes leave sagas to the
	// event service's asynchronous dispatcher. Default none.
	Sagas []Saga `json:"sagas,omitempty"`
	// ProcessManagers are the process managers fed by the workload's
	// domains. CASCADE asks the event service to run each one's step for
	// each stored event (angzarr.ProcessManagerCoordinator/HandleSync, on
	// EventServiceCluster, within SagaTimeout) and executes the commands
	// it answers through the target domains' coordinators, as for sagas.
	// Default none.
	ProcessManagers []ProcessManager `json:"process_managers,omitempty"`
	// Coordinators maps every domain a cascade may reach to the cluster of
	// its angzarr.BusinessCoordinator (which runs that domain's own filter).
	// Every saga target must have one. Default none.
	Coordinators map[string]string `json:"coordinators,omitempty"`
	// MaxCascadeDepth bounds how many saga hops a CASCADE command may take
	// (the client's command is depth 0); a deeper command is refused with
	// FAILED_PRECONDITION. Default 8, at most 64.
	MaxCascadeDepth int `json:"max_cascade_depth,omitempty"`
	// ProjectorTimeout bounds each synchronous projector call. Default 5s.
	ProjectorTimeout Duration `json:"projector_timeout,omitempty"`
	// SagaTimeout bounds each synchronous saga call. Default 10s.
	SagaTimeout Duration `json:"saga_timeout,omitempty"`
	// CascadeTimeout bounds each cascaded command (the call to a target
	// domain's coordinator, including that domain's own cascade). Default
	// 30s.
	CascadeTimeout Duration `json:"cascade_timeout,omitempty"`
	// SnapshotEvery is the topology's snapshot hint: how many events an
	// aggregate may accumulate before a snapshot is worth storing (0:
	// never). The filter carries it but does not act on it yet: snapshots
	// are stored when the business logic returns snapshot_state.
	SnapshotEvery int `json:"snapshot_every,omitempty"`
	// AggregateCacheBytes bounds the histories the filter keeps in memory
	// (per VM, so per Envoy worker) to skip the event-service load of an
	// aggregate it just wrote; -1 switches the cache off. Default 4 MiB.
	// The cache never changes an answer: a stale entry shows up as a write
	// conflict or a rejection, both of which are checked against a fresh
	// load (see the filter package documentation).
	AggregateCacheBytes int `json:"aggregate_cache_bytes,omitempty"`
	// HoldRequestHeaders stops a command's request headers until the
	// command was processed, so the proxy opens no stream to the business
	// logic before its whole body arrived: a client that never finishes a
	// body then holds none of the logic's streams (or threads). It needs a
	// host that still delivers the body to a filter that stopped the
	// headers: Envoy >= 1.35 with the Wasm PluginConfig's
	// allow_on_headers_stop_iteration (the control plane sets both), or
	// wasmhost with Plugin.AllowOnHeadersStopIteration. Without it the
	// command would wait for a body that never comes. Default false.
	HoldRequestHeaders bool `json:"hold_request_headers,omitempty"`

	// CallerIdentity trusts the x-forwarded-client-cert header the proxy
	// sets (Envoy's connection manager with SANITIZE_SET, an Istio sidecar
	// under STRICT mTLS, angzarr proxy with a TLS listener) to tell who
	// calls: Record is then allowed only to Recorders, and idempotency keys
	// belong to their caller. Default false: callers are anonymous, Record
	// is open, keys are scoped per aggregate only.
	CallerIdentity bool `json:"caller_identity,omitempty"`
	// Recorders are the identities (URI SANs, e.g. SPIFFE IDs) allowed to
	// Record events with CallerIdentity. Default none: Record is refused.
	Recorders []string `json:"recorders,omitempty"`
	// SagaIssuers are the identities whose saga idempotency keys
	// (sagakey.Prefix) are shared across callers with CallerIdentity: the
	// event service's dispatcher and the proxies that run CASCADE, so that
	// a saga command run during a cascade and redelivered by the
	// dispatcher takes effect once. Anyone else's saga keys are theirs
	// alone, like any key. Default none.
	SagaIssuers []string `json:"saga_issuers,omitempty"`
	// EventTypes are, per served domain, the full message names of the
	// domain's events (e.g. "examples.CustomerCreated"): Record stores an
	// event only when its type_url names one of them, and refuses the
	// whole book with INVALID_ARGUMENT naming the type otherwise. A served
	// domain without an entry declares no event types, and every Record
	// of it is refused with FAILED_PRECONDITION: Record is a way around
	// the business logic, so what it may store is declared, never
	// assumed. Commands are not affected (their events come from the
	// domain's own logic). Default none.
	EventTypes map[string][]string `json:"event_types,omitempty"`
	// Authorities maps a cluster the filter calls to the :authority of its
	// calls (the GrpcService's envoy_grpc.authority). Envoy's async gRPC
	// client otherwise sends the cluster name, and a name that is no valid
	// authority (every Istio cluster name: "outbound|1313||host") is
	// refused by the peer's sidecar (istio/istio#27918). Every cluster
	// whose name is no valid authority needs an entry; the control plane
	// gives each the Service's host name. Default none.
	Authorities map[string]string `json:"authorities,omitempty"`
}

// Authority returns the :authority of calls to cluster: its entry in
// Authorities, or "" (the proxy then sends the cluster name).
func (c *Config) Authority(cluster string) string { return c.Authorities[cluster] }

// ValidAuthority reports whether s may be an :authority value as Envoy
// checks it (proxywasm.ValidAuthority).
func ValidAuthority(s string) bool { return proxywasm.ValidAuthority(s) }

// clusters lists the clusters the configuration calls out to, with where
// each is named.
func (c *Config) clusters() [][2]string {
	out := [][2]string{{"event_service_cluster", c.EventServiceCluster}, {"business_logic_cluster", c.BusinessLogicCluster}}
	for i, p := range c.SyncProjectors {
		out = append(out, [2]string{fmt.Sprintf("sync_projectors[%d].cluster", i), p.Cluster})
	}
	for i, s := range c.Sagas {
		out = append(out, [2]string{fmt.Sprintf("sagas[%d].cluster", i), s.Cluster})
	}
	for _, d := range sortedKeys(c.Coordinators) {
		out = append(out, [2]string{fmt.Sprintf("coordinators[%q]", d), c.Coordinators[d]})
	}
	return out
}

// validateAuthorities checks that every authority is valid and that every
// called cluster whose name is no valid authority has one.
func (c *Config) validateAuthorities() []error {
	var errs []error
	for _, cl := range sortedKeys(c.Authorities) {
		a := c.Authorities[cl]
		if cl == "" {
			errs = append(errs, errors.New("authorities: empty cluster name"))
		}
		if !ValidAuthority(a) {
			errs = append(errs, fmt.Errorf("authorities[%q]: %q is no valid :authority", cl, a))
		}
	}
	for _, f := range c.clusters() {
		if f[1] != "" && !ValidAuthority(f[1]) && c.Authorities[f[1]] == "" {
			errs = append(errs, fmt.Errorf("%s: cluster %q is no valid :authority and has no entry in authorities (Envoy would send the cluster name, which the peer refuses)", f[0], f[1]))
		}
	}
	return errs
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// MaxIdentityLen bounds an identity of Recorders and SagaIssuers.
const MaxIdentityLen = 2048

// Projector is a synchronous projector the filter calls on the command
// path.
type Projector struct {
	// Name of the projector, as in the topology (Projection.projector).
	// Required, unique.
	Name string `json:"name"`
	// Cluster of its angzarr.Projector service. Required.
	Cluster string `json:"cluster"`
}

// Saga is a saga the filter calls synchronously in CASCADE.
type Saga struct {
	// Name of the saga, as in the topology (SagaCommandOrigin.saga_name).
	// Required, unique.
	Name string `json:"name"`
	// Cluster of its angzarr.Saga service. Required.
	Cluster string `json:"cluster"`
	// Targets are the domains its commands may go to; a command for any
	// other domain fails the cascade. At least one.
	Targets []string `json:"targets"`
}

// ProcessManager is a process manager whose steps the filter has the event
// service run synchronously in CASCADE.
type ProcessManager struct {
	// Name of the process manager, as in the topology. Required, unique.
	Name string `json:"name"`
	// Targets are the domains its commands may go to; a command for any
	// other domain fails the cascade. At least one.
	Targets []string `json:"targets"`
}

// MayTarget reports whether the process manager may send commands to
// domain.
func (p *ProcessManager) MayTarget(domain string) bool {
	for _, t := range p.Targets {
		if t == domain {
			return true
		}
	}
	return false
}

// Coordinator returns the cluster of domain's BusinessCoordinator.
func (c *Config) Coordinator(domain string) (string, bool) {
	cl, ok := c.Coordinators[domain]
	return cl, ok && cl != ""
}

// MayTarget reports whether the saga may send commands to domain.
func (s *Saga) MayTarget(domain string) bool {
	for _, t := range s.Targets {
		if t == domain {
			return true
		}
	}
	return false
}

// Duration is a time.Duration written in JSON as a Go duration string
// ("250ms", "5s").
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"5s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Decode parses the plugin configuration strictly (unknown keys and trailing
// data are errors), applies defaults and validates it. An empty input is a
// valid pass-through configuration.
func Decode(raw []byte) (*Config, error) {
	c := &Config{}
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := checkKeys(raw); err != nil {
			return nil, fmt.Errorf("plugin configuration: %w", err)
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(c); err != nil {
			return nil, fmt.Errorf("plugin configuration: %w", err)
		}
		if _, err := dec.Token(); err != io.EOF {
			return nil, errors.New("plugin configuration: trailing data after the JSON object")
		}
	}
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("plugin configuration: %w", err)
	}
	return c, nil
}

// checkKeys refuses keys that differ from a field name only by case, which
// encoding/json would otherwise accept, at the top level and in the
// sync_projectors and sagas entries.
func checkKeys(raw []byte) error {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil {
		return nil // not an object: the strict decoder reports it
	}
	errs := unknownKeys("", keys, reflect.TypeOf(Config{}))
	for field, t := range map[string]reflect.Type{"sync_projectors": reflect.TypeOf(Projector{}), "sagas": reflect.TypeOf(Saga{}),
		"process_managers": reflect.TypeOf(ProcessManager{})} {
		var list []map[string]json.RawMessage
		if json.Unmarshal(keys[field], &list) != nil {
			continue // absent or mistyped: the strict decoder reports it
		}
		for i, obj := range list {
			errs = append(errs, unknownKeys(fmt.Sprintf("%s[%d].", field, i), obj, t)...)
		}
	}
	return errors.Join(errs...)
}

// unknownKeys lists the keys of obj that are not json names of t's fields.
func unknownKeys(path string, obj map[string]json.RawMessage, t reflect.Type) []error {
	known := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		known[name] = true
	}
	var errs []error
	for k := range obj {
		if !known[k] {
			errs = append(errs, fmt.Errorf("json: unknown field %q (names are case-sensitive)", path+k))
		}
	}
	return errs
}

func (c *Config) applyDefaults() {
	if c.EventServiceCluster == "" {
		c.EventServiceCluster = DefaultEventServiceCluster
	}
	if c.BusinessLogicCluster == "" {
		c.BusinessLogicCluster = DefaultBusinessLogicCluster
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = DefaultMaxRetries
	}
	if c.EventServiceTimeout == 0 {
		c.EventServiceTimeout = Duration(DefaultEventServiceTimeout)
	}
	if c.BusinessLogicTimeout == 0 {
		c.BusinessLogicTimeout = Duration(DefaultBusinessLogicTimeout)
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxCascadeDepth == 0 {
		c.MaxCascadeDepth = DefaultMaxCascadeDepth
	}
	if c.ProjectorTimeout == 0 {
		c.ProjectorTimeout = Duration(DefaultProjectorTimeout)
	}
	if c.SagaTimeout == 0 {
		c.SagaTimeout = Duration(DefaultSagaTimeout)
	}
	if c.CascadeTimeout == 0 {
		c.CascadeTimeout = Duration(DefaultCascadeTimeout)
	}
	if c.AggregateCacheBytes == 0 {
		c.AggregateCacheBytes = DefaultAggregateCacheBytes
	}
}

// RetryBackoffs returns the write-conflict back-off of the first retry and
// its cap, defaults applied.
func (c *Config) RetryBackoffs() (base, most time.Duration) {
	base, most = time.Duration(c.RetryBackoff), time.Duration(c.RetryBackoffMax)
	if base == 0 {
		base = DefaultRetryBackoff
	}
	if most == 0 {
		most = max(DefaultRetryBackoffMax, base)
	}
	return base, most
}

// Validate reports every problem of the configuration at once.
func (c *Config) Validate() error {
	var errs []error
	seen := map[string]bool{}
	for i, d := range c.Domains {
		switch {
		case d == "":
			errs = append(errs, fmt.Errorf("domains[%d]: empty domain name", i))
		case seen[d]:
			errs = append(errs, fmt.Errorf("domains[%d]: duplicate domain %q", i, d))
		}
		seen[d] = true
	}
	if c.MaxRetries < 0 {
		errs = append(errs, fmt.Errorf("max_retries: must be >= 0, got %d", c.MaxRetries))
	}
	if c.RetryBackoff < 0 || c.RetryBackoffMax < 0 || time.Duration(max(c.RetryBackoff, c.RetryBackoffMax)) > MaxRetryBackoff {
		errs = append(errs, fmt.Errorf("retry_backoff %v and retry_backoff_max %v: must be between 0 and %v",
			time.Duration(c.RetryBackoff), time.Duration(c.RetryBackoffMax), MaxRetryBackoff))
	} else if base, most := c.RetryBackoffs(); base > most {
		errs = append(errs, fmt.Errorf("retry_backoff %v: above retry_backoff_max %v", base, most))
	}
	if c.EventServiceTimeout < 0 {
		errs = append(errs, errors.New("event_service_timeout: must be positive"))
	}
	if c.BusinessLogicTimeout < 0 {
		errs = append(errs, errors.New("business_logic_timeout: must be positive"))
	}
	if c.AggregateCacheBytes < -1 || c.AggregateCacheBytes > MaxAggregateCacheBytes {
		errs = append(errs, fmt.Errorf("aggregate_cache_bytes: must be -1 (off) or between 1 and %d, got %d", MaxAggregateCacheBytes, c.AggregateCacheBytes))
	}
	if c.MaxBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("max_body_bytes: must be positive, got %d", c.MaxBodyBytes))
	}
	errs = append(errs, c.validateSync()...)
	errs = append(errs, validIdentities("recorders", c.Recorders)...)
	errs = append(errs, validIdentities("saga_issuers", c.SagaIssuers)...)
	if !c.CallerIdentity && (len(c.Recorders) > 0 || len(c.SagaIssuers) > 0) {
		errs = append(errs, errors.New("recorders, saga_issuers: need caller_identity"))
	}
	errs = append(errs, c.validateEventTypes()...)
	errs = append(errs, c.validateAuthorities()...)
	return errors.Join(errs...)
}

// MaxEventTypes bounds the event types of one domain.
const MaxEventTypes = 4096

// validateEventTypes checks event_types: served domains only, each type a
// protobuf full name, listed once.
func (c *Config) validateEventTypes() []error {
	var errs []error
	for _, d := range sortedListKeys(c.EventTypes) {
		types := c.EventTypes[d]
		if !c.Serves(d) {
			errs = append(errs, fmt.Errorf("event_types[%q]: not a served domain (domains %v)", d, c.Domains))
		}
		if len(types) > MaxEventTypes {
			errs = append(errs, fmt.Errorf("event_types[%q]: %d types, at most %d", d, len(types), MaxEventTypes))
			continue
		}
		seen := map[string]bool{}
		for i, t := range types {
			switch {
			case !ValidFullName(t):
				errs = append(errs, fmt.Errorf("event_types[%q][%d]: %q is not a protobuf full message name (like \"examples.CustomerCreated\")", d, i, t))
			case seen[t]:
				errs = append(errs, fmt.Errorf("event_types[%q][%d]: duplicate type %q", d, i, t))
			}
			seen[t] = true
		}
	}
	return errs
}

// EventTypesOf returns the event types declared for domain (nil: none).
func (c *Config) EventTypesOf(domain string) []string { return c.EventTypes[domain] }

// ValidFullName reports whether s is a protobuf full name: identifiers
// ([A-Za-z_][A-Za-z0-9_]*) joined by dots, at most 512 bytes.
func ValidFullName(s string) bool {
	if s == "" || len(s) > 512 {
		return false
	}
	start := true
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == '.':
			if start {
				return false
			}
			start = true
		case ch == '_' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z':
			start = false
		case ch >= '0' && ch <= '9':
			if start {
				return false
			}
		default:
			return false
		}
	}
	return !start
}

func sortedListKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// validIdentities checks a list of caller identities: non-empty printable
// ASCII without spaces, bounded.
func validIdentities(field string, ids []string) []error {
	var errs []error
	for i, id := range ids {
		ok := id != "" && len(id) <= MaxIdentityLen
		for j := 0; ok && j < len(id); j++ {
			ok = id[j] > 0x20 && id[j] < 0x7f
		}
		if !ok {
			errs = append(errs, fmt.Errorf("%s[%d]: %q is not an identity (printable ASCII without spaces, at most %d bytes)", field, i, id, MaxIdentityLen))
		}
	}
	return errs
}

// checkOrchestrator checks entry i of field (a saga or a process manager,
// kind, named name with prefix in names): a name that is not empty or
// repeated, and target domains that each have a coordinator.
func (c *Config) checkOrchestrator(names map[string]bool, field, kind, prefix string, i int, name string, targets []string) []error {
	var errs []error
	switch {
	case name == "":
		errs = append(errs, fmt.Errorf("%s[%d]: empty name", field, i))
	case names[prefix+name]:
		errs = append(errs, fmt.Errorf("%s[%d]: duplicate %s %q", field, i, kind, name))
	}
	names[prefix+name] = true
	if len(targets) == 0 {
		errs = append(errs, fmt.Errorf("%s[%d] (%s): no target domains", field, i, name))
	}
	for _, t := range targets {
		if _, ok := c.Coordinator(t); !ok {
			errs = append(errs, fmt.Errorf("%s[%d] (%s): target domain %q has no entry in coordinators", field, i, name, t))
		}
	}
	return errs
}

// validateSync checks the fields of the sync modes.
func (c *Config) validateSync() []error {
	var errs []error
	names := map[string]bool{}
	for i, p := range c.SyncProjectors {
		switch {
		case p.Name == "":
			errs = append(errs, fmt.Errorf("sync_projectors[%d]: empty name", i))
		case names["p/"+p.Name]:
			errs = append(errs, fmt.Errorf("sync_projectors[%d]: duplicate projector %q", i, p.Name))
		}
		names["p/"+p.Name] = true
		if p.Cluster == "" {
			errs = append(errs, fmt.Errorf("sync_projectors[%d] (%s): empty cluster", i, p.Name))
		}
	}
	for i, s := range c.Sagas {
		errs = append(errs, c.checkOrchestrator(names, "sagas", "saga", "s/", i, s.Name, s.Targets)...)
		if s.Cluster == "" {
			errs = append(errs, fmt.Errorf("sagas[%d] (%s): empty cluster", i, s.Name))
		}
	}
	for i, pm := range c.ProcessManagers {
		errs = append(errs, c.checkOrchestrator(names, "process_managers", "process manager", "m/", i, pm.Name, pm.Targets)...)
	}
	// Sorted by domain, so the message is stable (an insertion sort: a
	// handful of entries, and no sort package in the Wasm module).
	domains := make([]string, 0, len(c.Coordinators))
	for d := range c.Coordinators {
		i := len(domains)
		domains = append(domains, d)
		for ; i > 0 && domains[i-1] > d; i-- {
			domains[i] = domains[i-1]
		}
		domains[i] = d
	}
	for _, d := range domains {
		if cl := c.Coordinators[d]; d == "" || cl == "" {
			errs = append(errs, fmt.Errorf("coordinators: domain %q has cluster %q: both must be set", d, cl))
		}
	}
	if c.MaxCascadeDepth < 0 || c.MaxCascadeDepth > MaxCascadeDepthLimit {
		errs = append(errs, fmt.Errorf("max_cascade_depth: must be 1-%d, got %d", MaxCascadeDepthLimit, c.MaxCascadeDepth))
	}
	for _, d := range []struct {
		name string
		v    Duration
	}{{"projector_timeout", c.ProjectorTimeout}, {"saga_timeout", c.SagaTimeout}, {"cascade_timeout", c.CascadeTimeout}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s: must be positive", d.name))
		}
	}
	if c.SnapshotEvery < 0 {
		errs = append(errs, fmt.Errorf("snapshot_every: must be >= 0, got %d", c.SnapshotEvery))
	}
	return errs
}

// Serves reports whether the workload serves the domain.
func (c *Config) Serves(domain string) bool {
	for _, d := range c.Domains {
		if d == domain {
			return true
		}
	}
	return false
}

// PassThrough reports whether the workload serves no domain, so the filter
// must leave every request alone.
func (c *Config) PassThrough() bool { return len(c.Domains) == 0 }
