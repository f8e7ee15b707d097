package angzarr_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"helm.sh/helm/v4/pkg/chart/common"
	extensionsapi "istio.io/api/extensions/v1alpha1"
	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	extensionsv1alpha1 "istio.io/client-go/pkg/apis/extensions/v1alpha1"
	networkingv1alpha3 "istio.io/client-go/pkg/apis/networking/v1alpha3"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/angzarr-mesh/angzarr/controlplane"
	"github.com/angzarr-mesh/angzarr/filter/config"
	"github.com/angzarr-mesh/angzarr/internal/images"
)

// index is a rendered release, by kind and namespace/name.
type index struct {
	namespaces   map[string]*corev1.Namespace
	deployments  map[string]*appsv1.Deployment
	services     map[string]*corev1.Service
	configMaps   map[string]*corev1.ConfigMap
	claims       map[string]*corev1.PersistentVolumeClaim
	accounts     map[string]*corev1.ServiceAccount
	roles        map[string]*rbacv1.Role // ns/name
	clusterRoles map[string]*rbacv1.ClusterRole
	roleBindings []*rbacv1.RoleBinding
	crBindings   []*rbacv1.ClusterRoleBinding
	pdbs         []*policyv1.PodDisruptionBudget
	policies     []*networkingv1.NetworkPolicy
	filters      []*networkingv1alpha3.EnvoyFilter
	// logicFilters are the wasmPlugin adoption's EnvoyFilters that add a
	// workload's loopback logic cluster, by name.
	logicFilters map[string]*networkingv1alpha3.EnvoyFilter
	plugins      []*extensionsv1alpha1.WasmPlugin
	monitors     []*serviceMonitor
	peerAuths    []*securityv1.PeerAuthentication
	authzs       []*securityv1.AuthorizationPolicy
}

func key(ns, name string) string { return ns + "/" + name }

// indexObjects sorts decoded objects by kind, refusing duplicates and
// kinds the chart is not meant to render.
func indexObjects(t *testing.T, objs []object) *index {
	t.Helper()
	ix := &index{namespaces: map[string]*corev1.Namespace{}, deployments: map[string]*appsv1.Deployment{},
		services: map[string]*corev1.Service{}, configMaps: map[string]*corev1.ConfigMap{},
		claims: map[string]*corev1.PersistentVolumeClaim{}, accounts: map[string]*corev1.ServiceAccount{},
		roles: map[string]*rbacv1.Role{}, clusterRoles: map[string]*rbacv1.ClusterRole{}}
	seen := map[string]bool{}
	for _, o := range objs {
		var id string
		switch v := o.obj.(type) {
		case *serviceMonitor:
			ix.monitors = append(ix.monitors, v)
			id = "ServiceMonitor/" + key(v.Metadata.Namespace, v.Metadata.Name)
		case *corev1.Namespace:
			ix.namespaces[v.Name] = v
			id = "Namespace/" + v.Name
		case *appsv1.Deployment:
			ix.deployments[key(v.Namespace, v.Name)] = v
			id = "Deployment/" + key(v.Namespace, v.Name)
		case *corev1.Service:
			ix.services[key(v.Namespace, v.Name)] = v
			id = "Service/" + key(v.Namespace, v.Name)
		case *corev1.ConfigMap:
			ix.configMaps[key(v.Namespace, v.Name)] = v
			id = "ConfigMap/" + key(v.Namespace, v.Name)
		case *corev1.PersistentVolumeClaim:
			ix.claims[key(v.Namespace, v.Name)] = v
			id = "PVC/" + key(v.Namespace, v.Name)
		case *corev1.ServiceAccount:
			ix.accounts[key(v.Namespace, v.Name)] = v
			id = "ServiceAccount/" + key(v.Namespace, v.Name)
		case *rbacv1.Role:
			ix.roles[key(v.Namespace, v.Name)] = v
			id = "Role/" + key(v.Namespace, v.Name)
		case *rbacv1.ClusterRole:
			ix.clusterRoles[v.Name] = v
			id = "ClusterRole/" + v.Name
		case *rbacv1.RoleBinding:
			ix.roleBindings = append(ix.roleBindings, v)
			id = "RoleBinding/" + key(v.Namespace, v.Name)
		case *rbacv1.ClusterRoleBinding:
			ix.crBindings = append(ix.crBindings, v)
			id = "ClusterRoleBinding/" + v.Name
		case *policyv1.PodDisruptionBudget:
			ix.pdbs = append(ix.pdbs, v)
			id = "PDB/" + key(v.Namespace, v.Name)
		case *networkingv1.NetworkPolicy:
			ix.policies = append(ix.policies, v)
			id = "NetworkPolicy/" + key(v.Namespace, v.Name)
		case *networkingv1alpha3.EnvoyFilter:
			specOf(t, o, &networkingapi.EnvoyFilter{})
			if strings.HasPrefix(v.Name, "angzarr-logic-") {
				if ix.logicFilters == nil {
					ix.logicFilters = map[string]*networkingv1alpha3.EnvoyFilter{}
				}
				ix.logicFilters[key(v.Namespace, v.Name)] = v
			} else {
				ix.filters = append(ix.filters, v)
			}
			id = "EnvoyFilter/" + key(v.Namespace, v.Name)
		case *extensionsv1alpha1.WasmPlugin:
			specOf(t, o, &extensionsapi.WasmPlugin{})
			ix.plugins = append(ix.plugins, v)
			id = "WasmPlugin/" + key(v.Namespace, v.Name)
		case *securityv1.PeerAuthentication:
			specOf(t, o, &securityapi.PeerAuthentication{})
			ix.peerAuths = append(ix.peerAuths, v)
			id = "PeerAuthentication/" + key(v.Namespace, v.Name)
		case *securityv1.AuthorizationPolicy:
			specOf(t, o, &securityapi.AuthorizationPolicy{})
			ix.authzs = append(ix.authzs, v)
			id = "AuthorizationPolicy/" + key(v.Namespace, v.Name)
		default:
			t.Errorf("%s: unexpected kind %T", o.template, v)
			continue
		}
		if seen[id] {
			t.Errorf("%s rendered twice", id)
		}
		seen[id] = true
		checkMeta(t, id, o.obj)
	}
	return ix
}

// checkMeta: names, namespaces and labels are what the API server
// accepts (Services: DNS-1035 labels; the rest: DNS-1123 subdomains).
func checkMeta(t *testing.T, id string, obj any) {
	var m metav1.Object
	switch v := obj.(type) {
	case *serviceMonitor:
		m = &v.Metadata
	case metav1.Object:
		m = v
	default:
		t.Errorf("%s: no object metadata", id)
		return
	}
	nameErrs := validation.IsDNS1123Subdomain(m.GetName())
	if _, ok := obj.(*corev1.Service); ok {
		nameErrs = validation.IsDNS1035Label(m.GetName())
	}
	for _, e := range nameErrs {
		t.Errorf("%s: name: %s", id, e)
	}
	if ns := m.GetNamespace(); ns != "" {
		for _, e := range validation.IsDNS1123Label(ns) {
			t.Errorf("%s: namespace: %s", id, e)
		}
	}
	for k, v := range m.GetLabels() {
		for _, e := range append(validation.IsQualifiedName(k), validation.IsValidLabelValue(v)...) {
			t.Errorf("%s: label %s=%s: %s", id, k, v, e)
		}
	}
	if d, ok := obj.(*appsv1.Deployment); ok {
		for k, v := range d.Spec.Template.Labels {
			for _, e := range append(validation.IsQualifiedName(k), validation.IsValidLabelValue(v)...) {
				t.Errorf("%s: pod label %s=%s: %s", id, k, v, e)
			}
		}
	}
}

// selects reports whether selector (matchLabels) selects labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// selected returns the Deployments of ns whose pods selector selects.
func (ix *index) selected(ns string, selector map[string]string) []*appsv1.Deployment {
	var out []*appsv1.Deployment
	for _, k := range slices.Sorted(maps.Keys(ix.deployments)) {
		d := ix.deployments[k]
		if d.Namespace == ns && selects(selector, d.Spec.Template.Labels) {
			out = append(out, d)
		}
	}
	return out
}

// containerPort finds a container port of d by name or number.
func containerPort(d *appsv1.Deployment, p intstr.IntOrString) (corev1.ContainerPort, bool) {
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, cp := range c.Ports {
			if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
				return cp, true
			}
		}
	}
	return corev1.ContainerPort{}, false
}

// checkWorkloads: Deployments select their own pods, run locked down, with
// probes on ports they declare, resource requests, and references to
// ServiceAccounts, ConfigMaps and claims that exist.
func checkWorkloads(t *testing.T, ix *index) {
	for k, d := range ix.deployments {
		if d.Spec.Selector == nil || !selects(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
			t.Errorf("Deployment %s: selector does not select its own pods", k)
		}
		ps := d.Spec.Template.Spec
		if sa := ps.ServiceAccountName; sa != "" {
			if ix.accounts[key(d.Namespace, sa)] == nil {
				t.Errorf("Deployment %s: ServiceAccount %s is not rendered", k, sa)
			}
		} else if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
			t.Errorf("Deployment %s: the default ServiceAccount's token is mounted although the pod does not use the API", k)
		}
		for _, c := range ps.TopologySpreadConstraints {
			if c.LabelSelector == nil || !selects(c.LabelSelector.MatchLabels, d.Spec.Template.Labels) {
				t.Errorf("Deployment %s: a topology spread constraint does not select its own pods", k)
			}
		}
		if *d.Spec.Replicas > 1 && len(ps.TopologySpreadConstraints) == 0 {
			t.Errorf("Deployment %s: %d replicas without a topology spread constraint", k, *d.Spec.Replicas)
		}
		psc := ps.SecurityContext
		if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 ||
			psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("Deployment %s: pod security context %+v is not non-root with seccomp RuntimeDefault", k, psc)
		}
		for _, c := range ps.Containers {
			where := fmt.Sprintf("Deployment %s container %s", k, c.Name)
			sc := c.SecurityContext
			if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
				sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
				sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
				t.Errorf("%s: security context %+v: want no privilege escalation, read-only root, all capabilities dropped", where, sc)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
				t.Errorf("%s: no cpu/memory requests", where)
			}
			if c.Resources.Limits.Memory().IsZero() {
				t.Errorf("%s: no memory limit", where)
			}
			if c.ReadinessProbe == nil || c.LivenessProbe == nil {
				t.Errorf("%s: readiness and liveness probes are required", where)
			}
			for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
				if p == nil {
					continue
				}
				switch {
				case p.GRPC != nil:
					if _, ok := containerPort(d, intstr.FromInt32(p.GRPC.Port)); !ok {
						t.Errorf("%s: gRPC probe on undeclared port %d", where, p.GRPC.Port)
					}
				case p.TCPSocket != nil:
					if _, ok := containerPort(d, p.TCPSocket.Port); !ok {
						t.Errorf("%s: TCP probe on undeclared port %s", where, p.TCPSocket.Port.String())
					}
				case p.Exec != nil:
				default:
					t.Errorf("%s: probe without a handler", where)
				}
			}
			if c.Image == "" || strings.HasSuffix(c.Image, ":") {
				t.Errorf("%s: image %q", where, c.Image)
			}
			for _, m := range c.VolumeMounts {
				if !slices.ContainsFunc(ps.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name }) {
					t.Errorf("%s: mounts undeclared volume %s", where, m.Name)
				}
			}
		}
		for _, v := range ps.Volumes {
			switch {
			case v.ConfigMap != nil:
				if ix.configMaps[key(d.Namespace, v.ConfigMap.Name)] == nil {
					t.Errorf("Deployment %s: volume %s: ConfigMap %s is not rendered", k, v.Name, v.ConfigMap.Name)
				}
			case v.PersistentVolumeClaim != nil:
				if ix.claims[key(d.Namespace, v.PersistentVolumeClaim.ClaimName)] == nil {
					t.Errorf("Deployment %s: volume %s: claim %s is not rendered", k, v.Name, v.PersistentVolumeClaim.ClaimName)
				}
			case v.EmptyDir != nil:
			default:
				t.Errorf("Deployment %s: volume %s of an unchecked kind", k, v.Name)
			}
		}
	}
}

// checkSelectors: Services, PDBs, NetworkPolicies and ServiceMonitors
// select what exists, by labels and port names.
func checkSelectors(t *testing.T, ix *index) {
	for k, s := range ix.services {
		ds := ix.selected(s.Namespace, s.Spec.Selector)
		if len(ds) != 1 {
			t.Errorf("Service %s selects %d Deployments, want 1", k, len(ds))
			continue
		}
		for _, p := range s.Spec.Ports {
			if _, ok := containerPort(ds[0], p.TargetPort); !ok {
				t.Errorf("Service %s port %s: target %s is not a container port of %s", k, p.Name, p.TargetPort.String(), ds[0].Name)
			}
		}
	}
	for _, p := range ix.pdbs {
		if p.Spec.Selector == nil || len(ix.selected(p.Namespace, p.Spec.Selector.MatchLabels)) != 1 {
			t.Errorf("PodDisruptionBudget %s does not select exactly one Deployment", p.Name)
		}
		if p.Spec.MinAvailable != nil {
			t.Errorf("PodDisruptionBudget %s: minAvailable can block node drains of a single replica; use maxUnavailable", p.Name)
		}
	}
	for _, np := range ix.policies {
		targets := ix.selected(np.Namespace, np.Spec.PodSelector.MatchLabels)
		if len(targets) != 1 {
			t.Errorf("NetworkPolicy %s selects %d Deployments, want 1", np.Name, len(targets))
			continue
		}
		for _, in := range np.Spec.Ingress {
			for _, from := range in.From {
				if from.PodSelector == nil || len(ix.selected(np.Namespace, from.PodSelector.MatchLabels)) == 0 {
					t.Errorf("NetworkPolicy %s: a peer selects no Deployment of the release", np.Name)
				}
			}
			for _, p := range in.Ports {
				if _, ok := containerPort(targets[0], *p.Port); !ok {
					t.Errorf("NetworkPolicy %s: port %s is not a container port of %s", np.Name, p.Port.String(), targets[0].Name)
				}
			}
		}
	}
	for _, sm := range ix.monitors {
		var match *corev1.Service
		for _, ns := range sm.Spec.NamespaceSelector.MatchNames {
			for _, s := range ix.services {
				if s.Namespace == ns && selects(sm.Spec.Selector.MatchLabels, s.Labels) {
					match = s
				}
			}
		}
		if match == nil {
			t.Errorf("ServiceMonitor %s selects no Service", sm.Metadata.Name)
			continue
		}
		for _, e := range sm.Spec.Endpoints {
			if !slices.ContainsFunc(match.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == e.Port }) {
				t.Errorf("ServiceMonitor %s: Service %s has no port %s", sm.Metadata.Name, match.Name, e.Port)
			}
		}
	}
}

// checkRBAC: bindings name roles and ServiceAccounts that exist, and the
// control plane's ServiceAccount can do exactly what its informers do
// (list and watch pods, services and deployments) and nothing more.
func checkRBAC(t *testing.T, ix *index) {
	type grant struct{ ns, sa string }
	rules := map[grant][]rbacv1.PolicyRule{}
	subjects := func(what string, ss []rbacv1.Subject, rs []rbacv1.PolicyRule) {
		for _, s := range ss {
			if s.Kind != "ServiceAccount" || ix.accounts[key(s.Namespace, s.Name)] == nil {
				t.Errorf("%s: subject %s %s/%s is not a rendered ServiceAccount", what, s.Kind, s.Namespace, s.Name)
				continue
			}
			g := grant{s.Namespace, s.Name}
			rules[g] = append(rules[g], rs...)
		}
	}
	for _, b := range ix.crBindings {
		r := ix.clusterRoles[b.RoleRef.Name]
		if b.RoleRef.Kind != "ClusterRole" || r == nil {
			t.Errorf("ClusterRoleBinding %s: role %s %s is not rendered", b.Name, b.RoleRef.Kind, b.RoleRef.Name)
			continue
		}
		subjects("ClusterRoleBinding "+b.Name, b.Subjects, r.Rules)
	}
	for _, b := range ix.roleBindings {
		r := ix.roles[key(b.Namespace, b.RoleRef.Name)]
		if b.RoleRef.Kind != "Role" || r == nil {
			t.Errorf("RoleBinding %s: role %s %s is not rendered in %s", b.Name, b.RoleRef.Kind, b.RoleRef.Name, b.Namespace)
			continue
		}
		subjects("RoleBinding "+b.Name, b.Subjects, r.Rules)
	}
	for g, rs := range rules {
		got := map[string][]string{}
		for _, r := range rs {
			if len(r.NonResourceURLs) > 0 || len(r.ResourceNames) > 0 {
				t.Errorf("ServiceAccount %s: unexpected rule %+v", g.sa, r)
			}
			for _, grp := range r.APIGroups {
				for _, res := range r.Resources {
					got[grp+"/"+res] = append(got[grp+"/"+res], r.Verbs...)
				}
			}
		}
		want := map[string][]string{"/pods": {"list", "watch"}, "/services": {"list", "watch"}, "apps/deployments": {"list", "watch"}}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("ServiceAccount %s/%s may %v, want exactly %v (what the control plane's informers use)", g.ns, g.sa, got, want)
		}
	}
	if d := ix.deployments[key(releaseNamespace, "angzarr-controlplane")]; d != nil {
		if len(rules[grant{releaseNamespace, d.Spec.Template.Spec.ServiceAccountName}]) == 0 {
			t.Error("the control plane's ServiceAccount is bound to no role")
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

// hostService resolves NAME.NAMESPACE.svc.cluster.local:PORT to a
// rendered Service and its port.
func (ix *index) hostService(addr string) (*corev1.Service, *corev1.ServicePort, error) {
	host, port, ok := strings.Cut(addr, ":")
	if !ok {
		return nil, nil, fmt.Errorf("%q is not host:port", addr)
	}
	name, rest, _ := strings.Cut(host, ".")
	ns, suffix, _ := strings.Cut(rest, ".")
	if suffix != "svc.cluster.local" {
		return nil, nil, fmt.Errorf("%q is not NAME.NAMESPACE.svc.cluster.local", host)
	}
	svc := ix.services[key(ns, name)]
	if svc == nil {
		return nil, nil, fmt.Errorf("%s: Service %s/%s is not rendered", addr, ns, name)
	}
	for i, p := range svc.Spec.Ports {
		if fmt.Sprint(p.Port) == port {
			return svc, &svc.Spec.Ports[i], nil
		}
	}
	return nil, nil, fmt.Errorf("%s: Service %s has no port %s", addr, svc.Name, port)
}

// container returns the only container of a Deployment.
func container(t *testing.T, d *appsv1.Deployment) corev1.Container {
	t.Helper()
	if n := len(d.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("Deployment %s has %d containers", d.Name, n)
	}
	return d.Spec.Template.Spec.Containers[0]
}

// checkEventService: the store flag matches store.type, reaching the
// rendered Redis, the given Redis (Cluster), or a file on the claim.
func checkEventService(t *testing.T, ix *index, vals map[string]any) {
	d := ix.deployments[key(releaseNamespace, "angzarr-eventsvc")]
	if d == nil {
		t.Fatal("no event service Deployment")
	}
	c := container(t, d)
	if c.Args[0] != "eventsvc" {
		t.Errorf("event service args %v", c.Args)
	}
	store := arg(c.Args, "store")
	checkStoreAuth(t, c, vals)
	store, query, _ := strings.Cut(store, "?")
	wantQuery := ""
	if n := fmt.Sprint(lookup(vals, "store", "minReplicas")); n != "0" {
		wantQuery = "min-replicas=" + n + "&replica-timeout=" + fmt.Sprint(lookup(vals, "store", "replicaTimeout"))
	}
	if query != wantQuery {
		t.Errorf("--store query %q, want %q (store.minReplicas, store.replicaTimeout)", query, wantQuery)
	}
	if cred, rest, ok := strings.Cut(store, "@"); ok {
		scheme, _, _ := strings.Cut(cred, "://")
		store = scheme + "://" + rest // the address checks below
	}
	switch typ := lookup(vals, "store", "type"); typ {
	case "redis":
		addr, ok := strings.CutPrefix(store, "redis://")
		addr, db, _ := strings.Cut(addr, "/")
		if !ok || db != fmt.Sprint(lookup(vals, "store", "redis", "db")) {
			t.Errorf("--store=%s", store)
		}
		if lookup(vals, "store", "redis", "bundled") == true {
			if svc, _, err := ix.hostService(addr); err != nil || svc.Name != "redis" {
				t.Errorf("--store=%s does not reach the bundled Redis: %v", store, err)
			}
		} else if addr != lookup(vals, "store", "redis", "address") {
			t.Errorf("--store=%s, want the address of store.redis.address", store)
		}
		if ix.deployments[key(releaseNamespace, "redis")] != nil == (lookup(vals, "store", "redis", "bundled") != true) {
			t.Error("the bundled Redis is rendered if and only if store.redis.bundled")
		}
	case "redisCluster":
		want := fmt.Sprint(lookup(vals, "store", "redisCluster", "addresses"))
		addrs, ok := strings.CutPrefix(store, "redis+cluster://")
		if !ok || fmt.Sprint(strings.Split(addrs, ",")) != want {
			t.Errorf("--store=%s, want redis+cluster:// with %s", store, want)
		}
	case "sqlite":
		path, ok := strings.CutPrefix(store, "sqlite:")
		onClaim := false
		for _, m := range c.VolumeMounts {
			if ok && strings.HasPrefix(path, m.MountPath+"/") {
				for _, v := range d.Spec.Template.Spec.Volumes {
					onClaim = onClaim || (v.Name == m.Name && v.PersistentVolumeClaim != nil)
				}
			}
		}
		if !onClaim {
			t.Errorf("--store=%s is not on a mounted PersistentVolumeClaim", store)
		}
		if *d.Spec.Replicas != 1 || d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
			t.Errorf("SQLite: %d replicas, strategy %q; want 1, Recreate (one writer)", *d.Spec.Replicas, d.Spec.Strategy.Type)
		}
	default:
		t.Fatalf("store.type %v", typ)
	}
	if store != "" && lookup(vals, "store", "type") != "redis" && ix.deployments[key(releaseNamespace, "redis")] != nil {
		t.Error("a Redis is rendered although the store is not store.type redis")
	}
}

// checkStoreAuth: with store.auth.existingSecret the store URL carries
// only $(VAR) references, each an environment variable of the container
// taken from that Secret's configured keys; without it, no credentials.
func checkStoreAuth(t *testing.T, c corev1.Container, vals map[string]any) {
	secret, _ := lookup(vals, "store", "auth", "existingSecret").(string)
	store := arg(c.Args, "store")
	cred, _, hasCred := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(store, "redis://"), "redis+cluster://"), "@")
	if secret == "" {
		if hasCred || slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil }) {
			t.Errorf("credentials without store.auth.existingSecret: --store=%s", store)
		}
		return
	}
	if !hasCred {
		t.Fatalf("--store=%s has no credentials although store.auth.existingSecret is %q", store, secret)
	}
	want := map[string]string{"ANGZARR_STORE_PASSWORD": lookup(vals, "store", "auth", "passwordKey").(string)}
	wantCred := ":$(ANGZARR_STORE_PASSWORD)"
	if k, _ := lookup(vals, "store", "auth", "usernameKey").(string); k != "" {
		want["ANGZARR_STORE_USERNAME"] = k
		wantCred = "$(ANGZARR_STORE_USERNAME)" + wantCred
	}
	if cred != wantCred {
		t.Errorf("--store=%s: credentials %q, want %q", store, cred, wantCred)
	}
	got := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			continue
		}
		if e.ValueFrom.SecretKeyRef.Name != secret {
			t.Errorf("env %s reads Secret %s, want %s", e.Name, e.ValueFrom.SecretKeyRef.Name, secret)
		}
		got[e.Name] = e.ValueFrom.SecretKeyRef.Key
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("credential variables %v, want %v", got, want)
	}
}

// checkControlPlane: the control plane serves the module of its image,
// reads a topology that decodes and names the rendered event service, and
// is reached by the EnvoyFilters of the listed namespaces.
func checkControlPlane(t *testing.T, ix *index, vals map[string]any) {
	d := ix.deployments[key(releaseNamespace, "angzarr-controlplane")]
	if lookup(vals, "adoption") == "wasmPlugin" {
		if d != nil || len(ix.filters) > 0 {
			t.Error("adoption wasmPlugin renders the control plane or an EnvoyFilter")
		}
		return
	}
	if d == nil {
		t.Fatal("no control plane Deployment")
	}
	c := container(t, d)
	url := arg(c.Args, "filter-wasm")
	opts := controlplane.Options{WasmURL: url, WasmSHA256: strings.Repeat("0", 64)}
	if lookup(vals, "controlPlane", "wasmSource") == "remote" {
		if got := arg(c.Args, "serve-filter"); got != images.FilterPath {
			t.Errorf("--serve-filter=%s, want the module of the image", got)
		}
		hostPort, ok := strings.CutSuffix(strings.TrimPrefix(url, "http://"), controlplane.ModulePath)
		svc, port, err := ix.hostService(hostPort)
		if !ok || err != nil || svc.Name != "angzarr-controlplane" || arg(c.Args, "serve-filter-listen") != fmt.Sprintf("0.0.0.0:%d", port.Port) {
			t.Errorf("--filter-wasm %s is not the control plane's own module server (%v)", url, err)
		}
	} else {
		// Local (the default): the sidecars read the module from a file
		// they mount; the control plane serves no module.
		if want, _ := lookup(vals, "controlPlane", "sidecarFilterPath").(string); url != want || !strings.HasPrefix(url, "/") {
			t.Errorf("--filter-wasm=%s, want controlPlane.sidecarFilterPath %q", url, want)
		}
		if arg(c.Args, "serve-filter") != "" || arg(c.Args, "serve-filter-listen") != "" {
			t.Error("a local module source still serves the module over HTTP")
		}
		for _, p := range ix.services[key(d.Namespace, "angzarr-controlplane")].Spec.Ports {
			if p.Name == "http-wasm" {
				t.Error("a local module source still exposes http-wasm")
			}
		}
		opts = controlplane.Options{WasmFile: url}
	}
	if ns, _ := lookup(vals, "controlPlane", "watchNamespace").(string); arg(c.Args, "namespace") != ns {
		t.Errorf("--namespace=%s, want %q", arg(c.Args, "namespace"), ns)
	}

	// The topology is the ConfigMap key mounted where --topology points.
	topo := arg(c.Args, "topology")
	var text string
	for _, m := range c.VolumeMounts {
		if file, ok := strings.CutPrefix(topo, m.MountPath+"/"); ok {
			for _, v := range d.Spec.Template.Spec.Volumes {
				if v.Name == m.Name && v.ConfigMap != nil {
					text = ix.configMaps[key(d.Namespace, v.ConfigMap.Name)].Data[file]
				}
			}
		}
	}
	if text == "" {
		t.Fatalf("--topology=%s is not a key of a mounted ConfigMap", topo)
	}
	if given, _ := lookup(vals, "controlPlane", "topology").(string); given != "" && text != given {
		t.Errorf("the ConfigMap's topology is not controlPlane.topology verbatim")
	}
	top, err := controlplane.DecodeTopology([]byte(text))
	if err != nil {
		t.Fatalf("topology: %v", err)
	}
	if svc, _, err := ix.hostService(top.EventService.Address); err != nil || svc.Name != "angzarr-eventsvc" {
		t.Errorf("the topology's event service %s is not the rendered one: %v", top.EventService.Address, err)
	}
	tr, err := controlplane.Translate(top, opts)
	if err != nil {
		t.Fatalf("the control plane cannot translate the topology: %v", err)
	}
	checkControlPlaneIdentity(t, ix, vals, d, tr)

	want := lookup(vals, "envoyFilter", "namespaces")
	var got []string
	var ports []uint32
	for _, p := range orEmptyAny(lookup(vals, "envoyFilter", "logicPorts")) {
		ports = append(ports, uint32(toInt(p)))
	}
	for _, ef := range ix.filters {
		got = append(got, ef.Namespace)
		checkEnvoyFilter(t, ix, ef, ports)
	}
	if fmt.Sprint(got) != fmt.Sprint(orEmpty(want)) {
		t.Errorf("EnvoyFilters in %v, want one per envoyFilter.namespaces %v", got, want)
	}
}

// checkEnvoyFilter: the patch's value is an Envoy HttpFilter (strict,
// ValidateAll-clean) named after the control plane's ECDS resource, with
// no default config (fail closed), discovered from the control plane's
// xDS port over google_grpc, or over a static cluster that the bootstrap
// override of the same namespace defines and points at the control plane.
func checkEnvoyFilter(t *testing.T, ix *index, ef *networkingv1alpha3.EnvoyFilter, logicPorts []uint32) {
	where := "EnvoyFilter " + key(ef.Namespace, ef.Name)
	var clusters []uint32
	limits := 0
	defer func() {
		if !slices.Equal(clusters, logicPorts) {
			t.Errorf("%s adds loopback logic clusters for ports %v, want envoyFilter.logicPorts %v", where, clusters, logicPorts)
		}
		if limits != 1 {
			t.Errorf("%s has %d buffer limit patches, want 1", where, limits)
		}
	}()
	for _, p := range ef.Spec.GetConfigPatches() {
		switch p.GetApplyTo() {
		case networkingapi.EnvoyFilter_CLUSTER:
			clusters = append(clusters, checkLogicClusterPatch(t, where, p))
			continue
		case networkingapi.EnvoyFilter_LISTENER:
			checkBufferLimitPatch(t, where, p)
			limits++
			continue
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
			t.Errorf("%s inserts %q, want the ECDS resource %q", where, hf.GetName(), controlplane.FilterName)
		}
		cd := hf.GetConfigDiscovery()
		if cd.GetDefaultConfig() != nil || !slices.Equal(cd.GetTypeUrls(), []string{controlplane.WasmTypeURL}) {
			t.Errorf("%s: config discovery %v", where, cd)
		}
		gs := cd.GetConfigSource().GetApiConfigSource().GetGrpcServices()
		if len(gs) != 1 {
			t.Errorf("%s: %d grpc services", where, len(gs))
			continue
		}
		target := gs[0].GetGoogleGrpc().GetTargetUri()
		if cluster := gs[0].GetEnvoyGrpc().GetClusterName(); cluster != "" {
			target = bootstrapCluster(t, ix, ef.Namespace, cluster)
		}
		if svc, port, err := ix.hostService(target); err != nil || svc.Name != "angzarr-controlplane" || port.Name != "grpc-xds" {
			t.Errorf("%s: the xDS source %q is not the control plane's xDS port: %v", where, target, err)
		}
	}
}

// checkLogicClusterPatch: a CLUSTER patch adds, to a sidecar's clusters,
// the STATIC loopback cluster the control plane names for the logic's
// port (controlplane.IstioLogicCluster), HTTP/2, decoded strictly into
// Envoy's Cluster and ValidateAll-clean; it returns the port.
func checkLogicClusterPatch(t *testing.T, where string, p *networkingapi.EnvoyFilter_EnvoyConfigObjectPatch) uint32 {
	if p.GetPatch().GetOperation() != networkingapi.EnvoyFilter_Patch_ADD || p.GetMatch().GetContext() != networkingapi.EnvoyFilter_SIDECAR_OUTBOUND {
		t.Errorf("%s: cluster patch %v %v, want ADD in SIDECAR_OUTBOUND", where, p.GetPatch().GetOperation(), p.GetMatch().GetContext())
	}
	js, err := protojson.Marshal(p.GetPatch().GetValue())
	if err != nil {
		t.Fatal(err)
	}
	c := &clusterv3.Cluster{}
	if err := protojson.Unmarshal(js, c); err != nil {
		t.Errorf("%s: value is not a Cluster: %v", where, err)
		return 0
	}
	if err := c.ValidateAll(); err != nil {
		t.Errorf("%s: %v", where, err)
	}
	eps := c.GetLoadAssignment().GetEndpoints()
	if c.GetType() != clusterv3.Cluster_STATIC || len(eps) != 1 || len(eps[0].GetLbEndpoints()) != 1 ||
		c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"] == nil {
		t.Errorf("%s: cluster %s is not one STATIC HTTP/2 endpoint", where, c.GetName())
		return 0
	}
	sa := eps[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
	if sa.GetAddress() != "127.0.0.1" || c.GetName() != controlplane.IstioLogicCluster(sa.GetPortValue()) {
		t.Errorf("%s: cluster %s goes to %s:%d, want %s to 127.0.0.1", where, c.GetName(), sa.GetAddress(), sa.GetPortValue(),
			controlplane.IstioLogicCluster(sa.GetPortValue()))
	}
	return sa.GetPortValue()
}

// checkBufferLimitPatch: a LISTENER patch merges into the sidecar's
// inbound listener a per_connection_buffer_limit_bytes (decoded strictly
// into Envoy's Listener) at least what the filter buffers by default
// (controlplane.BufferLimitBytes).
func checkBufferLimitPatch(t *testing.T, where string, p *networkingapi.EnvoyFilter_EnvoyConfigObjectPatch) {
	if p.GetPatch().GetOperation() != networkingapi.EnvoyFilter_Patch_MERGE || p.GetMatch().GetContext() != networkingapi.EnvoyFilter_SIDECAR_INBOUND {
		t.Errorf("%s: listener patch %v %v, want MERGE in SIDECAR_INBOUND", where, p.GetPatch().GetOperation(), p.GetMatch().GetContext())
	}
	js, err := protojson.Marshal(p.GetPatch().GetValue())
	if err != nil {
		t.Fatal(err)
	}
	l := &listenerv3.Listener{}
	if err := protojson.Unmarshal(js, l); err != nil {
		t.Errorf("%s: value is not a Listener: %v", where, err)
		return
	}
	if got := l.GetPerConnectionBufferLimitBytes().GetValue(); got < controlplane.BufferLimitBytes(0) {
		t.Errorf("%s: per_connection_buffer_limit_bytes %d, want at least %d (the filter's bodies)", where, got, controlplane.BufferLimitBytes(0))
	}
}

// bootstrapCluster returns HOST:PORT of cluster in the bootstrap override
// ConfigMap of ns, decoded strictly into Envoy's Bootstrap and validated.
func bootstrapCluster(t *testing.T, ix *index, ns, cluster string) string {
	cm := ix.configMaps[key(ns, "angzarr-bootstrap")]
	if cm == nil {
		t.Errorf("no angzarr-bootstrap ConfigMap in %s", ns)
		return ""
	}
	b := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal([]byte(cm.Data["custom_bootstrap.json"]), b); err != nil {
		t.Errorf("%s: custom_bootstrap.json: %v", ns, err)
		return ""
	}
	if err := b.ValidateAll(); err != nil {
		t.Errorf("%s: custom_bootstrap.json: %v", ns, err)
	}
	for _, c := range b.GetStaticResources().GetClusters() {
		if c.GetName() == cluster {
			sa := c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
			return fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue())
		}
	}
	t.Errorf("%s: the bootstrap override lacks cluster %q", ns, cluster)
	return ""
}

// checkWasmPlugins: one WasmPlugin per wasmPlugin.plugins entry, pulling
// the filter image (checked by digest when one is given), with a plugin
// configuration the filter accepts.
func checkWasmPlugins(t *testing.T, ix *index, vals map[string]any) {
	want, _ := lookup(vals, "wasmPlugin", "plugins").([]any)
	if lookup(vals, "adoption") != "wasmPlugin" {
		want = nil
	}
	if len(ix.plugins) != len(want) {
		t.Fatalf("%d WasmPlugins, want %d", len(ix.plugins), len(want))
	}
	digest, _ := lookup(vals, "wasmPlugin", "image", "digest").(string)
	for _, wp := range ix.plugins {
		if !strings.HasPrefix(wp.Spec.GetUrl(), "oci://ghcr.io/angzarr-mesh/angzarr-filter:") {
			t.Errorf("WasmPlugin %s: url %s", wp.Name, wp.Spec.GetUrl())
		}
		if "sha256:"+wp.Spec.GetSha256() != digest && (digest != "" || wp.Spec.GetSha256() != "") {
			t.Errorf("WasmPlugin %s: sha256 %q, want the digest %q", wp.Name, wp.Spec.GetSha256(), digest)
		}
		if want, _ := lookup(vals, "wasmPlugin", "failStrategy").(string); wp.Spec.GetFailStrategy().String() != want ||
			wp.Spec.GetFailStrategy() == extensionsapi.FailStrategy_FAIL_OPEN {
			t.Errorf("WasmPlugin %s: fail strategy %v", wp.Name, wp.Spec.GetFailStrategy())
		}
		js, err := wp.Spec.GetPluginConfig().MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Decode(js)
		if err != nil {
			t.Errorf("WasmPlugin %s: plugin configuration: %v", wp.Name, err)
			continue
		}
		// The workload's loopback logic cluster, added by its EnvoyFilter.
		port := uint32(wp.Spec.GetMatch()[0].GetPorts()[0].GetNumber())
		if cfg.BusinessLogicCluster != controlplane.IstioLogicCluster(port) {
			t.Errorf("WasmPlugin %s: business_logic_cluster %q, want %q", wp.Name, cfg.BusinessLogicCluster, controlplane.IstioLogicCluster(port))
		}
		ef := ix.logicFilters[key(wp.Namespace, "angzarr-logic-"+strings.TrimPrefix(wp.Name, "angzarr-"))]
		if ef == nil {
			t.Errorf("WasmPlugin %s: no EnvoyFilter adds its logic cluster", wp.Name)
		} else {
			if !maps.Equal(ef.Spec.GetWorkloadSelector().GetLabels(), wp.Spec.GetSelector().GetMatchLabels()) {
				t.Errorf("EnvoyFilter %s selects %v, its WasmPlugin %v", ef.Name, ef.Spec.GetWorkloadSelector().GetLabels(), wp.Spec.GetSelector().GetMatchLabels())
			}
			ps := ef.Spec.GetConfigPatches()
			if len(ps) != 2 || checkLogicClusterPatch(t, "EnvoyFilter "+ef.Name, ps[0]) != port {
				t.Errorf("EnvoyFilter %s does not add the loopback cluster of port %d", ef.Name, port)
			} else {
				checkBufferLimitPatch(t, "EnvoyFilter "+ef.Name, ps[1])
			}
		}
		// Istio's outbound cluster of the rendered event service.
		parts := strings.Split(cfg.EventServiceCluster, "|")
		if len(parts) != 4 || parts[0] != "outbound" {
			t.Errorf("WasmPlugin %s: event_service_cluster %q is not an Istio outbound cluster", wp.Name, cfg.EventServiceCluster)
		} else if svc, _, err := ix.hostService(parts[3] + ":" + parts[1]); err != nil || svc.Name != "angzarr-eventsvc" {
			t.Errorf("WasmPlugin %s: event_service_cluster %q is not the rendered event service: %v", wp.Name, cfg.EventServiceCluster, err)
		}
	}
}

// checkNamespaces: objects live in the release namespace, except the
// adoption objects, which live in the namespaces they serve.
func checkNamespaces(t *testing.T, objs []object) {
	for _, o := range objs {
		var ns, kind string
		switch v := o.obj.(type) {
		case *serviceMonitor:
			ns, kind = v.Metadata.Namespace, v.Kind
		case interface{ GetNamespace() string }:
			ns = v.GetNamespace()
			kind = fmt.Sprintf("%T", v)
		}
		switch {
		case strings.HasSuffix(o.template, "/envoyfilter.yaml"), strings.HasSuffix(o.template, "/wasmplugin.yaml"), strings.HasSuffix(o.template, "/identity.yaml"):
		case kind == "*v1.Namespace", kind == "*v1.ClusterRole", kind == "*v1.ClusterRoleBinding":
			if ns != "" {
				t.Errorf("%s: cluster-scoped %s with namespace %q", o.template, kind, ns)
			}
		case kind == "*v1.Role", kind == "*v1.RoleBinding":
		default:
			if ns != releaseNamespace {
				t.Errorf("%s: %s in namespace %q, want the release namespace", o.template, kind, ns)
			}
		}
	}
}

// lookup walks nested values; nil when absent.
func lookup(vals map[string]any, path ...string) any {
	var cur any = vals
	for _, p := range path {
		switch m := cur.(type) {
		case map[string]any:
			cur = m[p]
		case common.Values:
			cur = m[p]
		default:
			return nil
		}
	}
	return cur
}

func orEmpty(v any) any {
	if v == nil {
		return []any{}
	}
	return v
}

// orEmptyAny is v as a list (nil: empty).
func orEmptyAny(v any) []any {
	l, _ := v.([]any)
	return l
}

// toInt reads a YAML/JSON number value.
func toInt(v any) int {
	switch n := v.(type) {
	case int:
		return n
	case int64:
		return int(n)
	case float64:
		return int(n)
	}
	return -1
}
