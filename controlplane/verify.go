package controlplane

import (
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/angzarr-mesh/angzarr/controlplane/xdsclient"
	"github.com/angzarr-mesh/angzarr/filter/config"
	"github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// ErrInvalidSnapshot marks a translation that failed verification; the
// control plane keeps serving the last good one.
var ErrInvalidSnapshot = errors.New("invalid snapshot")

// VerifyTranslation checks every snapshot before it is served: the
// snapshot is Consistent(); every resource, and every message packed in an
// Any inside it, passes ValidateAll(); the Wasm plugin configuration
// decodes with the filter's own strict decoder; and every name a resource
// refers to (ECDS filter names, clusters of routes, of the plugin
// configuration and of the module source) exists in the snapshot. All
// problems are reported at once.
func VerifyTranslation(tr *Translation) error {
	classes := tr.Classes()
	results := make([]error, len(classes))
	workers := min(runtime.GOMAXPROCS(0), len(classes))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			memo := map[types.Resource]error{}
			for i := w; i < len(classes); i += workers {
				if err := verifySnapshot(classes[i], tr.Snapshots[classes[i]], memo); err != nil {
					results[i] = fmt.Errorf("%s: %w", classes[i], err)
				}
			}
		}()
	}
	wg.Wait()
	var errs []error
	for _, err := range results {
		if err != nil {
			errs = append(errs, err)
		}
	}
	for _, s := range tr.Fanout.GetSubscriptions() {
		if s.GetName() == "" || s.GetAddress() == "" || len(s.GetSourceDomains()) == 0 ||
			s.GetKind() == angzarr.SubscriberKind_SUBSCRIBER_KIND_UNSPECIFIED {
			errs = append(errs, fmt.Errorf("fan-out subscription %q: incomplete", s.GetName()))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSnapshot, err)
	}
	return nil
}

// verifySnapshot checks one class's snapshot; memo caches the validation
// of resources shared between classes.
func verifySnapshot(c Class, s *cache.Snapshot, memo map[types.Resource]error) error {
	var errs []error
	if err := s.Consistent(); err != nil {
		errs = append(errs, err)
	}
	for typ := range types.UnknownType {
		for name, r := range s.Resources[typ].Items {
			err, seen := memo[r.Resource]
			if !seen {
				err = ValidateDeep(r.Resource)
				memo[r.Resource] = err
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%s %q: %w", typeName(typ), name, err))
			}
		}
	}
	clusters := s.GetResources(resource.ClusterType)
	ecds := s.GetResources(resource.ExtensionConfigType)
	needCluster := func(what, name string) {
		if c.Flavour == FlavourEnvoy {
			if _, ok := clusters[name]; !ok {
				errs = append(errs, fmt.Errorf("%s refers to cluster %q, which the snapshot lacks", what, name))
			}
		}
	}
	for name, r := range ecds {
		pc, remote, err := unpackPlugin(r)
		if err != nil {
			errs = append(errs, fmt.Errorf("extension config %q: %w", name, err))
			continue
		}
		if c.Domain != "" && (name == FilterName) && !pc.Serves(c.Domain) {
			errs = append(errs, fmt.Errorf("extension config %q: plugin configuration does not serve domain %q", name, c.Domain))
		}
		if !pc.PassThrough() {
			needCluster(fmt.Sprintf("extension config %q (event service)", name), pc.EventServiceCluster)
			needCluster(fmt.Sprintf("extension config %q (business logic)", name), pc.BusinessLogicCluster)
			for _, p := range pc.SyncProjectors {
				needCluster(fmt.Sprintf("extension config %q (projector %s)", name, p.Name), p.Cluster)
			}
			for _, sg := range pc.Sagas {
				needCluster(fmt.Sprintf("extension config %q (saga %s)", name, sg.Name), sg.Cluster)
			}
			for _, d := range sortedKeys(pc.Coordinators) {
				needCluster(fmt.Sprintf("extension config %q (coordinator of %s)", name, d), pc.Coordinators[d])
			}
		}
		if remote != "" {
			needCluster(fmt.Sprintf("extension config %q (module source)", name), remote)
		}
	}
	for name, r := range s.GetResources(resource.ListenerType) {
		for _, f := range filterNames(r.(*listener.Listener)) {
			if _, ok := ecds[f]; !ok {
				errs = append(errs, fmt.Errorf("listener %q: filter %q is discovered over ECDS but the snapshot has no such extension config", name, f))
			}
		}
	}
	for name, r := range s.GetResources(resource.RouteType) {
		for _, vh := range r.(*route.RouteConfiguration).GetVirtualHosts() {
			for _, rt := range vh.GetRoutes() {
				if cl := rt.GetRoute().GetCluster(); cl != "" {
					needCluster(fmt.Sprintf("route %q/%s/%s", name, vh.GetName(), rt.GetName()), cl)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// unpackPlugin decodes an ECDS resource's filter; it also returns the
// cluster a remote module is fetched through ("" for a local file).
func unpackPlugin(r types.Resource) (*config.Config, string, error) {
	tec, ok := r.(*core.TypedExtensionConfig)
	if !ok {
		return nil, "", fmt.Errorf("is a %T, not a TypedExtensionConfig", r)
	}
	f, err := xdsclient.DecodeFilter(tec)
	if err != nil {
		return nil, "", err
	}
	return f.Config, f.URLCluster, nil
}

// filterNames returns the HTTP filters of a listener that are discovered
// over ECDS.
func filterNames(l *listener.Listener) []string {
	var out []string
	for _, fc := range l.GetFilterChains() {
		for _, f := range fc.GetFilters() {
			m := resource.GetHTTPConnectionManager(f)
			for _, hf := range m.GetHttpFilters() {
				if hf.GetConfigDiscovery() != nil {
					out = append(out, hf.GetName())
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// ValidateDeep runs ValidateAll on m and on every message packed in an Any
// anywhere inside it, at any depth (ValidateAll itself does not look inside
// Any).
func ValidateDeep(m proto.Message) error {
	var errs []error
	if v, ok := m.(interface{ ValidateAll() error }); ok {
		if err := v.ValidateAll(); err != nil {
			errs = append(errs, err)
		}
	}
	var visit func(path string, a *anypb.Any)
	visit = func(path string, a *anypb.Any) {
		inner, err := a.UnmarshalNew()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: cannot unpack %s: %w", path, a.GetTypeUrl(), err))
			return
		}
		if v, ok := inner.(interface{ ValidateAll() error }); ok {
			if err := v.ValidateAll(); err != nil {
				errs = append(errs, fmt.Errorf("%s (%s): %w", path, a.GetTypeUrl(), err))
			}
		}
		walkAnys(inner.ProtoReflect(), func(p string, nested *anypb.Any) { visit(path+"."+p, nested) })
	}
	walkAnys(m.ProtoReflect(), visit)
	return errors.Join(errs...)
}

// walkAnys calls fn for every Any directly reachable from m without crossing
// another Any.
func walkAnys(m protoreflect.Message, fn func(path string, a *anypb.Any)) {
	var walk func(m protoreflect.Message, path string)
	visit := func(v protoreflect.Value, path string) {
		msg := v.Message()
		if a, ok := msg.Interface().(*anypb.Any); ok {
			fn(path, a)
			return
		}
		walk(msg, path)
	}
	walk = func(m protoreflect.Message, path string) {
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			p := strings.TrimPrefix(path+"."+string(fd.Name()), ".")
			switch {
			case fd.IsMap():
				if fd.MapValue().Kind() == protoreflect.MessageKind {
					v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
						visit(mv, fmt.Sprintf("%s[%s]", p, k.String()))
						return true
					})
				}
			case fd.IsList():
				if fd.Kind() == protoreflect.MessageKind {
					l := v.List()
					for i := range l.Len() {
						visit(l.Get(i), fmt.Sprintf("%s[%d]", p, i))
					}
				}
			case fd.Kind() == protoreflect.MessageKind:
				visit(v, p)
			}
			return true
		})
	}
	walk(m, "")
}

func typeName(t types.ResponseType) string {
	switch t {
	case types.Cluster:
		return "cluster"
	case types.Listener:
		return "listener"
	case types.Route:
		return "route"
	case types.ExtensionConfig:
		return "extension config"
	}
	return fmt.Sprintf("resource type %d", t)
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
