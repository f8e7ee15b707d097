// Package istio_test checks the Istio install manifests: every document is
// decoded strictly into its Kubernetes or Istio type (client-go's scheme,
// istio.io/client-go, and the istio.io/api protos for the specs), and the
// cross-references between them are checked: names, ports, selectors,
// RBAC, the topology in the ConfigMap, the ECDS resource name equal to the
// filter name, and the WasmPlugin variant equal to what the control plane
// pushes. No cluster runs here; these tests are what proves the manifests.
package istio_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	extensionsapi "istio.io/api/extensions/v1alpha1"
	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	extensionsv1alpha1 "istio.io/client-go/pkg/apis/extensions/v1alpha1"
	networkingv1alpha3 "istio.io/client-go/pkg/apis/networking/v1alpha3"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	istioscheme "istio.io/client-go/pkg/clientset/versioned/scheme"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/angzarr-mesh/angzarr/controlplane"
	"github.com/angzarr-mesh/angzarr/controlplane/xdsclient"
	"github.com/angzarr-mesh/angzarr/filter/config"
	"github.com/angzarr-mesh/angzarr/internal/images"
	"github.com/angzarr-mesh/angzarr/internal/testutil/yamldocs"
)

// object is one decoded manifest document.
type object struct {
	file string
	raw  []byte // the document as JSON
	obj  runtime.Object
}

// manifests decodes every YAML document under istio/ strictly.
func manifests(t *testing.T) []object {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := istioscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	dec := serializer.NewCodecFactory(s, serializer.EnableStrict).UniversalDeserializer()
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	variants, _ := filepath.Glob("variants/*.yaml")
	files = append(files, variants...)
	var out []object
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs, err := yamldocs.Split(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, d := range docs {
			i, doc, js := d.Index, d.YAML, d.JSON
			obj, _, err := dec.Decode(doc, nil, nil)
			if err != nil {
				t.Errorf("%s doc %d: %v", f, i, err)
				continue
			}
			out = append(out, object{file: f, raw: js, obj: obj})
		}
	}
	if len(out) == 0 {
		t.Fatal("no manifests")
	}
	return out
}

// specOf decodes a document's spec strictly into an istio.io/api message
// (the client-go types accept unknown spec fields; protojson does not).
func specOf(t *testing.T, o object, m proto.Message) {
	t.Helper()
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(o.raw, &doc); err != nil {
		t.Fatal(err)
	}
	if err := protojson.Unmarshal(doc["spec"], m); err != nil {
		t.Errorf("%s: spec: %v", o.file, err)
	}
}

type index struct {
	namespaces  map[string]bool
	deployments map[string]*appsv1.Deployment // ns/name
	services    map[string]*corev1.Service    // ns/name
	configMaps  map[string]*corev1.ConfigMap
	accounts    map[string]bool
	roles       map[string]*rbacv1.ClusterRole
	bindings    []*rbacv1.ClusterRoleBinding
	filters     map[string]*networkingv1alpha3.EnvoyFilter // file:ns/name
	plugins     []*extensionsv1alpha1.WasmPlugin
	selectors   map[string]map[string]string // PDBs' and NetworkPolicies' pod selectors, kind ns/name
	objects     []object
}

func build(t *testing.T) *index {
	ix := &index{namespaces: map[string]bool{}, deployments: map[string]*appsv1.Deployment{},
		services: map[string]*corev1.Service{}, configMaps: map[string]*corev1.ConfigMap{},
		accounts: map[string]bool{}, roles: map[string]*rbacv1.ClusterRole{},
		filters: map[string]*networkingv1alpha3.EnvoyFilter{}, selectors: map[string]map[string]string{}}
	ix.objects = manifests(t)
	for _, o := range ix.objects {
		switch v := o.obj.(type) {
		case *corev1.Namespace:
			ix.namespaces[v.Name] = true
		case *appsv1.Deployment:
			ix.deployments[v.Namespace+"/"+v.Name] = v
		case *corev1.Service:
			ix.services[v.Namespace+"/"+v.Name] = v
		case *corev1.ConfigMap:
			ix.configMaps[v.Namespace+"/"+v.Name] = v
		case *corev1.ServiceAccount:
			ix.accounts[v.Namespace+"/"+v.Name] = true
		case *rbacv1.ClusterRole:
			ix.roles[v.Name] = v
		case *rbacv1.ClusterRoleBinding:
			ix.bindings = append(ix.bindings, v)
		case *networkingv1alpha3.EnvoyFilter:
			specOf(t, o, &networkingapi.EnvoyFilter{})
			ix.filters[o.file+":"+v.Namespace+"/"+v.Name] = v
		case *extensionsv1alpha1.WasmPlugin:
			ix.plugins = append(ix.plugins, v)
		case *policyv1.PodDisruptionBudget:
			ix.selectors["PodDisruptionBudget "+v.Namespace+"/"+v.Name] = v.Spec.Selector.MatchLabels
		case *networkingv1.NetworkPolicy:
			ix.selectors["NetworkPolicy "+v.Namespace+"/"+v.Name] = v.Spec.PodSelector.MatchLabels
			for _, in := range v.Spec.Ingress {
				for j, from := range in.From {
					if from.PodSelector != nil {
						ix.selectors[fmt.Sprintf("NetworkPolicy %s/%s peer %d", v.Namespace, v.Name, j)] = from.PodSelector.MatchLabels
					}
				}
			}
		case *securityv1.PeerAuthentication:
			specOf(t, o, &securityapi.PeerAuthentication{})
		case *securityv1.AuthorizationPolicy:
			specOf(t, o, &securityapi.AuthorizationPolicy{})
			if sel := v.Spec.GetSelector().GetMatchLabels(); sel != nil {
				ix.selectors["AuthorizationPolicy "+v.Namespace+"/"+v.Name] = sel
			}
		default:
			t.Errorf("%s: unexpected kind %T", o.file, v)
		}
	}
	return ix
}

// hostService resolves NAME.NAMESPACE.svc.cluster.local:PORT to a Service
// port of a Service in the manifests.
func (ix *index) hostService(t *testing.T, addr string) (*corev1.Service, corev1.ServicePort) {
	t.Helper()
	host, port, ok := strings.Cut(addr, ":")
	if !ok {
		t.Fatalf("%q is not host:port", addr)
	}
	parts := strings.Split(host, ".")
	if len(parts) != 5 || parts[2] != "svc" || parts[3] != "cluster" || parts[4] != "local" {
		t.Fatalf("%q is not NAME.NAMESPACE.svc.cluster.local", host)
	}
	svc := ix.services[parts[1]+"/"+parts[0]]
	if svc == nil {
		t.Fatalf("%s: no Service %s/%s in the manifests", addr, parts[1], parts[0])
	}
	for _, p := range svc.Spec.Ports {
		if fmt.Sprint(p.Port) == port {
			return svc, p
		}
	}
	t.Fatalf("%s: Service %s has no port %s", addr, svc.Name, port)
	return nil, corev1.ServicePort{}
}

// TestManifestsDecodeStrictly: every document decodes into its type, and
// every object's namespace exists (or is Istio's).
func TestManifestsDecodeStrictly(t *testing.T) {
	ix := build(t)
	for _, o := range ix.objects {
		type namespaced interface{ GetNamespace() string }
		if n, ok := o.obj.(namespaced); ok && n.GetNamespace() != "" && !ix.namespaces[n.GetNamespace()] {
			t.Errorf("%s: namespace %q is not created by the manifests", o.file, n.GetNamespace())
		}
	}
}

// TestServicesSelectDeployments: each Service selects a Deployment of its
// namespace whose containers declare the Service's target ports.
func TestServicesSelectDeployments(t *testing.T) {
	ix := build(t)
	for key, svc := range ix.services {
		var match *appsv1.Deployment
		for _, d := range ix.deployments {
			if d.Namespace != svc.Namespace {
				continue
			}
			ok := len(svc.Spec.Selector) > 0
			for k, v := range svc.Spec.Selector {
				if d.Spec.Template.Labels[k] != v {
					ok = false
				}
			}
			if ok {
				match = d
			}
		}
		if match == nil {
			t.Errorf("Service %s selects no Deployment", key)
			continue
		}
		for k, v := range match.Spec.Selector.MatchLabels {
			if match.Spec.Template.Labels[k] != v {
				t.Errorf("Deployment %s: selector %s=%s does not match its template", match.Name, k, v)
			}
		}
		for _, p := range svc.Spec.Ports {
			found := false
			for _, c := range match.Spec.Template.Spec.Containers {
				for _, cp := range c.Ports {
					if cp.Name == p.TargetPort.StrVal || cp.ContainerPort == p.TargetPort.IntVal {
						found = true
					}
				}
			}
			if !found {
				t.Errorf("Service %s port %s: target %s is not a container port of %s", key, p.Name, p.TargetPort.String(), match.Name)
			}
		}
	}
}

// TestSelectorsSelectDeployments: PodDisruptionBudgets and NetworkPolicies
// (and their peers) select the pods of a Deployment of their namespace.
func TestSelectorsSelectDeployments(t *testing.T) {
	ix := build(t)
	if len(ix.selectors) == 0 {
		t.Fatal("no PodDisruptionBudget or NetworkPolicy")
	}
	for what, sel := range ix.selectors {
		ns := strings.SplitN(strings.Fields(what)[1], "/", 2)[0]
		found := false
		for _, d := range ix.deployments {
			ok := d.Namespace == ns && len(sel) > 0
			for k, v := range sel {
				ok = ok && d.Spec.Template.Labels[k] == v
			}
			found = found || ok
		}
		if !found {
			t.Errorf("%s selects no Deployment", what)
		}
	}
}

// arg returns the value of --name=value in args.
func arg(args []string, name string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}

// TestControlPlaneInstall: the control plane's topology decodes and
// references Services that exist; its flags, ports, volume and RBAC agree.
func TestControlPlaneInstall(t *testing.T) {
	ix := build(t)
	d := ix.deployments["angzarr-system/angzarr-controlplane"]
	if d == nil {
		t.Fatal("no control plane Deployment")
	}
	// Its sidecar (for the schema registry) leaves xDS uncaptured: proxies
	// reach it in plaintext (the chart's tests check the ports).
	if d.Spec.Template.Labels["sidecar.istio.io/inject"] != "true" || d.Spec.Template.Annotations["traffic.sidecar.istio.io/excludeInboundPorts"] == "" {
		t.Error("the control plane needs a sidecar that does not capture its xDS port")
	}
	c := d.Spec.Template.Spec.Containers[0]
	if c.Args[0] != "controlplane" {
		t.Errorf("args %v", c.Args)
	}

	// The topology file is the ConfigMap mounted where --topology points.
	topo := arg(c.Args, "topology")
	var cm *corev1.ConfigMap
	for _, m := range c.VolumeMounts {
		if rest, ok := strings.CutPrefix(topo, m.MountPath+"/"); ok {
			for _, v := range d.Spec.Template.Spec.Volumes {
				if v.Name == m.Name && v.ConfigMap != nil {
					cm = ix.configMaps[d.Namespace+"/"+v.ConfigMap.Name]
					if cm != nil && cm.Data[rest] == "" {
						t.Errorf("ConfigMap %s has no key %s", cm.Name, rest)
					}
					topo = rest
				}
			}
		}
	}
	if cm == nil {
		t.Fatalf("--topology %s is not in a mounted ConfigMap", arg(c.Args, "topology"))
	}
	top, err := controlplane.DecodeTopology([]byte(cm.Data[topo]))
	if err != nil {
		t.Fatalf("topology in ConfigMap %s: %v", cm.Name, err)
	}
	example, err := os.ReadFile("../examples/topology.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data[topo] != string(example) {
		t.Errorf("the ConfigMap's topology differs from examples/topology.yaml at byte %d", firstDiff(cm.Data[topo], string(example)))
	}
	es, _ := ix.hostService(t, top.EventService.Address)
	if es.Name != "angzarr-eventsvc" {
		t.Errorf("event service address resolves to %s", es.Name)
	}
	evd := ix.deployments["angzarr-system/angzarr-eventsvc"]
	if got := arg(evd.Spec.Template.Spec.Containers[0].Args, "listen"); !strings.HasSuffix(got, ":"+strings.Split(top.EventService.Address, ":")[1]) {
		t.Errorf("event service listens on %s, topology says %s", got, top.EventService.Address)
	}
	redisURL := arg(evd.Spec.Template.Spec.Containers[0].Args, "store")
	ix.hostService(t, strings.TrimSuffix(strings.TrimPrefix(redisURL, "redis://"), "/0"))
	for _, dom := range top.Domains {
		svc, _ := ix.hostService(t, fmt.Sprintf("%s:%d", dom.Service, dom.Port))
		for _, w := range dom.Workloads {
			dep := ix.deployments[w.Namespace+"/"+w.Name]
			if dep == nil {
				t.Errorf("domain %s: workload %s has no Deployment", dom.Name, w)
				continue
			}
			if got := dep.Spec.Template.Annotations[controlplane.DomainAnnotation]; got != dom.Name {
				t.Errorf("Deployment %s: annotation %s=%q, want %q", dep.Name, controlplane.DomainAnnotation, got, dom.Name)
			}
			if svc.Namespace != dep.Namespace {
				t.Errorf("domain %s: Service and workload in different namespaces", dom.Name)
			}
		}
	}
	// Each domain's workload runs as a service account the access policy
	// makes a writer of its domain, and nothing else's.
	tr, err := controlplane.Translate(top, controlplane.Options{WasmFile: "/filter.wasm"})
	if err != nil {
		t.Fatal(err)
	}
	writers := map[string][]string{}
	for _, d := range tr.Fanout.GetAccess().GetDomains() {
		for _, w := range d.GetWriters() {
			writers[w] = append(writers[w], d.GetDomain())
		}
	}
	for _, dom := range top.Domains {
		for _, w := range dom.Workloads {
			if dep := ix.deployments[w.Namespace+"/"+w.Name]; dep != nil {
				id := "spiffe://cluster.local/ns/" + dep.Namespace + "/sa/" + dep.Spec.Template.Spec.ServiceAccountName
				if got := writers[id]; !slices.Equal(got, []string{dom.Name}) {
					t.Errorf("Deployment %s runs as %s, which writes %v; want [%s]", dep.Name, id, got, dom.Name)
				}
			}
		}
	}
	for _, s := range top.Sagas {
		ix.hostService(t, s.Address)
	}
	for _, p := range top.Projectors {
		ix.hostService(t, p.Address)
	}

	// Flags: listen port = Service port; the module URL points at its own
	// module server; flags are ones the CLI knows.
	cps := ix.services["angzarr-system/angzarr-controlplane"]
	_, xdsPort := ix.hostService(t, "angzarr-controlplane.angzarr-system.svc.cluster.local:18000")
	if !strings.HasSuffix(arg(c.Args, "listen"), fmt.Sprintf(":%d", xdsPort.TargetPort.IntVal)) &&
		!strings.HasSuffix(arg(c.Args, "listen"), ":18000") {
		t.Errorf("--listen %s does not serve Service port %v", arg(c.Args, "listen"), xdsPort.TargetPort)
	}
	// The module is a local file of the sidecars (the chart's default,
	// controlPlane.wasmSource local), or the control plane's own module
	// server.
	url := arg(c.Args, "filter-wasm")
	if strings.HasPrefix(url, "/") {
		if arg(c.Args, "serve-filter") != "" {
			t.Error("--serve-filter with a local module source")
		}
	} else {
		hostPort := strings.TrimSuffix(strings.TrimPrefix(url, "http://"), controlplane.ModulePath)
		if svc, p := ix.hostService(t, hostPort); svc != cps || !strings.HasSuffix(arg(c.Args, "serve-filter-listen"), fmt.Sprintf(":%d", p.Port)) {
			t.Errorf("--filter-wasm %s is not the control plane's own module server", url)
		}
		if arg(c.Args, "serve-filter") == "" {
			t.Error("--serve-filter missing")
		}
	}

	// RBAC: the service account is bound to a role that can list and
	// watch pods and deployments.
	sa := d.Spec.Template.Spec.ServiceAccountName
	if !ix.accounts[d.Namespace+"/"+sa] {
		t.Fatalf("ServiceAccount %s missing", sa)
	}
	can := map[string]bool{}
	for _, b := range ix.bindings {
		bound := false
		for _, s := range b.Subjects {
			if s.Kind == "ServiceAccount" && s.Name == sa && s.Namespace == d.Namespace {
				bound = true
			}
		}
		role := ix.roles[b.RoleRef.Name]
		if !bound || role == nil || b.RoleRef.Kind != "ClusterRole" {
			continue
		}
		for _, r := range role.Rules {
			for _, res := range r.Resources {
				for _, g := range r.APIGroups {
					if slices.Contains(r.Verbs, "list") && slices.Contains(r.Verbs, "watch") {
						can[g+"/"+res] = true
					}
				}
			}
		}
	}
	if !can["/pods"] || !can["apps/deployments"] {
		t.Errorf("the control plane cannot list/watch pods and deployments: %v", can)
	}
}

// TestEnvoyFilters: each EnvoyFilter inserts an HTTP filter (decoded
// strictly into Envoy's HttpFilter and ValidateAll-clean) named after the
// control plane's ECDS resource, before the router, discovered over ECDS
// from the control plane's Service (google_grpc) or from a static cluster
// that the bootstrap override defines. (The CLUSTER patches that add the
// loopback logic clusters and the LISTENER patches that raise the buffer
// limit, and the WasmPlugin variant's EnvoyFilters that do both, are the
// chart's rendering: charts/angzarr's objects test decodes and checks
// them.)
func TestEnvoyFilters(t *testing.T) {
	ix := build(t)
	filters := map[string]*networkingv1alpha3.EnvoyFilter{}
	for key, ef := range ix.filters {
		if ef.Name == controlplane.FilterName {
			filters[key] = ef
		}
	}
	if len(filters) != 2 {
		t.Fatalf("%d EnvoyFilters %s, want 2 (main and bootstrap-override variant)", len(filters), controlplane.FilterName)
	}
	for key, ef := range filters {
		for i, p := range ef.Spec.GetConfigPatches() {
			where := fmt.Sprintf("%s patch %d", key, i)
			if p.GetApplyTo() == networkingapi.EnvoyFilter_CLUSTER || p.GetApplyTo() == networkingapi.EnvoyFilter_LISTENER {
				continue
			}
			if p.GetApplyTo() != networkingapi.EnvoyFilter_HTTP_FILTER ||
				p.GetPatch().GetOperation() != networkingapi.EnvoyFilter_Patch_INSERT_BEFORE ||
				p.GetMatch().GetListener().GetFilterChain().GetFilter().GetSubFilter().GetName() != "envoy.filters.http.router" ||
				p.GetMatch().GetContext() != networkingapi.EnvoyFilter_SIDECAR_INBOUND {
				t.Errorf("%s: not an inbound HTTP filter inserted before the router", where)
			}
			js, err := protojson.Marshal(p.GetPatch().GetValue())
			if err != nil {
				t.Fatal(err)
			}
			hf := &hcm.HttpFilter{}
			if err := protojson.Unmarshal(js, hf); err != nil {
				t.Errorf("%s: value is not an HttpFilter: %v", where, err)
				continue
			}
			if err := hf.ValidateAll(); err != nil {
				t.Errorf("%s: %v", where, err)
			}
			if hf.GetName() != controlplane.FilterName {
				t.Errorf("%s: filter name %q, want the ECDS resource name %q", where, hf.GetName(), controlplane.FilterName)
			}
			cd := hf.GetConfigDiscovery()
			if !slices.Equal(cd.GetTypeUrls(), []string{controlplane.WasmTypeURL}) {
				t.Errorf("%s: type_urls %v", where, cd.GetTypeUrls())
			}
			if cd.GetDefaultConfig() != nil {
				t.Errorf("%s: a default config would serve requests without the control plane (fail open)", where)
			}
			gs := cd.GetConfigSource().GetApiConfigSource().GetGrpcServices()
			if len(gs) != 1 {
				t.Fatalf("%s: %d grpc services", where, len(gs))
			}
			switch {
			case gs[0].GetGoogleGrpc() != nil:
				ix.hostService(t, gs[0].GetGoogleGrpc().GetTargetUri())
				if svc, p := ix.hostService(t, gs[0].GetGoogleGrpc().GetTargetUri()); svc.Name != "angzarr-controlplane" || p.Name != "grpc-xds" {
					t.Errorf("%s: google_grpc target is %s:%s", where, svc.Name, p.Name)
				}
			case gs[0].GetEnvoyGrpc() != nil:
				checkBootstrapOverride(t, ix, ef.Namespace, gs[0].GetEnvoyGrpc().GetClusterName())
			default:
				t.Errorf("%s: no gRPC service", where)
			}
		}
		if !ix.namespaces[ef.Namespace] {
			t.Errorf("%s: namespace %s not created", key, ef.Namespace)
		}
	}
}

// checkBootstrapOverride: the bootstrap override ConfigMap (same
// namespace) decodes into Envoy's Bootstrap, validates, and defines the
// static cluster the EnvoyFilter names, pointing at the control plane.
func checkBootstrapOverride(t *testing.T, ix *index, ns, cluster string) {
	t.Helper()
	cm := ix.configMaps[ns+"/angzarr-bootstrap"]
	if cm == nil {
		t.Fatalf("no angzarr-bootstrap ConfigMap in %s", ns)
	}
	b := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal([]byte(cm.Data["custom_bootstrap.json"]), b); err != nil {
		t.Fatalf("custom_bootstrap.json: %v", err)
	}
	if err := b.ValidateAll(); err != nil {
		t.Errorf("custom_bootstrap.json: %v", err)
	}
	for _, c := range b.GetStaticResources().GetClusters() {
		if c.GetName() != cluster {
			continue
		}
		sa := c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
		if svc, _ := ix.hostService(t, fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue())); svc.Name != "angzarr-controlplane" {
			t.Errorf("cluster %s points at %s", cluster, svc.Name)
		}
		return
	}
	t.Errorf("the bootstrap override lacks cluster %q", cluster)
}

// TestWasmPluginVariant: the static WasmPlugins decode strictly, select a
// domain's workload, and carry exactly the plugin configuration the
// control plane pushes over ECDS to that workload's sidecar.
func TestWasmPluginVariant(t *testing.T) {
	ix := build(t)
	raw, err := os.ReadFile("../examples/topology.yaml")
	if err != nil {
		t.Fatal(err)
	}
	top, err := controlplane.DecodeTopology(raw)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := controlplane.Translate(top, controlplane.Options{WasmFile: "/unused.wasm"})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, o := range ix.objects {
		if _, ok := o.obj.(*extensionsv1alpha1.WasmPlugin); ok {
			specOf(t, o, &extensionsapi.WasmPlugin{})
		}
	}
	for _, wp := range ix.plugins {
		app := wp.Spec.GetSelector().GetMatchLabels()["app"]
		dep := ix.deployments[wp.Namespace+"/"+app]
		if dep == nil {
			t.Errorf("WasmPlugin %s selects no Deployment", wp.Name)
			continue
		}
		domain := dep.Spec.Template.Annotations[controlplane.DomainAnnotation]
		js, err := protojson.Marshal(wp.Spec.GetPluginConfig())
		if err != nil {
			t.Fatal(err)
		}
		got, err := config.Decode(js)
		if err != nil {
			t.Errorf("WasmPlugin %s: %v", wp.Name, err)
			continue
		}
		snap := tr.Snapshots[controlplane.Class{Flavour: controlplane.FlavourIstio, Domain: domain}]
		if snap == nil {
			t.Errorf("WasmPlugin %s: domain %q not in the topology", wp.Name, domain)
			continue
		}
		var want *config.Config
		for _, r := range snap.Resources[types.ExtensionConfig].Items {
			f, err := xdsclient.DecodeFilter(r.Resource.(*core.TypedExtensionConfig))
			if err != nil {
				t.Fatal(err)
			}
			want = f.Config
		}
		if want != nil {
			// Istio's WasmPlugin cannot set allow_on_headers_stop_iteration,
			// so its filter must let the request headers go at once.
			w := *want
			w.HoldRequestHeaders = false
			want = &w
		}
		if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
			t.Errorf("WasmPlugin %s: plugin configuration\n got %+v\nwant %+v (what the control plane pushes, without the header hold)", wp.Name, got, want)
		}
		if wp.Spec.GetFailStrategy().String() != "FAIL_CLOSE" && wp.Spec.GetFailStrategy().String() != "FAIL_RELOAD" {
			t.Errorf("WasmPlugin %s: fail strategy %v, want FAIL_CLOSE or FAIL_RELOAD", wp.Name, wp.Spec.GetFailStrategy())
		}
		port := dep.Spec.Template.Spec.Containers[0].Ports[0].ContainerPort
		if ports := wp.Spec.GetMatch()[0].GetPorts(); len(ports) != 1 || ports[0].GetNumber() != uint32(port) {
			t.Errorf("WasmPlugin %s: ports %v, want the logic's port %d", wp.Name, ports, port)
		}
		seen[domain] = true
	}
	for _, d := range top.Domains {
		if !seen[d.Name] {
			t.Errorf("no WasmPlugin for domain %s", d.Name)
		}
	}
}

// firstDiff is the index of the first byte where a and b differ.
func firstDiff(a, b string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestShopPodsMountTheFilter: the control plane pushes the module as a
// local file (--filter-wasm is a path), and every pod of a namespace the
// EnvoyFilter covers mounts it there from the filter's OCI image (an image
// volume in the sidecar through sidecar.istio.io/userVolume*): a pod
// without the file would get no filter and fail closed.
func TestShopPodsMountTheFilter(t *testing.T) {
	ix := build(t)
	cp := ix.deployments["angzarr-system/angzarr-controlplane"]
	path := arg(cp.Spec.Template.Spec.Containers[0].Args, "filter-wasm")
	if !strings.HasPrefix(path, "/") {
		t.Fatalf("--filter-wasm %s: istio/ is rendered with the chart's default, a local module", path)
	}
	covered := map[string]bool{}
	for _, ef := range ix.filters {
		if ef.Name == controlplane.FilterName {
			covered[ef.Namespace] = true
		}
	}
	n := 0
	for _, d := range ix.deployments {
		if !covered[d.Namespace] {
			continue
		}
		n++
		ann := d.Spec.Template.Annotations
		var vols []corev1.Volume
		var mounts []corev1.VolumeMount
		if err := json.Unmarshal([]byte(ann["sidecar.istio.io/userVolume"]), &vols); err != nil {
			t.Errorf("%s: userVolume: %v", d.Name, err)
			continue
		}
		if err := json.Unmarshal([]byte(ann["sidecar.istio.io/userVolumeMount"]), &mounts); err != nil {
			t.Errorf("%s: userVolumeMount: %v", d.Name, err)
			continue
		}
		if len(vols) != 1 || vols[0].Image == nil || !strings.HasPrefix(vols[0].Image.Reference, "ghcr.io/angzarr-mesh/angzarr-filter") ||
			len(mounts) != 1 || mounts[0].Name != vols[0].Name || !mounts[0].ReadOnly ||
			mounts[0].MountPath+"/"+images.WasmPluginFile != path {
			t.Errorf("%s does not mount the filter image's %s at %s: %v %v", d.Name, images.WasmPluginFile, path, vols, mounts)
		}
	}
	if n == 0 {
		t.Fatal("no workload in the EnvoyFilter's namespaces")
	}
}
