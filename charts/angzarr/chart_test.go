package angzarr_test

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/engine"

	"github.com/angzarr-mesh/angzarr/internal/images"
)

var update = flag.Bool("update", false, "rewrite istio/'s rendered manifests from the chart")

// TestRender renders every value set and checks the objects and the
// references between them.
func TestRender(t *testing.T) {
	ch := loadChart(t)
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			rendered, vals, err := render(ch, vs.values(t), releaseNamespace)
			if err != nil {
				t.Fatal(err)
			}
			objs := decodeAll(t, rendered)
			if len(objs) == 0 {
				t.Fatal("nothing rendered")
			}
			ix := indexObjects(t, objs)
			checkNamespaces(t, objs)
			checkWorkloads(t, ix)
			checkSelectors(t, ix)
			checkRBAC(t, ix)
			checkEventService(t, ix, vals)
			checkControlPlane(t, ix, vals)
			checkAuthorizationPolicies(t, ix, vals)
			checkWasmPlugins(t, ix, vals)

			if want := lookup(vals, "serviceMonitor", "enabled") == true; (len(ix.monitors) > 0) != want {
				t.Errorf("%d ServiceMonitors with serviceMonitor.enabled %v", len(ix.monitors), want)
			}
			if _, ok := ix.namespaces[releaseNamespace]; ok != (lookup(vals, "namespace", "create") == true) {
				t.Errorf("Namespace rendered: %v, namespace.create: %v", ok, lookup(vals, "namespace", "create"))
			}
			image := "ghcr.io/angzarr-mesh/angzarr:dev"
			if d, _ := lookup(vals, "image", "digest").(string); d != "" {
				image += "@" + d
			}
			for _, d := range ix.deployments {
				if d.Name == "redis" {
					continue
				}
				if c := container(t, d); c.Image != image {
					t.Errorf("Deployment %s: image %s, want %s", d.Name, c.Image, image)
				}
				// The user the image is built for (make images).
				if sc := d.Spec.Template.Spec.SecurityContext; sc == nil || sc.RunAsUser == nil || sc.RunAsGroup == nil ||
					*sc.RunAsUser != images.NonRootUID || *sc.RunAsGroup != images.NonRootUID {
					t.Errorf("Deployment %s: pod security context %+v, want the image's user %d", d.Name, sc, images.NonRootUID)
				}
			}
		})
	}
}

// TestSchemaRefuses: values.schema.json refuses bad values, naming the
// value at fault.
func TestSchemaRefuses(t *testing.T) {
	ch := loadChart(t)
	for _, tc := range []struct {
		name string
		vals map[string]any
		want string // in the error
	}{
		{"sqlite with 2 replicas", map[string]any{"store": map[string]any{"type": "sqlite"}, "eventService": map[string]any{"replicas": 2}},
			"/eventService/replicas"},
		{"unknown adoption", map[string]any{"adoption": "sidecarless"}, "/adoption"},
		{"bad image tag", map[string]any{"image": map[string]any{"tag": "dev; rm -rf /"}}, "/image/tag"},
		{"bad image digest", map[string]any{"image": map[string]any{"digest": "md5:abc"}}, "/image/digest"},
		{"upper-case repository", map[string]any{"image": map[string]any{"repository": "GHCR.io/Angzarr"}}, "/image/repository"},
		{"unknown store", map[string]any{"store": map[string]any{"type": "etcd"}}, "/store/type"},
		{"min replicas with the bundled Redis", map[string]any{"store": map[string]any{"minReplicas": 1}}, "/store/minReplicas"},
		{"replica timeout over 5s", map[string]any{"store": map[string]any{"replicaTimeout": "6s"}}, "/store/replicaTimeout"},
		{"unknown key", map[string]any{"eventService": map[string]any{"replica": 3}}, "replica"},
		{"existing redis without address", map[string]any{"store": map[string]any{"redis": map[string]any{"bundled": false}}}, "/store/redis/address"},
		{"redis address not host:port", map[string]any{"store": map[string]any{"redis": map[string]any{"bundled": false, "address": "redis://x:6379"}}}, "/store/redis/address"},
		{"redis cluster without addresses", map[string]any{"store": map[string]any{"type": "redisCluster"}}, "/store/redisCluster"},
		{"envoyFilter namespace not a DNS label", map[string]any{"envoyFilter": map[string]any{"namespaces": []any{"Shop"}}}, "/envoyFilter/namespaces/0"},
		{"wasmPlugin without plugins", map[string]any{"adoption": "wasmPlugin"}, "/wasmPlugin/plugins"},
		{"wasmPlugin pull policy Never", map[string]any{"wasmPlugin": map[string]any{"image": map[string]any{"pullPolicy": "Never"}}}, "/wasmPlugin/image/pullPolicy"},
		{"topology with leading blanks", map[string]any{"controlPlane": map[string]any{"topology": "  apiVersion: x"}}, "/controlPlane/topology"},
		{"ServiceMonitor label app", map[string]any{"serviceMonitor": map[string]any{"labels": map[string]any{"app": "x"}}}, "/serviceMonitor/labels"},
		{"credentials for the bundled Redis", map[string]any{"store": map[string]any{"auth": map[string]any{"existingSecret": "x"}}}, "/store/auth/existingSecret"},
		{"credentials with SQLite", map[string]any{"store": map[string]any{"type": "sqlite", "auth": map[string]any{"existingSecret": "x"}}, "eventService": map[string]any{"replicas": 1}}, "/store/auth/existingSecret"},
		{"bad Secret key", map[string]any{"store": map[string]any{"type": "redisCluster", "redisCluster": map[string]any{"addresses": []any{"a:1"}}, "auth": map[string]any{"existingSecret": "x", "passwordKey": "a b"}}}, "/store/auth/passwordKey"},
		{"identity principal with spiffe://", map[string]any{"identity": map[string]any{"eventServiceClients": []any{"spiffe://cluster.local/ns/a/sa/b"}}}, "/identity/eventServiceClients/0"},
		{"identity unknown key", map[string]any{"identity": map[string]any{"admins": []any{"x"}}}, "admins"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := render(ch, tc.vals, releaseNamespace)
			if err == nil {
				t.Fatal("rendered; want the schema to refuse it")
			}
			if !strings.Contains(err.Error(), "values don't meet the specifications of the schema") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error does not name %s:\n%v", tc.want, err)
			}
		})
	}

	// The templates refuse SQLite with replicas also when the schema is
	// skipped (helm --skip-schema-validation).
	vals := map[string]any{"store": map[string]any{"type": "sqlite"}, "eventService": map[string]any{"replicas": 3}}
	rv, err := util.ToRenderValuesWithSchemaValidation(ch, vals, common.ReleaseOptions{Name: "angzarr", Namespace: releaseNamespace}, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := engine.Render(ch, rv); err == nil || !strings.Contains(err.Error(), "eventService.replicas must be 1") {
		t.Errorf("SQLite with 3 replicas, schema skipped: %v", err)
	}

	// The template refuses what the schema cannot see: the release namespace.
	if _, _, err := render(ch, nil, "Angzarr_System"); err == nil || !strings.Contains(err.Error(), "is not a DNS label") {
		t.Errorf("bad release namespace: %v", err)
	}
}

// golden maps a rendered template of a value set to a file under istio/.
type golden struct {
	file     string // relative to the repository root
	set      string // valueSets name
	template string // under angzarr/templates/
}

// The files of istio/ that are the chart's output. Every non-empty
// template of these value sets lands in one of them.
var goldens = []golden{
	{"istio/namespace.yaml", "istio", "namespace.yaml"},
	{"istio/redis.yaml", "istio", "redis.yaml"},
	{"istio/eventsvc.yaml", "istio", "eventsvc.yaml"},
	{"istio/controlplane.yaml", "istio", "controlplane.yaml"},
	{"istio/envoyfilter.yaml", "istio", "envoyfilter.yaml"},
	{"istio/variants/bootstrap-override.yaml", "istio-bootstrap-override", "envoyfilter.yaml"},
	{"istio/variants/wasmplugin.yaml", "istio-wasmplugin", "wasmplugin.yaml"},
	{"istio/identity.yaml", "istio", "identity.yaml"},
	{"istio/variants/wasmplugin-identity.yaml", "istio-wasmplugin", "identity.yaml"},
	{"istio/variants/wasmplugin-eventsvc.yaml", "istio-wasmplugin", "eventsvc.yaml"},
}

// command is the `helm template` equivalent of a value set.
func (vs valueSet) command() string {
	var b strings.Builder
	fmt.Fprintf(&b, "helm template angzarr charts/angzarr -n %s", releaseNamespace)
	for _, f := range vs.files {
		fmt.Fprintf(&b, " -f charts/angzarr/%s", f)
	}
	if vs.topology {
		b.WriteString(" --set-file controlPlane.topology=examples/topology.yaml")
	}
	for _, s := range vs.set {
		fmt.Fprintf(&b, " --set %s", setFlags(s, ""))
	}
	return b.String()
}

// setFlags spells a nested map as --set a.b=c,... (scalars only; enough
// for the value sets rendered into istio/).
func setFlags(m map[string]any, prefix string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		v := m[k]
		if sub, ok := v.(map[string]any); ok {
			parts = append(parts, setFlags(sub, prefix+k+"."))
			continue
		}
		parts = append(parts, fmt.Sprintf("%s%s=%v", prefix, k, v))
	}
	return strings.Join(parts, ",")
}

func header(vs valueSet, template string) string {
	return "# GENERATED from the Helm chart charts/angzarr (templates/" + template + ") by\n" +
		"# charts/angzarr/chart_test.go, the equivalent of\n" +
		"#   " + vs.command() + "\n" +
		"# Do not edit: change the chart and run `go test ./charts/... -update`.\n" +
		"# A test fails when this file differs from the chart's rendering.\n"
}

// TestIstioIsRendered: the manifests under istio/ (but shop.yaml and
// observability/) are exactly what the chart renders; -update rewrites
// them.
func TestIstioIsRendered(t *testing.T) {
	ch := loadChart(t)
	sets := map[string]valueSet{}
	for _, vs := range valueSets {
		sets[vs.name] = vs
	}
	covered := map[string]bool{}
	for _, g := range goldens {
		covered[g.set+"/"+g.template] = true
	}
	renders := map[string]map[string]string{}
	for _, g := range goldens {
		if renders[g.set] != nil {
			continue
		}
		out, _, err := render(ch, sets[g.set].values(t), releaseNamespace)
		if err != nil {
			t.Fatalf("%s: %v", g.set, err)
		}
		renders[g.set] = out
	}
	// Every non-empty template lands in istio/: in a file of its own value
	// set, or, for a variant, rendered exactly as the main set renders it.
	for set, out := range renders {
		for name, text := range out {
			tmpl := strings.TrimPrefix(name, "angzarr/templates/")
			if !strings.HasSuffix(tmpl, ".yaml") || strings.TrimSpace(text) == "" || covered[set+"/"+tmpl] {
				continue
			}
			if text != renders["istio"][name] {
				t.Errorf("value set %s renders templates/%s, which no file of istio/ holds", set, tmpl)
			}
		}
	}
	for _, g := range goldens {
		text := strings.TrimSpace(renders[g.set]["angzarr/templates/"+g.template])
		if text == "" {
			t.Errorf("%s: templates/%s renders nothing for %s", g.file, g.template, g.set)
			continue
		}
		want := header(sets[g.set], g.template) + text + "\n"
		path := filepath.Join("..", "..", g.file)
		if *update {
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("%s is stale: it differs from the chart's rendering at byte %d; run `go test ./charts/... -update`", g.file, firstDiff(string(got), want))
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

// TestReadmeDocumentsEveryValue: README.md's values table names every
// value of values.yaml (itself, or an enclosing object as `a.b` or
// `a.b.*`), and nothing that values.yaml lacks.
func TestReadmeDocumentsEveryValue(t *testing.T) {
	ch := loadChart(t)
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for line := range strings.Lines(string(readme)) {
		if cell, ok := strings.CutPrefix(line, "| `"); ok {
			name, _, _ := strings.Cut(cell, "`")
			documented[strings.TrimSuffix(name, ".*")] = true
		}
	}
	if len(documented) == 0 {
		t.Fatal("no values table in README.md")
	}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		if m, ok := v.(map[string]any); ok && len(m) > 0 {
			for k, sub := range m {
				walk(strings.TrimPrefix(prefix+"."+k, "."), sub)
			}
			return
		}
		for p := prefix; ; {
			if documented[p] {
				return
			}
			i := strings.LastIndex(p, ".")
			if i < 0 {
				break
			}
			p = p[:i]
		}
		t.Errorf("value %s is not in README.md's table", prefix)
	}
	walk("", ch.Values)
	for name := range documented {
		if lookup(ch.Values, strings.Split(name, ".")...) == nil {
			t.Errorf("README.md documents %s, which values.yaml lacks", name)
		}
	}
}
