// Package angzarr_test renders the Helm chart with Helm's Go library (no
// helm binary, no cluster) and checks what it renders: every object
// decodes strictly into its Kubernetes or Istio type, the references
// between objects hold, the schema refuses bad values, and istio/ is the
// chart's rendered output.
package angzarr_test

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/angzarr-mesh/angzarr/internal/testutil/yamldocs"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	istioscheme "istio.io/client-go/pkg/clientset/versioned/scheme"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
)

// releaseNamespace is where istio/ installs Angzarr.
const releaseNamespace = "angzarr-system"

// valueSet is one way to install the chart: overlays applied in order on
// top of the chart's values.yaml.
type valueSet struct {
	name     string
	files    []string         // values files, relative to the chart
	topology bool             // --set-file controlPlane.topology=examples/topology.yaml
	set      []map[string]any // --set, applied last
}

// The value sets rendered and checked by every test.
var valueSets = []valueSet{
	{name: "defaults"},
	{name: "istio", files: []string{"ci/istio-values.yaml"}, topology: true},
	{name: "istio-bootstrap-override", files: []string{"ci/istio-values.yaml"}, topology: true,
		set: []map[string]any{{"envoyFilter": map[string]any{"bootstrapOverride": true}}}},
	{name: "istio-wasmplugin", files: []string{"ci/istio-values.yaml", "ci/shop-wasmplugins-values.yaml"}, topology: true},
	{name: "sqlite", set: []map[string]any{{
		"store":        map[string]any{"type": "sqlite", "sqlite": map[string]any{"persistence": map[string]any{"size": "5Gi", "storageClassName": "fast-ssd"}}},
		"eventService": map[string]any{"replicas": 1},
	}}},
	{name: "redis-cluster", set: []map[string]any{{
		"store": map[string]any{"type": "redisCluster", "redisCluster": map[string]any{"addresses": []any{"redis-0.redis:6379", "redis-1.redis:6379", "redis-2.redis:6379"}},
			"auth": map[string]any{"existingSecret": "redis-cluster-auth"}, "minReplicas": 1, "replicaTimeout": "500ms"},
	}}},
	{name: "external-redis", set: []map[string]any{{
		"store": map[string]any{"redis": map[string]any{"bundled": false, "address": "redis.data.svc.cluster.local:6379", "db": 3},
			"auth": map[string]any{"existingSecret": "redis-acl", "usernameKey": "user", "passwordKey": "pass"}},
	}}},
	{name: "service-monitors", set: []map[string]any{{
		"serviceMonitor": map[string]any{"enabled": true, "interval": "15s", "labels": map[string]any{"release": "prometheus"}},
		"telemetry":      map[string]any{"otlpEndpoint": ""},
	}}},
	{name: "namespaced-digests", set: []map[string]any{{
		"controlPlane":     map[string]any{"watchNamespace": "shop", "replicas": 2},
		"envoyFilter":      map[string]any{"namespaces": []any{"shop", "billing"}, "bootstrapOverride": true},
		"image":            map[string]any{"digest": "sha256:" + strings.Repeat("ab", 32)},
		"imagePullSecrets": []any{"ghcr-pull"},
		"networkPolicy":    map[string]any{"enabled": false},
		"eventService":     map[string]any{"podDisruptionBudget": map[string]any{"enabled": false}},
	}}},
	{name: "istio-without-identity", files: []string{"ci/istio-values.yaml"}, topology: true,
		set: []map[string]any{{"identity": map[string]any{"enabled": false}}}},
	{name: "wasmplugin-digest", files: []string{"ci/shop-wasmplugins-values.yaml"}, set: []map[string]any{{
		"wasmPlugin":     map[string]any{"image": map[string]any{"digest": "sha256:" + strings.Repeat("cd", 32)}},
		"serviceMonitor": map[string]any{"enabled": true},
	}}},
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(".")
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// values builds the user-supplied values of a set, as `helm template -f
// ... --set-file ... --set ...` would.
func (vs valueSet) values(t *testing.T) map[string]any {
	t.Helper()
	vals := map[string]any{}
	for _, f := range vs.files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		v, err := loader.LoadValues(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		vals = loader.MergeMaps(vals, v)
	}
	if vs.topology {
		raw, err := os.ReadFile("../../examples/topology.yaml")
		if err != nil {
			t.Fatal(err)
		}
		vals = loader.MergeMaps(vals, map[string]any{"controlPlane": map[string]any{"topology": string(raw)}})
	}
	for _, s := range vs.set {
		vals = loader.MergeMaps(vals, s)
	}
	return vals
}

// render renders the chart as `helm template angzarr . -n namespace` with
// user values vals, schema validation included. It returns the rendered
// templates and the values they saw (the chart's, overlaid with vals).
func render(ch *chart.Chart, vals map[string]any, namespace string) (map[string]string, map[string]any, error) {
	rv, err := util.ToRenderValues(ch, vals, common.ReleaseOptions{
		Name: "angzarr", Namespace: namespace, Revision: 1, IsInstall: true,
	}, nil)
	if err != nil {
		return nil, nil, err
	}
	out, err := engine.Render(ch, rv)
	if err != nil {
		return nil, nil, err
	}
	coalesced, err := rv.Table("Values")
	if err != nil {
		return nil, nil, err
	}
	return out, coalesced, nil
}

// object is one rendered document.
type object struct {
	template string // angzarr/templates/NAME.yaml
	raw      []byte // the document as JSON
	obj      any    // a runtime.Object, or *serviceMonitor
}

// serviceMonitor is the part of monitoring.coreos.com/v1 ServiceMonitor the
// chart uses. The Prometheus Operator's Go module is not a dependency, so
// this local struct stands in for it; decoding refuses any field it does
// not declare, so a misspelt or misplaced field still fails.
type serviceMonitor struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector struct {
			MatchNames []string `json:"matchNames"`
		} `json:"namespaceSelector"`
		Endpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path"`
			Interval string `json:"interval"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// decoder decodes strictly into client-go's and istio.io/client-go's types.
func decoder(t *testing.T) runtime.Decoder {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := istioscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return serializer.NewCodecFactory(s, serializer.EnableStrict).UniversalDeserializer()
}

// decodeAll splits every rendered template into documents and decodes each
// strictly; errors are reported against the template.
func decodeAll(t *testing.T, rendered map[string]string) []object {
	t.Helper()
	dec := decoder(t)
	var out []object
	for _, name := range slices.Sorted(maps.Keys(rendered)) {
		if !strings.HasSuffix(name, ".yaml") {
			continue
		}
		docs, err := yamldocs.Split([]byte(rendered[name]))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, d := range docs {
			i, doc, js := d.Index, d.YAML, d.JSON
			var tm metav1.TypeMeta
			if err := json.Unmarshal(js, &tm); err != nil {
				t.Fatal(err)
			}
			if tm.Kind == "ServiceMonitor" {
				sm := &serviceMonitor{}
				d := json.NewDecoder(bytes.NewReader(js))
				d.DisallowUnknownFields()
				if err := d.Decode(sm); err != nil {
					t.Errorf("%s doc %d: ServiceMonitor: %v", name, i, err)
					continue
				}
				if sm.APIVersion != "monitoring.coreos.com/v1" {
					t.Errorf("%s: ServiceMonitor apiVersion %q", name, sm.APIVersion)
				}
				out = append(out, object{template: name, raw: js, obj: sm})
				continue
			}
			obj, _, err := dec.Decode(doc, nil, nil)
			if err != nil {
				t.Errorf("%s doc %d: %v", name, i, err)
				continue
			}
			out = append(out, object{template: name, raw: js, obj: obj})
		}
	}
	return out
}

// specOf decodes a document's spec strictly into an istio.io/api message:
// the client-go types keep unknown spec fields, protojson refuses them.
func specOf(t *testing.T, o object, m proto.Message) {
	t.Helper()
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(o.raw, &doc); err != nil {
		t.Fatal(err)
	}
	if err := protojson.Unmarshal(doc["spec"], m); err != nil {
		t.Errorf("%s: spec: %v", o.template, err)
	}
}
