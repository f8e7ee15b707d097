package controlplane

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/proto"

	"github.com/angzarr-mesh/angzarr/controlplane/xdsclient"
	"github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// Names of the resources the control plane serves, defined with their
// clients in package xdsclient.
const (
	FilterName          = xdsclient.FilterName
	ClusterEventService = xdsclient.ClusterEventService
	ClusterLogic        = xdsclient.ClusterLogic
	ClusterWasmSource   = xdsclient.ClusterWasmSource
	ListenerIngress     = xdsclient.ListenerIngress
	DomainHeader        = xdsclient.DomainHeader
	DefaultIngressPort  = xdsclient.DefaultIngressPort
	WasmRuntime         = xdsclient.WasmRuntime
	SubscriptionTypeURL = xdsclient.SubscriptionTypeURL
	FanoutTypeURL       = xdsclient.FanoutTypeURL
	FanoutName          = xdsclient.FanoutName
	WasmTypeURL         = xdsclient.WasmTypeURL
)

// Per-domain and per-subscriber names on a gateway.
func domainFilterName(d string) string   { return "angzarr-filter-" + d }
func domainLogicCluster(d string) string { return "angzarr-logic-" + d }
func domainListener(d string) string     { return "angzarr-domain-" + d }
func sagaCluster(n string) string        { return "angzarr-saga-" + n }
func projectorCluster(n string) string   { return "angzarr-projector-" + n }

// coordinatorCluster is, on a standalone sidecar, the cluster of domain d's
// BusinessCoordinator (Domain.Coordinator).
func coordinatorCluster(d string) string { return "angzarr-coordinator-" + d }

// Flavour says how a node consumes configuration, which decides the
// cluster names in the filter's plugin configuration and which resources
// it gets.
type Flavour string

// The flavours of nodes.
const (
	// FlavourIstio is an Istio sidecar: it takes only the filter over ECDS
	// from us; clusters come from istiod, so the plugin configuration names
	// Istio's clusters (outbound|port||host, inbound|port||).
	FlavourIstio Flavour = "istio"
	// FlavourEnvoy is a standalone Envoy or `angzarr proxy`: it takes
	// everything over ADS (ECDS, CDS, LDS, RDS).
	FlavourEnvoy Flavour = "envoy"
)

// Class is a group of nodes that receive identical configuration: a flavour
// and the domain the workload serves ("" for none: pass-through on an Istio
// sidecar, a gateway to every domain on a standalone Envoy).
type Class struct {
	// Flavour of the nodes.
	Flavour Flavour
	// Domain the workload serves, or "".
	Domain string
	// NoHeaderHold: the node's Envoy is older than 1.35, which ignores the
	// Wasm PluginConfig's allow_on_headers_stop_iteration. A filter that
	// held a command's request headers there would stop its own body
	// callbacks too (proxy-wasm's StopIteration becomes
	// StopAllIterationAndWatermark) and the command would wait for its
	// request timeout, so such nodes get the filter without the hold.
	NoHeaderHold bool
	// NoFailReload: the node's Envoy is older than 1.33, which lacks the
	// failure policy FAIL_RELOAD: its filter fails closed (a VM that
	// failed leaves the worker's plugin failed until the next push).
	// Newer nodes get FAIL_RELOAD with a back-off. Implies NoHeaderHold.
	NoFailReload bool
	// IngressPort is the ingress port of a standalone sidecar whose
	// workload entry sets one (WorkloadRef.IngressPort); 0: Options'.
	IngressPort uint32
}

// String renders the class as flavour/domain (flavour/- without domain),
// with "/no-header-hold" for Envoy older than 1.35, "/no-fail-reload" for
// one older than 1.33 and "/ingress-PORT" for a workload's own ingress port.
func (c Class) String() string {
	d := c.Domain
	if d == "" {
		d = "-"
	}
	s := string(c.Flavour) + "/" + d
	if c.NoHeaderHold {
		s += "/no-header-hold"
	}
	if c.NoFailReload {
		s += "/no-fail-reload"
	}
	if c.IngressPort != 0 {
		s += fmt.Sprintf("/ingress-%d", c.IngressPort)
	}
	return s
}

// Options are the translation settings that come from the control plane's
// deployment rather than from the topology.
type Options struct {
	// WasmFile is the filter module's path on the proxy's file system. One
	// of WasmFile and WasmURL is required.
	WasmFile string
	// WasmURL is an http(s) URL the proxy fetches the module from; it
	// requires WasmSHA256.
	WasmURL string
	// WasmSHA256 is the module's hex SHA-256; required with WasmURL,
	// optional (ignored by Envoy) with WasmFile.
	WasmSHA256 string
	// IngressPort is the port of the ingress listener on a standalone
	// Envoy. Default 10000.
	IngressPort uint32
	// ReleaseRequestHeaders makes the filter let a command's request
	// headers go at once on every node. By default the filter holds them
	// until the command was processed (hold_request_headers) and the Wasm
	// config sets allow_on_headers_stop_iteration: a client that never
	// finishes a body holds no stream of the business logic. Nodes whose
	// Envoy is older than 1.35, which lacks that field (a filter that
	// stopped the headers would never get the body), get the release
	// regardless (Class.NoHeaderHold).
	ReleaseRequestHeaders bool

	// failClosed gives the filter FAIL_CLOSED instead of FAIL_RELOAD (an
	// Envoy older than 1.33: Class.NoFailReload).
	failClosed bool
	// bufferLimit is the listeners' per_connection_buffer_limit_bytes
	// (BufferLimitBytes of the topology's maxBodyBytes).
	bufferLimit uint32
}

var sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Validate reports every problem of the options at once.
func (o *Options) Validate() error {
	var errs []error
	switch {
	case o.WasmFile == "" && o.WasmURL == "":
		errs = append(errs, errors.New("filter module: one of a file path and a URL is required"))
	case o.WasmFile != "" && o.WasmURL != "":
		errs = append(errs, errors.New("filter module: a file path and a URL are exclusive"))
	case o.WasmURL != "":
		u, err := url.Parse(o.WasmURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("filter module URL %q: must be http:// or https:// with a host", o.WasmURL))
		}
		if o.WasmSHA256 == "" {
			errs = append(errs, errors.New("filter module URL: a sha256 is required"))
		}
	}
	if o.WasmSHA256 != "" && !sha256RE.MatchString(o.WasmSHA256) {
		errs = append(errs, fmt.Errorf("filter sha256 %q: must be 64 lower-case hex digits", o.WasmSHA256))
	}
	if o.IngressPort > 65535 {
		errs = append(errs, fmt.Errorf("ingress port %d: must be 1-65535", o.IngressPort))
	}
	return errors.Join(errs...)
}

func (o *Options) ingressPort() uint32 {
	if o.IngressPort == 0 {
		return DefaultIngressPort
	}
	return o.IngressPort
}

// Translation is the xDS configuration translated from one topology.
type Translation struct {
	// Version identifies the translation: a hash of every resource, so an
	// unchanged topology yields the same version.
	Version string
	// Snapshots holds the configuration of each class of node.
	Snapshots map[Class]*cache.Snapshot
	// Fanout is the event service's fan-out configuration.
	Fanout *angzarr.FanoutConfig
}

// Classes returns the classes in a stable order.
func (tr *Translation) Classes() []Class {
	out := make([]Class, 0, len(tr.Snapshots))
	for c := range tr.Snapshots {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// Translate turns a valid topology into the configuration of every class of
// node. It is pure: the same topology and options give the same resources
// and versions. It does not validate the result (see ValidateTranslation).
func Translate(t *Topology, o Options) (*Translation, error) {
	if err := errors.Join(t.Validate(), o.Validate()); err != nil {
		return nil, err
	}
	tr := &Translation{Snapshots: map[Class]*cache.Snapshot{}}
	shared := newClusterSet(t, o)

	classes := []Class{{Flavour: FlavourIstio}, {Flavour: FlavourEnvoy}}
	for _, d := range t.Domains {
		classes = append(classes, Class{Flavour: FlavourIstio, Domain: d.Name}, Class{Flavour: FlavourEnvoy, Domain: d.Name})
		// Standalone sidecars whose workload entry sets an ingress port.
		for _, w := range d.workloads() {
			c := Class{Flavour: FlavourEnvoy, Domain: d.Name, IngressPort: uint32(w.IngressPort)}
			if c.IngressPort != 0 && !slices.Contains(classes, c) {
				classes = append(classes, c)
			}
		}
	}
	for _, c := range classes[:len(classes):len(classes)] {
		c.NoHeaderHold = true
		classes = append(classes, c)
		c.NoFailReload = true
		classes = append(classes, c)
	}
	// Classes are independent: translate them on every core. Each worker
	// keeps its own digest memo; the result does not depend on the order.
	snaps := make([]*cache.Snapshot, len(classes))
	workers := min(runtime.GOMAXPROCS(0), len(classes))
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			memo := digests{}
			for i := w; i < len(classes); i += workers {
				res, err := translateClass(t, o, classes[i], shared)
				if err == nil {
					snaps[i], err = newSnapshot(res, memo)
				}
				if err != nil {
					errs[w] = fmt.Errorf("class %s: %w", classes[i], err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	all := sha256.New()
	for i, c := range classes {
		tr.Snapshots[c] = snaps[i]
		all.Write([]byte(c.String() + "="))
		for typ := range types.UnknownType {
			all.Write([]byte(snaps[i].Resources[typ].Version + ";"))
		}
	}
	tr.Fanout = translateFanout(t)
	fanoutMsgs := subscriptionsAsMessages(tr.Fanout.GetSubscriptions())
	for _, d := range tr.Fanout.GetDomains() {
		fanoutMsgs = append(fanoutMsgs, d)
	}
	h, err := hashMessages(fanoutMsgs)
	if err != nil {
		return nil, err
	}
	all.Write([]byte(h))
	tr.Version = hex.EncodeToString(all.Sum(nil))[:16]
	tr.Fanout.Version = h
	return tr, nil
}

// classResources are the resources of one class, by type.
type classResources map[types.ResponseType][]types.Resource

// translateClass builds the resources of one class of node.
func translateClass(t *Topology, o Options, c Class, cs *clusterSet) (classResources, error) {
	res := classResources{}
	if c.NoHeaderHold {
		o.ReleaseRequestHeaders = true
	}
	o.failClosed = c.NoFailReload
	if c.IngressPort != 0 {
		o.IngressPort = c.IngressPort
	}
	o.bufferLimit = BufferLimitBytes(t.Defaults.MaxBodyBytes)
	switch {
	case c.Flavour == FlavourIstio:
		ecds, err := istioFilter(t, o, c.Domain)
		if err != nil {
			return nil, err
		}
		res[types.ExtensionConfig] = []types.Resource{ecds}
	case c.Domain != "":
		d, _ := t.domain(c.Domain)
		ecds, err := sidecarFilter(t, o, d)
		if err != nil {
			return nil, err
		}
		res[types.ExtensionConfig] = []types.Resource{ecds}
		res[types.Cluster] = cs.sidecar(t, d)
		l, r, err := sidecarListener(o)
		if err != nil {
			return nil, err
		}
		res[types.Listener] = []types.Resource{l}
		res[types.Route] = []types.Resource{r}
	default:
		for i := range t.Domains {
			ecds, err := gatewayFilter(t, o, &t.Domains[i])
			if err != nil {
				return nil, err
			}
			res[types.ExtensionConfig] = append(res[types.ExtensionConfig], ecds)
		}
		res[types.Cluster] = cs.gateway()
		ls, rs, err := gatewayListeners(t, o)
		if err != nil {
			return nil, err
		}
		res[types.Listener] = ls
		res[types.Route] = rs
	}
	return res, nil
}

// digests memoizes each resource's digest by identity: classes share
// resources (the clusters of sagas and projectors are in every class), so
// each is marshalled once per translation.
type digests map[types.Resource]string

func (d digests) of(r types.Resource) (string, error) {
	if h, ok := d[r]; ok {
		return h, nil
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	h := hex.EncodeToString(sum[:16])
	d[r] = h
	return h, nil
}

// newSnapshot builds a snapshot whose per-type version is a hash of that
// type's resources, so a push only carries the types that changed. It
// also fills the snapshot's delta version map from the same digests, so
// the cache never has to marshal the resources again.
func newSnapshot(res classResources, memo digests) (*cache.Snapshot, error) {
	s := &cache.Snapshot{VersionMap: map[string]map[string]string{}}
	for typ := range types.UnknownType {
		items := res[typ]
		typeURL, err := cache.GetResponseTypeURL(typ)
		if err != nil {
			return nil, err
		}
		versions := make(map[string]string, len(items))
		names := make([]string, 0, len(items))
		for _, r := range items {
			d, err := memo.of(r)
			if err != nil {
				return nil, err
			}
			name := cache.GetResourceName(r)
			if _, dup := versions[name]; dup {
				return nil, fmt.Errorf("%s: two resources named %q", typeName(typ), name)
			}
			versions[name] = d
			names = append(names, name)
		}
		sort.Strings(names)
		v := "empty"
		if len(names) > 0 {
			h := sha256.New()
			for _, n := range names {
				h.Write([]byte(n + "=" + versions[n] + ";"))
			}
			v = hex.EncodeToString(h.Sum(nil))[:16]
		}
		s.Resources[typ] = cache.NewResources(v, items)
		s.VersionMap[typeURL] = versions
	}
	return s, nil
}

// hashMessages returns a short hash of the deterministic encoding of msgs
// (or "empty").
func hashMessages(msgs []proto.Message) (string, error) {
	if len(msgs) == 0 {
		return "empty", nil
	}
	h := sha256.New()
	opts := proto.MarshalOptions{Deterministic: true}
	for _, m := range msgs {
		b, err := opts.Marshal(m)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

func subscriptionsAsMessages(subs []*angzarr.Subscription) []proto.Message {
	out := make([]proto.Message, len(subs))
	for i, s := range subs {
		out[i] = s
	}
	return out
}

// istioOutbound is Istio's name for the outbound cluster of host:port.
func istioOutbound(host string, port uint32) string {
	return fmt.Sprintf("outbound|%d||%s", port, host)
}

// IstioLogicCluster names the cluster through which the filter in an Istio
// sidecar calls its workload's logic (write-conflict retries): a STATIC
// cluster to 127.0.0.1:<port> that the chart's EnvoyFilter adds to every
// sidecar (envoyFilter.logicPorts). Istio's own inbound|<port>|| cannot
// serve: in the default passthrough mode it is ORIGINAL_DST, whose load
// balancer takes the address from the downstream connection, and a
// callout, made from the filter's root context, has none: Envoy answers
// "no healthy upstream" (envoyproxy/envoy#17178). The logic must accept
// connections on the loopback address (0.0.0.0 does), as it does for
// Istio's own health probes rewritten to the sidecar.
func IstioLogicCluster(port uint32) string {
	return fmt.Sprintf("angzarr-logic-loopback-%d", port)
}

// urlHostPort returns the host and port of an http(s) URL.
func urlHostPort(raw string) (host string, port uint32, tls bool) {
	u, _ := url.Parse(raw)
	tls = u.Scheme == "https"
	host = u.Hostname()
	port = 80
	if tls {
		port = 443
	}
	if p := u.Port(); p != "" {
		var n int
		fmt.Sscanf(p, "%d", &n)
		port = uint32(n)
	}
	return strings.ToLower(host), port, tls
}
