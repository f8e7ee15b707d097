// Package observability_test checks the observability install: every
// document of otel-collector.yaml decodes strictly into its Kubernetes type
// (client-go's scheme, as istio/istio_test.go does), the Collector
// configuration in the ConfigMap is consistent (every pipeline names
// defined components, the OTLP ports are the Service's, the scrapes find
// the event service and control plane of istio/), and every PromQL
// expression of the Grafana dashboard uses only metric names that
// docs/observability.md documents, so renaming a metric without updating
// the dashboard (or the page) fails here.
package observability_test

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/angzarr-mesh/angzarr/internal/testutil/yamldocs"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

const (
	collectorFile = "otel-collector.yaml"
	dashboardFile = "grafana-dashboard.json"
	docsFile      = "../../docs/observability.md"
	namespace     = "angzarr-system"
)

// decode reads every YAML document of file strictly into its client-go type.
func decode(t *testing.T, file string) []runtime.Object {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	dec := serializer.NewCodecFactory(s, serializer.EnableStrict).UniversalDeserializer()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := yamldocs.Split(data)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var out []runtime.Object
	for _, d := range docs {
		i, doc := d.Index, d.YAML
		obj, _, err := dec.Decode(doc, nil, nil)
		if err != nil {
			t.Errorf("%s doc %d: %v", file, i, err)
			continue
		}
		out = append(out, obj)
	}
	if len(out) == 0 {
		t.Fatalf("%s: no documents", file)
	}
	return out
}

// install is otel-collector.yaml, decoded.
type install struct {
	deployment *appsv1.Deployment
	service    *corev1.Service
	configMap  *corev1.ConfigMap
	account    *corev1.ServiceAccount
	role       *rbacv1.ClusterRole
	binding    *rbacv1.ClusterRoleBinding
}

func load(t *testing.T) *install {
	t.Helper()
	in := &install{}
	for _, o := range decode(t, collectorFile) {
		if n, ok := o.(interface{ GetNamespace() string }); ok && n.GetNamespace() != "" && n.GetNamespace() != namespace {
			t.Errorf("%T in namespace %q, want %s", o, n.GetNamespace(), namespace)
		}
		dup := false
		switch v := o.(type) {
		case *appsv1.Deployment:
			dup, in.deployment = in.deployment != nil, v
		case *corev1.Service:
			dup, in.service = in.service != nil, v
		case *corev1.ConfigMap:
			dup, in.configMap = in.configMap != nil, v
		case *corev1.ServiceAccount:
			dup, in.account = in.account != nil, v
		case *rbacv1.ClusterRole:
			dup, in.role = in.role != nil, v
		case *rbacv1.ClusterRoleBinding:
			dup, in.binding = in.binding != nil, v
		default:
			t.Errorf("unexpected kind %T", v)
		}
		if dup {
			t.Errorf("two %T documents", o)
		}
	}
	if in.deployment == nil || in.service == nil || in.configMap == nil || in.account == nil || in.role == nil || in.binding == nil {
		t.Fatalf("want a Deployment, Service, ConfigMap, ServiceAccount, ClusterRole and ClusterRoleBinding: %+v", in)
	}
	return in
}

// collectorConfig is the part of the Collector's configuration checked here.
type collectorConfig struct {
	Extensions map[string]any `json:"extensions"`
	Receivers  map[string]any `json:"receivers"`
	Processors map[string]any `json:"processors"`
	Exporters  map[string]any `json:"exporters"`
	Service    struct {
		Extensions []string `json:"extensions"`
		Pipelines  map[string]struct {
			Receivers  []string `json:"receivers"`
			Processors []string `json:"processors"`
			Exporters  []string `json:"exporters"`
		} `json:"pipelines"`
	} `json:"service"`
}

// configOf parses the Collector configuration that the Deployment's
// --config flag points at, through the mounted ConfigMap.
func configOf(t *testing.T, in *install) (collectorConfig, map[string]any) {
	t.Helper()
	d := in.deployment
	if len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("%d containers", len(d.Spec.Template.Spec.Containers))
	}
	c := d.Spec.Template.Spec.Containers[0]
	var path string
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--config="); ok {
			path = v
		}
	}
	key := ""
	for _, m := range c.VolumeMounts {
		rest, ok := strings.CutPrefix(path, m.MountPath+"/")
		if !ok {
			continue
		}
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name == m.Name && v.ConfigMap != nil && v.ConfigMap.Name == in.configMap.Name {
				key = rest
			}
		}
	}
	if key == "" {
		t.Fatalf("--config=%s is not in the mounted ConfigMap %s", path, in.configMap.Name)
	}
	raw, ok := in.configMap.Data[key]
	if !ok {
		t.Fatalf("ConfigMap %s has no key %s", in.configMap.Name, key)
	}
	// Strict YAML (no duplicate keys), then the parts checked here.
	js, err := yaml.YAMLToJSONStrict([]byte(raw))
	if err != nil {
		t.Fatalf("collector config: %v", err)
	}
	var cfg collectorConfig
	if err := json.Unmarshal(js, &cfg); err != nil {
		t.Fatalf("collector config: %v", err)
	}
	var generic map[string]any
	if err := json.Unmarshal(js, &generic); err != nil {
		t.Fatal(err)
	}
	return cfg, generic
}

// TestCollectorManifests: the documents decode strictly, the Service
// selects the Deployment and its target ports are container ports, and the
// service account has pod discovery.
func TestCollectorManifests(t *testing.T) {
	in := load(t)
	d, svc := in.deployment, in.service
	for k, v := range d.Spec.Selector.MatchLabels {
		if d.Spec.Template.Labels[k] != v {
			t.Errorf("Deployment selector %s=%s does not match its template", k, v)
		}
	}
	for k, v := range svc.Spec.Selector {
		if d.Spec.Template.Labels[k] != v {
			t.Errorf("Service selector %s=%s does not select the Deployment", k, v)
		}
	}
	c := d.Spec.Template.Spec.Containers[0]
	img := c.Image
	name, tag, ok := strings.Cut(img, ":")
	if name != "otel/opentelemetry-collector-contrib" || !ok || !regexp.MustCompile(`^\d+\.\d+\.\d+$`).MatchString(tag) {
		t.Errorf("image %s: want otel/opentelemetry-collector-contrib with a pinned x.y.z tag", img)
	}
	ports := map[int32]bool{}
	for _, p := range svc.Spec.Ports {
		ports[p.Port] = true
		found := false
		for _, cp := range c.Ports {
			if cp.Name == p.TargetPort.StrVal || cp.ContainerPort == p.TargetPort.IntVal {
				found = cp.ContainerPort == p.Port
			}
		}
		if !found {
			t.Errorf("Service port %s: target %s is not the container port %d", p.Name, p.TargetPort.String(), p.Port)
		}
	}
	if !ports[4317] || !ports[4318] {
		t.Errorf("Service ports %v, want OTLP gRPC 4317 and HTTP 4318", ports)
	}
	if d.Spec.Template.Spec.ServiceAccountName != in.account.Name {
		t.Errorf("Deployment runs as %q, want %s", d.Spec.Template.Spec.ServiceAccountName, in.account.Name)
	}
	b := in.binding
	if b.RoleRef.Kind != "ClusterRole" || b.RoleRef.Name != in.role.Name ||
		!slices.ContainsFunc(b.Subjects, func(s rbacv1.Subject) bool {
			return s.Kind == "ServiceAccount" && s.Name == in.account.Name && s.Namespace == namespace
		}) {
		t.Errorf("ClusterRoleBinding %s does not bind %s to %s", b.Name, in.role.Name, in.account.Name)
	}
	canPods := false
	for _, r := range in.role.Rules {
		if slices.Contains(r.APIGroups, "") && slices.Contains(r.Resources, "pods") &&
			slices.Contains(r.Verbs, "list") && slices.Contains(r.Verbs, "watch") {
			canPods = true
		}
	}
	if !canPods {
		t.Error("the collector cannot list/watch pods (Kubernetes service discovery)")
	}
}

// TestCollectorConfig: every pipeline names defined components, memory
// limiter first and batch last; the OTLP receiver listens on the
// Service's ports; the exporters point at Tempo and Prometheus.
func TestCollectorConfig(t *testing.T) {
	in := load(t)
	cfg, _ := configOf(t, in)
	if len(cfg.Service.Pipelines) == 0 {
		t.Fatal("no pipelines")
	}
	for _, e := range cfg.Service.Extensions {
		if _, ok := cfg.Extensions[e]; !ok {
			t.Errorf("service extension %q is not defined", e)
		}
	}
	used := map[string]bool{}
	for name, p := range cfg.Service.Pipelines {
		kind, _, _ := strings.Cut(name, "/")
		if kind != "traces" && kind != "metrics" && kind != "logs" {
			t.Errorf("pipeline %q: unknown signal", name)
		}
		if len(p.Receivers) == 0 || len(p.Exporters) == 0 {
			t.Errorf("pipeline %s: needs receivers and exporters", name)
		}
		for _, c := range []struct {
			what  string
			names []string
			defs  map[string]any
		}{{"receiver", p.Receivers, cfg.Receivers}, {"processor", p.Processors, cfg.Processors}, {"exporter", p.Exporters, cfg.Exporters}} {
			for _, n := range c.names {
				if _, ok := c.defs[n]; !ok {
					t.Errorf("pipeline %s: %s %q is not defined", name, c.what, n)
				}
				used[c.what+"/"+n] = true
			}
		}
		if len(p.Processors) < 2 || p.Processors[0] != "memory_limiter" || p.Processors[len(p.Processors)-1] != "batch" {
			t.Errorf("pipeline %s: processors %v, want memory_limiter first and batch last", name, p.Processors)
		}
	}
	for _, c := range []struct {
		what string
		defs map[string]any
	}{{"receiver", cfg.Receivers}, {"processor", cfg.Processors}, {"exporter", cfg.Exporters}} {
		for n := range c.defs {
			if !used[c.what+"/"+n] {
				t.Errorf("%s %q is defined but in no pipeline", c.what, n)
			}
		}
	}
	if got := cfg.Service.Pipelines["traces"].Receivers; !slices.Contains(got, "otlp") {
		t.Errorf("traces pipeline receivers %v, want otlp", got)
	}
	if got := cfg.Service.Pipelines["metrics"].Receivers; !slices.Contains(got, "prometheus") {
		t.Errorf("metrics pipeline receivers %v, want prometheus", got)
	}

	// OTLP endpoints = Service ports.
	var otlp struct {
		Protocols struct {
			GRPC struct{ Endpoint string } `json:"grpc"`
			HTTP struct{ Endpoint string } `json:"http"`
		} `json:"protocols"`
	}
	remarshal(t, cfg.Receivers["otlp"], &otlp)
	if otlp.Protocols.GRPC.Endpoint != "0.0.0.0:4317" || otlp.Protocols.HTTP.Endpoint != "0.0.0.0:4318" {
		t.Errorf("otlp receiver %+v, want gRPC 0.0.0.0:4317 and HTTP 0.0.0.0:4318", otlp.Protocols)
	}

	var tempo struct{ Endpoint string }
	remarshal(t, cfg.Exporters["otlp/tempo"], &tempo)
	if tempo.Endpoint != "tempo.observability:4317" {
		t.Errorf("trace exporter endpoint %q", tempo.Endpoint)
	}
	var prw struct {
		Endpoint          string
		AddMetricSuffixes *bool `json:"add_metric_suffixes"`
	}
	remarshal(t, cfg.Exporters["prometheusremotewrite"], &prw)
	if prw.Endpoint != "http://prometheus.observability:9090/api/v1/write" {
		t.Errorf("remote write endpoint %q", prw.Endpoint)
	}
	// With suffixes added, the filter's counters would get a _total that
	// docs/observability.md (and the dashboard) do not have.
	if prw.AddMetricSuffixes == nil || *prw.AddMetricSuffixes {
		t.Error("prometheusremotewrite must set add_metric_suffixes: false (names as scraped)")
	}
	if !slices.Contains(cfg.Service.Pipelines["traces"].Exporters, "otlp/tempo") ||
		!slices.Contains(cfg.Service.Pipelines["metrics"].Exporters, "prometheusremotewrite") {
		t.Error("traces must go to otlp/tempo and metrics to prometheusremotewrite")
	}
}

func remarshal(t *testing.T, in, out any) {
	t.Helper()
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
}

// scrapeJob is the part of a Prometheus scrape config checked here.
type scrapeJob struct {
	JobName     string `json:"job_name"`
	MetricsPath string `json:"metrics_path"`
	SD          []struct {
		Role       string `json:"role"`
		Namespaces struct {
			Names []string `json:"names"`
		} `json:"namespaces"`
	} `json:"kubernetes_sd_configs"`
	Relabel       []relabel `json:"relabel_configs"`
	MetricRelabel []relabel `json:"metric_relabel_configs"`
}

type relabel struct {
	SourceLabels []string `json:"source_labels"`
	Regex        string   `json:"regex"`
	Action       string   `json:"action"`
	TargetLabel  string   `json:"target_label"`
	Replacement  *string  `json:"replacement"`
}

// keeps is the regex of the job's keep rule on label.
func (j scrapeJob) keeps(label string) string {
	for _, r := range j.Relabel {
		if r.Action == "keep" && slices.Equal(r.SourceLabels, []string{label}) {
			return r.Regex
		}
	}
	return ""
}

// TestScrapeTargets: the scrape jobs find the event service's and the
// control plane's metrics ports as istio/eventsvc.yaml and
// istio/controlplane.yaml declare them, and the sidecars' 15090; the
// relabelling that copies the filter's domain and outcome into labels
// works on documented names.
func TestScrapeTargets(t *testing.T) {
	in := load(t)
	_, generic := configOf(t, in)
	var prom struct {
		TrimMetricSuffixes bool `json:"trim_metric_suffixes"`
		Config             struct {
			ScrapeConfigs []scrapeJob `json:"scrape_configs"`
		} `json:"config"`
	}
	remarshal(t, generic["receivers"].(map[string]any)["prometheus"], &prom)
	if prom.TrimMetricSuffixes {
		t.Error("trim_metric_suffixes must be false (names as documented)")
	}
	jobs := map[string]scrapeJob{}
	for _, j := range prom.Config.ScrapeConfigs {
		jobs[j.JobName] = j
		for _, r := range append(slices.Clone(j.Relabel), j.MetricRelabel...) {
			if _, err := regexp.Compile("^(?:" + r.Regex + ")$"); err != nil {
				t.Errorf("job %s: regex %q: %v", j.JobName, r.Regex, err)
			}
			if r.Replacement != nil && strings.Contains(*r.Replacement, "$") && !strings.Contains(*r.Replacement, "$$") {
				t.Errorf("job %s: replacement %q: the Collector expands $; write $$", j.JobName, *r.Replacement)
			}
		}
	}

	for _, want := range []struct{ job, file, app string }{
		{"angzarr-eventsvc", "../eventsvc.yaml", "angzarr-eventsvc"},
		{"angzarr-controlplane", "../controlplane.yaml", "angzarr-controlplane"},
	} {
		j, ok := jobs[want.job]
		if !ok {
			t.Errorf("no scrape job %s", want.job)
			continue
		}
		if j.MetricsPath != "/metrics" || len(j.SD) != 1 || j.SD[0].Role != "pod" || !slices.Equal(j.SD[0].Namespaces.Names, []string{namespace}) {
			t.Errorf("job %s: want /metrics from pods in %s: %+v", want.job, namespace, j)
		}
		app, port := j.keeps("__meta_kubernetes_pod_label_app"), j.keeps("__meta_kubernetes_pod_container_port_name")
		var dep *appsv1.Deployment
		for _, o := range decode(t, want.file) {
			if d, ok := o.(*appsv1.Deployment); ok && d.Name == want.app {
				dep = d
			}
		}
		if dep == nil {
			t.Fatalf("%s: no Deployment %s", want.file, want.app)
		}
		if dep.Namespace != namespace || dep.Spec.Template.Labels["app"] != app {
			t.Errorf("job %s keeps app=%q; %s's pods are app=%q in %s", want.job, app, want.file, dep.Spec.Template.Labels["app"], dep.Namespace)
		}
		var metricsPort int32
		for _, cp := range dep.Spec.Template.Spec.Containers[0].Ports {
			if cp.Name == port {
				metricsPort = cp.ContainerPort
			}
		}
		listen := ""
		for _, a := range dep.Spec.Template.Spec.Containers[0].Args {
			if v, ok := strings.CutPrefix(a, "--metrics-listen="); ok {
				listen = v
			}
		}
		if metricsPort == 0 || !strings.HasSuffix(listen, fmt.Sprintf(":%d", metricsPort)) {
			t.Errorf("job %s keeps port %q: %s has it as %d, --metrics-listen=%s", want.job, port, want.file, metricsPort, listen)
		}
	}

	sc, ok := jobs["angzarr-envoy-sidecars"]
	if !ok {
		t.Fatal("no scrape job for the Envoy sidecars")
	}
	if sc.MetricsPath != "/stats/prometheus" || sc.keeps("__meta_kubernetes_pod_container_port_number") != "15090" ||
		sc.keeps("__meta_kubernetes_pod_container_name") != "istio-proxy" {
		t.Errorf("sidecar job: want istio-proxy's /stats/prometheus on 15090: %+v", sc)
	}

	// The label copies: on documented example names they yield the domain
	// and outcome; a metric without a rule gets no label.
	labels := func(name string) map[string]string {
		out := map[string]string{}
		for _, r := range sc.MetricRelabel {
			if r.Action != "" && r.Action != "replace" || !slices.Equal(r.SourceLabels, []string{"__name__"}) {
				continue
			}
			m := regexp.MustCompile("^(?:" + r.Regex + ")$").FindStringSubmatch(name)
			if len(m) < 2 {
				continue
			}
			out[r.TargetLabel] = m[1] // the default replacement, $1
		}
		return out
	}
	for name, want := range map[string]map[string]string{
		"angzarr_commands_order_ok":                     {"domain": "order", "outcome": "ok"},
		"angzarr_commands_order_summary_sync_failed":    {"domain": "order_summary", "outcome": "sync_failed"},
		"angzarr_commands_cart_too_large":               {"domain": "cart", "outcome": "too_large"},
		"angzarr_commands_cart_cascade_refused":         {"domain": "cart", "outcome": "cascade_refused"},
		"angzarr_command_latency_us_cart_bucket":        {"domain": "cart"},
		"angzarr_command_latency_us_cart_count":         {"domain": "cart"},
		"angzarr_conflicts_inventory":                   {"domain": "inventory"},
		"angzarr_retries_inventory":                     {"domain": "inventory"},
		"angzarr_sync_projector_calls_order_summary_ok": {},
	} {
		if got := labels(name); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: relabelled to %v, want %v", name, got, want)
		}
		if !documented(t).matchesExample(name) {
			t.Errorf("%s is not a documented name", name)
		}
	}
}

// docNames is the list of metric names of docs/observability.md: exact
// names, and families whose name has <placeholders> (the filter's).
type docNames struct {
	exact    map[string]bool           // with _bucket/_sum/_count for histograms
	families map[string]*regexp.Regexp // prefix before the first placeholder -> whole name pattern
	hist     map[string]bool           // family prefix -> histogram
}

var metricToken = regexp.MustCompile("`((?:angzarr|rpc|wasmhost)_[a-z0-9_<>|\\\\]+)`")

// documented extracts the metric names from the tables of
// docs/observability.md (rows whose type column says counter, histogram or
// gauge) and the wasmhost_* names listed in the text.
func documented(t *testing.T) *docNames {
	t.Helper()
	raw, err := os.ReadFile(docsFile)
	if err != nil {
		t.Fatal(err)
	}
	d := &docNames{exact: map[string]bool{}, families: map[string]*regexp.Regexp{}, hist: map[string]bool{}}
	add := func(name string, hist bool) {
		name = strings.ReplaceAll(name, `\|`, "|")
		names := []string{name}
		if hist {
			names = append(names, name+"_bucket", name+"_sum", name+"_count")
		}
		prefix, _, isFamily := strings.Cut(name, "<")
		if !isFamily {
			for _, n := range names {
				d.exact[n] = true
			}
			return
		}
		// <a|b> is one of the alternatives; any other placeholder is a
		// name segment (a topology name, or an outcome).
		var pat strings.Builder
		rest := name
		for {
			lit, after, ok := strings.Cut(rest, "<")
			pat.WriteString(regexp.QuoteMeta(lit))
			if !ok {
				break
			}
			inner, tail, _ := strings.Cut(after, ">")
			if strings.Contains(inner, "|") {
				pat.WriteString("(?:" + inner + ")")
			} else {
				pat.WriteString("[a-z0-9_]+")
			}
			rest = tail
		}
		if hist {
			pat.WriteString("(?:_bucket|_sum|_count)?")
		}
		d.families[prefix] = regexp.MustCompile("^" + pat.String() + "$")
		d.hist[prefix] = hist
	}
	inMetrics := false
	for line := range strings.SplitSeq(string(raw), "\n") {
		if strings.HasPrefix(line, "## ") {
			inMetrics = strings.Contains(line, "Metrics") || strings.Contains(line, "metrics")
		}
		if !inMetrics {
			continue
		}
		if strings.HasPrefix(line, "|") {
			cells := strings.Split(line, " | ")
			row := strings.ToLower(line)
			if !strings.Contains(row, "counter") && !strings.Contains(row, "histogram") && !strings.Contains(row, "gauge") {
				continue
			}
			hist := strings.Contains(row, "| histogram")
			// The name columns: the first (storage, fan-out, gRPC) or, in
			// the filter's table, the second (the Prometheus name).
			for _, cell := range cells[:min(2, len(cells))] {
				for _, m := range metricToken.FindAllStringSubmatch(cell, -1) {
					add(m[1], hist)
				}
			}
			continue
		}
		for _, m := range metricToken.FindAllStringSubmatch(line, -1) {
			if strings.HasPrefix(m[1], "wasmhost_") {
				add(m[1], false)
			}
		}
	}
	return d
}

func (d *docNames) matchesExample(name string) bool {
	if d.exact[name] {
		return true
	}
	for _, re := range d.families {
		if re.MatchString(name) {
			return true
		}
	}
	return false
}

// TestDocumentedNames: the extraction finds the names the dashboard is
// built on, so a page rewrite that loses them fails loudly rather than
// silently passing every expression.
func TestDocumentedNames(t *testing.T) {
	d := documented(t)
	for _, n := range []string{
		"angzarr_storage_duration_seconds_bucket", "angzarr_events_stored_total", "angzarr_events_loaded_total",
		"angzarr_snapshots_stored_total", "angzarr_saga_duration_seconds_bucket", "angzarr_saga_retry_total",
		"angzarr_saga_compensation_total", "angzarr_projector_duration_seconds_bucket",
		"angzarr_bus_publish_duration_seconds_bucket", "angzarr_fanout_deliveries_total", "rpc_server_call_duration_seconds_count",
		"wasmhost_streams_total",
	} {
		if !d.exact[n] {
			t.Errorf("%s not extracted from %s", n, docsFile)
		}
	}
	for _, p := range []string{"angzarr_commands_", "angzarr_command_latency_us_", "angzarr_conflicts_", "angzarr_retries_"} {
		if d.families[p] == nil {
			t.Errorf("family %s<…> not extracted from %s", p, docsFile)
		}
	}
	if !d.hist["angzarr_command_latency_us_"] || d.hist["angzarr_commands_"] {
		t.Error("histogram families misread")
	}
	if d.exact["angzarr_events_stored_total_bucket"] {
		t.Error("a counter got histogram series")
	}
}

type dashboard struct {
	SchemaVersion int     `json:"schemaVersion"`
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query string `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource json.RawMessage `json:"datasource"`
	Panels     []panel         `json:"panels"`
	GridPos    struct{ H, W, X, Y int }
	Targets    []struct {
		RefID      string          `json:"refId"`
		Expr       string          `json:"expr"`
		Datasource json.RawMessage `json:"datasource"`
	} `json:"targets"`
}

func loadDashboard(t *testing.T) (dashboard, []panel) {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	var all []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			all = append(all, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return d, all
}

// TestDashboardStructure: schema version, the datasource variable, unique
// panel ids, every query on ${datasource}, the rows.
func TestDashboardStructure(t *testing.T) {
	d, all := loadDashboard(t)
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d, want >= 36", d.SchemaVersion)
	}
	if d.UID == "" || d.Title == "" {
		t.Error("uid and title required")
	}
	hasVar := slices.ContainsFunc(d.Templating.List, func(v struct {
		Name  string `json:"name"`
		Type  string `json:"type"`
		Query string `json:"query"`
	}) bool {
		return v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus"
	})
	if !hasVar {
		t.Error(`no "datasource" variable of type datasource, query prometheus`)
	}
	ids := map[int]string{}
	var rows []string
	for _, p := range all {
		if p.ID <= 0 {
			t.Errorf("panel %q has no id", p.Title)
		}
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if p.Type == "row" {
			rows = append(rows, p.Title)
			continue
		}
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v", p.Title, p.GridPos)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, ds := range append([]json.RawMessage{p.Datasource}, func() (r []json.RawMessage) {
			for _, tg := range p.Targets {
				r = append(r, tg.Datasource)
			}
			return
		}()...) {
			var v struct{ Type, UID string }
			if err := json.Unmarshal(ds, &v); err != nil || v.Type != "prometheus" || v.UID != "${datasource}" {
				t.Errorf("panel %q: datasource %s, want prometheus ${datasource}", p.Title, ds)
			}
		}
	}
	for _, want := range []string{"Command pipeline", "Storage", "Sagas", "Projectors", "Fan-out lag"} {
		if !slices.ContainsFunc(rows, func(r string) bool { return strings.HasPrefix(r, want) }) {
			t.Errorf("no row %q (rows %q)", want, rows)
		}
	}
}

var (
	nameMatcher = regexp.MustCompile(`__name__\s*(=~|=|!=|!~)\s*"([^"]*)"`)
	// A metric name in PromQL: an identifier with one of our prefixes that
	// is not inside a string (strings are removed first).
	identifier = regexp.MustCompile(`\b(?:angzarr|rpc|wasmhost)_[A-Za-z0-9_:]*`)
	str        = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
)

// TestDashboardMetricNames: every expression uses only documented names:
// a plain name must be in the docs' list (histograms with _bucket, _sum,
// _count), a {__name__=~"P.+"} matcher must select a documented family
// <P><placeholder>… (or its _bucket series); and every family the brief
// asks for is on the dashboard.
func TestDashboardMetricNames(t *testing.T) {
	docs := documented(t)
	_, all := loadDashboard(t)
	used := map[string]bool{}
	for _, p := range all {
		for _, tg := range p.Targets {
			where := fmt.Sprintf("panel %q %s", p.Title, tg.RefID)
			names := 0
			for _, m := range nameMatcher.FindAllStringSubmatch(tg.Expr, -1) {
				names++
				if m[1] != "=~" {
					if !docs.exact[m[2]] {
						t.Errorf("%s: __name__%s%q is not a documented metric", where, m[1], m[2])
					}
					used[m[2]] = true
					continue
				}
				ok := false
				for prefix := range docs.families {
					suffixes := []string{""}
					if docs.hist[prefix] {
						suffixes = append(suffixes, "_bucket", "_sum", "_count")
					}
					for _, s := range suffixes {
						if m[2] == prefix+".+"+s {
							ok = true
							used[prefix+"<>"+s] = true
						}
					}
				}
				if !ok {
					t.Errorf("%s: __name__=~%q selects no documented family", where, m[2])
				}
			}
			for _, n := range identifier.FindAllString(str.ReplaceAllString(tg.Expr, `""`), -1) {
				names++
				if !docs.exact[n] {
					t.Errorf("%s: %s is not a documented metric name (%s)", where, n, docsFile)
				}
				used[n] = true
			}
			if names == 0 {
				t.Errorf("%s: no metric in %q", where, tg.Expr)
			}
		}
	}
	for _, want := range []string{
		"angzarr_commands_<>", "angzarr_command_latency_us_<>_bucket", "angzarr_conflicts_<>", "angzarr_retries_<>",
		"angzarr_storage_duration_seconds_bucket", "angzarr_events_stored_total", "angzarr_events_loaded_total",
		"angzarr_snapshots_stored_total", "angzarr_saga_duration_seconds_bucket", "angzarr_saga_retry_total",
		"angzarr_saga_compensation_total", "angzarr_projector_duration_seconds_bucket",
		"angzarr_bus_publish_duration_seconds_bucket",
	} {
		if !used[want] {
			t.Errorf("the dashboard does not show %s", want)
		}
	}
}
