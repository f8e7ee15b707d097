package controlplane

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"github.com/angzarr-mesh/angzarr/internal/testutil"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// spanAttrs renders a span's attributes as strings.
func spanAttrs(s sdktrace.ReadOnlySpan) map[string]string {
	m := map[string]string{}
	for _, kv := range s.Attributes() {
		m[string(kv.Key)] = kv.Value.String()
	}
	return m
}

// findSpan waits until a span named name whose attributes include want
// has ended, and returns it.
func (tp *testPlane) findSpan(t *testing.T, name string, want map[string]string) sdktrace.ReadOnlySpan {
	t.Helper()
	var found sdktrace.ReadOnlySpan
	testutil.Eventually(t, name+" with "+fmt.Sprint(want), func() bool {
		for _, s := range tp.spans.GetSpans().Snapshots() {
			if s.Name() != name {
				continue
			}
			a, match := spanAttrs(s), true
			for k, v := range want {
				match = match && a[k] == v
			}
			if match {
				found = s
				return true
			}
		}
		return false
	})
	return found
}

// TestTracing: loading the topology file is a trace of
// controlplane.load_topology with controlplane.translate and, per node, a
// controlplane.publish as children, carrying the version, the topology's
// counts and each node's resource counts; a node's first request
// publishes to it; ACKs and NACKs are spans, a NACK with the error status
// and the proxy's message; a rejected topology's load is an error.
func TestTracing(t *testing.T) {
	checkLeaks(t)
	tp := startPlane(t, shopYAML(t), nil)
	shop := loadShop(t)
	v1 := tp.cp.Publisher().Version()
	itoa := strconv.Itoa

	load := tp.findSpan(t, spanLoadTopology, map[string]string{"source": "file", "version": v1, "outcome": "applied"})
	tr := tp.findSpan(t, spanTranslate, map[string]string{"version": v1})
	if a := spanAttrs(tr); tr.Parent().SpanID() != load.SpanContext().SpanID() || a["domains"] != itoa(len(shop.Domains)) ||
		a["sagas"] != itoa(len(shop.Sagas)) || a["outcome"] != "applied" {
		t.Errorf("translate span %v (parent %s), want a child of load_topology %s with domains %d", a, tr.Parent().SpanID(), load.SpanContext().SpanID(), len(shop.Domains))
	}

	envoy := adsStream(t, tp.conn, &core.Node{Id: "order", Cluster: "shop"})
	envoy.subscribe(resource.ClusterType)
	cds := envoy.next(resource.ClusterType, wait)
	envoy.ack(cds)
	first := tp.findSpan(t, spanPublish, map[string]string{"node.id": "order", "trigger": "node_connected"})
	if a := spanAttrs(first); a["version"] != v1 || a["node.class"] != "envoy/order" || a["resources.clusters"] != itoa(len(cds.GetResources())) ||
		a["resources.extension_configs"] != "1" || a["outcome"] != "applied" {
		t.Errorf("publish on connect: %v, want version %s and %d clusters", a, v1, len(cds.GetResources()))
	}
	tp.findSpan(t, spanACK, map[string]string{"node.id": "order", "type_url": resource.ClusterType, "version": cds.GetVersionInfo(),
		"nonce": cds.GetNonce(), "domain": "order", "delta": "false"})
	envoy.subscribe(resource.ExtensionConfigType, FilterName)
	ecds := envoy.next(resource.ExtensionConfigType, wait)
	envoy.ack(ecds)

	// A change: a new saga (a new cluster) and other retries.
	changed := bytes.Replace(shopYAML(t), []byte("maxRetries: 12"), []byte("maxRetries: 3"), 1)
	changed = append(changed, []byte(`  - name: audit
    address: audit.shop.svc.cluster.local:50051
    sources: [order, cart]
    targets: [customer]
`)...)
	writeFile(t, tp.topology, changed)
	up := envoy.next(resource.ExtensionConfigType, wait)
	cds2 := envoy.next(resource.ClusterType, wait)
	v2 := tp.cp.Publisher().Version()
	load2 := tp.findSpan(t, spanLoadTopology, map[string]string{"source": "file", "version": v2, "outcome": "applied"})
	for _, c := range []struct {
		name string
		want map[string]string
	}{
		{spanTranslate, map[string]string{"version": v2, "domains": itoa(len(shop.Domains)), "sagas": itoa(len(shop.Sagas) + 1), "outcome": "applied"}},
		{spanPublish, map[string]string{"node.id": "order", "trigger": "topology", "version": v2, "node.class": "envoy/order",
			"resources.clusters": itoa(len(cds2.GetResources())), "resources.listeners": "1", "resources.extension_configs": "1", "outcome": "applied"}},
		{spanPublishFanout, map[string]string{"version": v2, "subscriptions": itoa(len(shop.Sagas) + len(shop.Projectors) + len(shop.ProcessManagers) + 1)}},
	} {
		s := tp.findSpan(t, c.name, c.want)
		if s.Parent().SpanID() != load2.SpanContext().SpanID() || s.SpanContext().TraceID() != load2.SpanContext().TraceID() {
			t.Errorf("%s is not a child of the change's load_topology", c.name)
		}
	}
	if len(cds2.GetResources()) != len(cds.GetResources())+1 {
		t.Errorf("clusters %d after adding a saga, were %d", len(cds2.GetResources()), len(cds.GetResources()))
	}

	// The proxy rejects the new filter configuration.
	envoy.nack(up, "wasm: failed to load module")
	nack := tp.findSpan(t, spanNACK, map[string]string{"node.id": "order", "type_url": resource.ExtensionConfigType, "domain": "order",
		"nonce": up.GetNonce(), "version": ecds.GetVersionInfo(), "rejected_version": up.GetVersionInfo()})
	if nack.Status().Code != codes.Error || nack.Status().Description != "wasm: failed to load module" {
		t.Errorf("NACK span status %v, want an error with the proxy's message", nack.Status())
	}
	var exception bool
	for _, e := range nack.Events() {
		for _, kv := range e.Attributes {
			exception = exception || e.Name == "exception" && kv.Value.String() == "wasm: failed to load module"
		}
	}
	if !exception {
		t.Errorf("NACK span events %v lack the exception with the proxy's message", nack.Events())
	}

	// A topology that does not validate: rejected while loading.
	writeFile(t, tp.topology, bytes.Replace(changed, []byte("targets: [customer]\n"), []byte("targets: [ghost]\n"), 1))
	bad := tp.findSpan(t, spanLoadTopology, map[string]string{"source": "file", "outcome": "rejected"})
	if bad.Status().Code != codes.Error || !strings.Contains(bad.Status().Description, `unknown domain "ghost"`) {
		t.Errorf("load_topology of a rejected topology: status %v", bad.Status())
	}
}

// TestTranslateRejectedSpan: a topology that reaches the publisher and
// does not translate (as a merge of Kubernetes workloads can) ends its
// controlplane.translate span with the error and publishes nothing.
func TestTranslateRejectedSpan(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	tracer := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	t.Cleanup(func() { _ = tracer.Shutdown(context.Background()) })
	p := newPublisher(slog.New(slog.DiscardHandler), Options{WasmFile: testWasmFile}, mustMetrics(t), tracer.Tracer(tracerName))
	bad := loadShop(t)
	bad.Sagas[0].Targets = []string{"ghost"}
	if _, err := p.Apply(context.Background(), bad); err == nil {
		t.Fatal("a saga targeting an unknown domain was applied")
	}
	got := spans.GetSpans().Snapshots()
	if len(got) != 1 || got[0].Name() != spanTranslate || got[0].Status().Code != codes.Error ||
		!strings.Contains(got[0].Status().Description, `unknown domain "ghost"`) || spanAttrs(got[0])["outcome"] != "rejected" {
		t.Fatalf("spans of a rejected translation: %v", spans.GetSpans())
	}
}
