package controlplane

import (
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// Node metadata keys the control plane reads. Istio puts NAMESPACE,
// WORKLOAD_NAME, LABELS and ISTIO_VERSION in every sidecar's node metadata,
// and every ISTIO_META_<KEY> variable of the proxy as <KEY> (settable with
// the proxy.istio.io/config annotation's proxyMetadata).
const (
	// MetaDomain names the node's domain explicitly (ISTIO_META_ANGZARR_DOMAIN
	// on Istio; node.metadata.ANGZARR_DOMAIN on a standalone Envoy).
	MetaDomain = "ANGZARR_DOMAIN"
	// DomainAnnotation is the annotation (and label) that enables a
	// workload and names its domain.
	DomainAnnotation = "angzarr.io/domain"

	metaIstioVersion = "ISTIO_VERSION"
	metaNamespace    = "NAMESPACE"
	metaWorkload     = "WORKLOAD_NAME"
	metaLabels       = "LABELS"
)

// Identity is what the control plane knows about a connected node.
type Identity struct {
	// Flavour of the proxy (Istio sidecar or standalone).
	Flavour Flavour
	// Namespace of the workload ("" when unknown or standalone).
	Namespace string
	// Workload name: Istio's WORKLOAD_NAME, else the node id.
	Workload string
	// Domain the workload serves, or "" for none.
	Domain string
	// Source says how the domain was found: "metadata", "label",
	// "workload" or "" (none).
	Source string
	// NoHeaderHold: the node's Envoy is older than 1.35 (see
	// Class.NoHeaderHold).
	NoHeaderHold bool
	// NoFailReload: the node's Envoy is older than 1.33 (see
	// Class.NoFailReload).
	NoFailReload bool
	// IngressPort is the ingress port of a standalone proxy whose workload
	// entry sets one (WorkloadRef.IngressPort), else 0.
	IngressPort uint32
}

// Class is the configuration class the node receives.
func (id Identity) Class() Class {
	return Class{Flavour: id.Flavour, Domain: id.Domain, NoHeaderHold: id.NoHeaderHold, NoFailReload: id.NoFailReload, IngressPort: id.IngressPort}
}

// failReloadEnvoy is the first Envoy release with the Wasm failure policy
// FAIL_RELOAD.
var failReloadEnvoy = [2]uint32{1, 33}

// headerHoldEnvoy is the first Envoy release that honours the Wasm
// PluginConfig's allow_on_headers_stop_iteration.
var headerHoldEnvoy = [2]uint32{1, 35}

// envoyBefore reports whether the node says it runs an Envoy release older
// than v (Envoy sends its build version in every discovery request's node:
// user_agent_build_version). A node that does not say (a proxy other than
// Envoy, such as `angzarr proxy`, which implements the current behaviour)
// is taken as current.
func envoyBefore(node *core.Node, v [2]uint32) bool {
	bv := node.GetUserAgentBuildVersion().GetVersion()
	if bv == nil {
		return false
	}
	return bv.GetMajorNumber() < v[0] || bv.GetMajorNumber() == v[0] && bv.GetMinorNumber() < v[1]
}

// workloadIndex maps workloads to the domain they serve and the ingress
// port of their standalone proxy.
type workloadIndex struct {
	exact  map[workloadKey]workloadEntry
	byName map[string]map[workloadEntry]bool // workload name -> its entries
}

// workloadKey is a workload's namespace ("" for any) and name.
type workloadKey struct{ namespace, name string }

// workloadEntry is what the topology says of a workload: its domain and
// its standalone proxy's ingress port (0: the control plane's default).
type workloadEntry struct {
	domain string
	port   uint32
}

// indexWorkloads builds the workload index of a topology.
func indexWorkloads(t *Topology) workloadIndex {
	idx := workloadIndex{exact: map[workloadKey]workloadEntry{}, byName: map[string]map[workloadEntry]bool{}}
	for i := range t.Domains {
		for _, w := range t.Domains[i].workloads() {
			e := workloadEntry{domain: t.Domains[i].Name, port: uint32(w.IngressPort)}
			idx.exact[workloadKey{w.Namespace, w.Name}] = e
			if idx.byName[w.Name] == nil {
				idx.byName[w.Name] = map[workloadEntry]bool{}
			}
			idx.byName[w.Name][e] = true
		}
	}
	return idx
}

// lookup finds the domain of a workload and its ingress port: an exact
// namespace/name entry first, then a name-only one (any namespace); a node
// that reports no namespace (a standalone proxy) matches a workload of that
// name in any namespace when the domain is unambiguous (and gets its port
// when that is unambiguous too, else the default).
func (idx workloadIndex) lookup(namespace, name string) (workloadEntry, bool) {
	if name == "" {
		return workloadEntry{}, false
	}
	if namespace != "" {
		if e, ok := idx.exact[workloadKey{namespace, name}]; ok {
			return e, true
		}
	}
	if e, ok := idx.exact[workloadKey{"", name}]; ok {
		return e, true
	}
	if namespace != "" || len(idx.byName[name]) == 0 {
		return workloadEntry{}, false
	}
	var found workloadEntry
	first := true
	for e := range idx.byName[name] {
		switch {
		case first:
			found, first = e, false
		case e.domain != found.domain:
			return workloadEntry{}, false
		case e.port != found.port:
			found.port = 0
		}
	}
	return found, true
}

// Identify maps an Envoy node to its workload and domain.
//
// The flavour is Istio when the node carries ISTIO_VERSION metadata or an
// Istio node id (sidecar~ip~pod.namespace~domain), else standalone. The
// domain is, in order: the ANGZARR_DOMAIN metadata; the angzarr.io/domain
// label in Istio's LABELS; the workload (NAMESPACE and WORKLOAD_NAME, or the
// node id of a standalone proxy) looked up among the topology's and the
// Kubernetes source's workloads. A node with none of these serves no domain.
// A domain named explicitly is kept even when the topology lacks it: such a
// node gets no configuration until the domain exists (fail closed).
func Identify(node *core.Node, idx workloadIndex) Identity {
	md := node.GetMetadata().GetFields()
	id := Identity{Flavour: FlavourEnvoy, NoHeaderHold: envoyBefore(node, headerHoldEnvoy),
		NoFailReload: envoyBefore(node, failReloadEnvoy)}
	if str(md, metaIstioVersion) != "" || strings.HasPrefix(node.GetId(), "sidecar~") {
		id.Flavour = FlavourIstio
	}
	id.Namespace = str(md, metaNamespace)
	id.Workload = str(md, metaWorkload)
	if id.Workload == "" && id.Flavour == FlavourEnvoy {
		id.Workload = node.GetId()
	}
	if id.Namespace == "" && id.Flavour == FlavourIstio {
		// sidecar~10.0.0.1~pod-abc.namespace~namespace.svc.cluster.local
		if parts := strings.Split(node.GetId(), "~"); len(parts) == 4 {
			if _, ns, ok := strings.Cut(parts[2], "."); ok {
				id.Namespace = ns
			}
		}
	}
	switch {
	case str(md, MetaDomain) != "":
		id.Domain, id.Source = str(md, MetaDomain), "metadata"
	case label(md, DomainAnnotation) != "":
		id.Domain, id.Source = label(md, DomainAnnotation), "label"
	default:
		if e, ok := idx.lookup(id.Namespace, id.Workload); ok {
			id.Domain, id.Source = e.domain, "workload"
		}
	}
	// A standalone proxy listens where its workload entry says, when that
	// entry is of the domain it serves.
	if id.Flavour == FlavourEnvoy && id.Domain != "" {
		if e, ok := idx.lookup(id.Namespace, id.Workload); ok && e.domain == id.Domain {
			id.IngressPort = e.port
		}
	}
	return id
}

func str(md map[string]*structpb.Value, key string) string {
	return strings.TrimSpace(md[key].GetStringValue())
}

func label(md map[string]*structpb.Value, key string) string {
	return strings.TrimSpace(md[metaLabels].GetStructValue().GetFields()[key].GetStringValue())
}

// ClassOf is the configuration class the control plane gives node under
// topology t.
func ClassOf(node *core.Node, t *Topology) Class {
	return Identify(node, indexWorkloads(t)).Class()
}
