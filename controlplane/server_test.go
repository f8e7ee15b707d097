package controlplane

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/goleak"

	"github.com/angzarr-mesh/angzarr/controlplane/xdsclient"
	"github.com/angzarr-mesh/angzarr/internal/testutil"
	"github.com/angzarr-mesh/angzarr/proto/angzarr"
)

const wait = 10 * time.Second

// TestXDSEndToEnd runs the control plane on a real gRPC listener and talks
// to it as proxies do: a standalone Envoy for the order domain over ADS, an
// Istio sidecar over plain ECDS, and the event service over ADS for the
// fan-out subscriptions. Each receives its resources and ACKs; a saved
// topology change is pushed live; a NACK is logged and counted; an invalid
// topology is rejected while the last good one keeps serving.
func TestXDSEndToEnd(t *testing.T) {
	checkLeaks(t)
	tp := startPlane(t, shopYAML(t), nil)
	v1 := tp.cp.Publisher().Version()

	// A standalone Envoy beside the order logic (node id = workload).
	envoy := adsStream(t, tp.conn, &core.Node{Id: "order", Cluster: "shop"})
	envoy.subscribe(resource.ClusterType)
	cds := envoy.next(resource.ClusterType, wait)
	if got, want := resourceNames(t, cds), []string{"angzarr-eventsvc", "angzarr-logic", "angzarr-projector-order-summary",
		"angzarr-saga-cancellation", "angzarr-saga-fulfillment", "angzarr-saga-loyalty-earn",
		"angzarr-coordinator-customer", "angzarr-coordinator-fulfillment", "angzarr-coordinator-inventory",
		"angzarr-coordinator-order"}; !sameSet(got, want) { // the checkout PM fed by the order targets orders too
		t.Errorf("clusters %v, want %v", got, want)
	}
	envoy.ack(cds)
	envoy.subscribe(resource.ListenerType)
	lds := envoy.next(resource.ListenerType, wait)
	if got := resourceNames(t, lds); !sameSet(got, []string{ListenerIngress}) {
		t.Errorf("listeners %v", got)
	}
	envoy.ack(lds)
	envoy.subscribe(resource.ExtensionConfigType, FilterName)
	ecds := envoy.next(resource.ExtensionConfigType, wait)
	pc := pluginOf(t, ecds, FilterName)
	if !slices.Equal(pc.Domains, []string{"order"}) || pc.MaxRetries != 12 || pc.BusinessLogicCluster != ClusterLogic {
		t.Errorf("plugin configuration %+v", pc)
	}
	envoy.ack(ecds)
	envoy.subscribe(resource.RouteType, ListenerIngress)
	rds := envoy.next(resource.RouteType, wait)
	if got := resourceNames(t, rds); !sameSet(got, []string{ListenerIngress}) {
		t.Errorf("routes %v", got)
	}
	envoy.ack(rds)

	// An Istio sidecar of the cart Deployment: ECDS only, Istio's clusters.
	sidecar := ecdsStream(t, tp.conn, istioNode("cart-7d9f-x2", "shop", "cart", nil))
	sidecar.subscribe(resource.ExtensionConfigType, FilterName)
	ie := sidecar.next(resource.ExtensionConfigType, wait)
	ipc := pluginOf(t, ie, FilterName)
	if !slices.Equal(ipc.Domains, []string{"cart"}) ||
		ipc.EventServiceCluster != "outbound|1313||angzarr-eventsvc.angzarr-system.svc.cluster.local" ||
		ipc.BusinessLogicCluster != IstioLogicCluster(50051) {
		t.Errorf("istio plugin configuration %+v", ipc)
	}
	sidecar.ack(ie)

	// A sidecar of a workload without a domain gets pass-through.
	other := ecdsStream(t, tp.conn, istioNode("web-1", "shop", "web", nil))
	other.subscribe(resource.ExtensionConfigType, FilterName)
	oe := other.next(resource.ExtensionConfigType, wait)
	if p := pluginOf(t, oe, FilterName); !p.PassThrough() {
		t.Errorf("workload without a domain: %+v, want pass-through", p)
	}
	other.ack(oe)

	// The event service's fan-out subscriptions.
	eventsvc := adsStream(t, tp.conn, &core.Node{Id: "angzarr-eventsvc-0"})
	eventsvc.subscribe(SubscriptionTypeURL)
	fan := eventsvc.next(SubscriptionTypeURL, wait)
	subs := map[string]*angzarr.Subscription{}
	for _, a := range fan.GetResources() {
		s := &angzarr.Subscription{}
		if err := a.UnmarshalTo(s); err != nil {
			t.Fatal(err)
		}
		subs[s.GetName()] = s
	}
	if len(subs) != 5 || !subs["order-summary"].GetSynchronous() ||
		!slices.Equal(subs["cancellation"].GetTargetDomains(), []string{"customer", "inventory"}) {
		t.Errorf("subscriptions %v", subs)
	}
	eventsvc.ack(fan)
	eventsvc.subscribe(FanoutTypeURL)
	whole := eventsvc.next(FanoutTypeURL, wait)
	if got := fanoutNames(t, whole); !slices.Equal(got, []string{"cancellation", "checkout", "fulfillment", "loyalty-earn", "order-summary"}) {
		t.Errorf("FanoutConfig %v", got)
	}
	eventsvc.ack(whole)

	testutil.Eventually(t, "4 connected nodes", func() bool {
		return tp.metricSum(t, "angzarr.controlplane.connected_nodes", "") == 4
	})

	// A saved change: order retries 12 -> 3, a new saga. Pushed live.
	changed := bytes.Replace(shopYAML(t), []byte("maxRetries: 12"), []byte("maxRetries: 3"), 1)
	changed = append(changed, []byte(`  - name: audit
    address: audit.shop.svc.cluster.local:50051
    sources: [order, cart]
    targets: [customer]
`)...)
	saved := time.Now()
	writeFile(t, tp.topology, changed)
	up := envoy.next(resource.ExtensionConfigType, wait)
	t.Logf("file save to new ECDS on the client: %v", time.Since(saved))
	if p := pluginOf(t, up, FilterName); p.MaxRetries != 3 {
		t.Errorf("after the change, max_retries %d, want 3", p.MaxRetries)
	}
	if up.GetVersionInfo() == ecds.GetVersionInfo() {
		t.Error("the update kept the version")
	}
	newSub := eventsvc.next(SubscriptionTypeURL, wait)
	if got := resourceNames(t, newSub); !slices.Contains(got, "audit") {
		t.Errorf("fan-out update %v lacks the new saga", got)
	}
	eventsvc.ack(newSub)
	whole = eventsvc.next(FanoutTypeURL, wait)
	if got := fanoutNames(t, whole); len(got) != 6 || !slices.Contains(got, "audit") {
		t.Errorf("FanoutConfig after the change: %v", got)
	}
	eventsvc.ack(whole)
	// The cluster set changed (a new saga cluster): CDS is pushed too.
	cds2 := envoy.next(resource.ClusterType, wait)
	if !slices.Contains(resourceNames(t, cds2), "angzarr-saga-audit") {
		t.Errorf("clusters after the change: %v", resourceNames(t, cds2))
	}
	envoy.ack(cds2)

	// The proxy rejects the new filter config: logged and counted.
	envoy.nack(up, "wasm: failed to load module")
	testutil.Eventually(t, "the NACK counted", func() bool {
		return tp.metricSum(t, "angzarr.controlplane.nacks", "type_url="+resource.ExtensionConfigType) == 1
	})
	if logs := tp.logs.String(); !strings.Contains(logs, "NACK") || !strings.Contains(logs, "wasm: failed to load module") ||
		!strings.Contains(logs, "node=order") {
		t.Errorf("the NACK was not logged with its node and message:\n%s", logs)
	}

	// An invalid topology is rejected; the last good version keeps serving.
	v2 := tp.cp.Publisher().Version()
	if v2 == v1 {
		t.Fatal("version did not change")
	}
	writeFile(t, tp.topology, bytes.Replace(changed, []byte("targets: [customer]\n"), []byte("targets: [ghost]\n"), 1))
	testutil.Eventually(t, "the bad topology rejected", func() bool { return tp.cp.LastError() != nil })
	if err := tp.cp.LastError(); !strings.Contains(err.Error(), `unknown domain "ghost"`) {
		t.Errorf("rejection: %v", err)
	}
	if v := tp.cp.Publisher().Version(); v != v2 {
		t.Errorf("serving %s after a rejected topology, want %s", v, v2)
	}
	if !strings.Contains(tp.logs.String(), "topology rejected; the last good configuration keeps serving") {
		t.Error("the rejection was not logged")
	}
	if n := tp.metricSum(t, "angzarr.controlplane.snapshots", "result=rejected"); n != 1 {
		t.Errorf("rejected snapshots %d, want 1", n)
	}
	// Fixing it pushes again; the next ECDS the proxy sees is the fixed one
	// (retries 5), proving nothing from the bad topology was pushed.
	writeFile(t, tp.topology, bytes.Replace(changed, []byte("maxRetries: 3"), []byte("maxRetries: 5"), 1))
	fixed := envoy.next(resource.ExtensionConfigType, wait)
	if p := pluginOf(t, fixed, FilterName); p.MaxRetries != 5 {
		t.Errorf("after the fix, max_retries %d, want 5", p.MaxRetries)
	}
	envoy.ack(fixed)
	testutil.Eventually(t, "the error cleared", func() bool { return tp.cp.LastError() == nil })
	if n := tp.metricSum(t, "angzarr.controlplane.pushes", ""); n < 8 {
		t.Errorf("pushes counted %d, want >= 8", n)
	}
}

// TestUnknownDomainFailsClosed: a node that names a domain the topology
// lacks gets no filter until the domain is declared.
func TestUnknownDomainFailsClosed(t *testing.T) {
	checkLeaks(t)
	tp := startPlane(t, shopYAML(t), nil)
	n := istioNode("billing-1", "shop", "billing", map[string]any{MetaDomain: "billing"})
	s := ecdsStream(t, tp.conn, n)
	s.subscribe(resource.ExtensionConfigType, FilterName)
	testutil.Eventually(t, "the node tracked", func() bool {
		id, ok := tp.cp.Publisher().identity(n.GetId())
		return ok && id.Domain == "billing" && id.Source == "metadata"
	})
	select {
	case r := <-s.resps:
		t.Fatalf("a node of an unknown domain got %v", resourceNames(t, r))
	default:
	}
	changed := append(shopYAML(t), []byte("")...)
	changed = bytes.Replace(changed, []byte("projectors:"), []byte(`  - name: billing
    service: billing.shop.svc.cluster.local
    port: 50051
projectors:`), 1)
	writeFile(t, tp.topology, changed)
	r := s.next(resource.ExtensionConfigType, wait)
	if p := pluginOf(t, r, FilterName); !slices.Equal(p.Domains, []string{"billing"}) {
		t.Errorf("domains %v", p.Domains)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// checkLeaks verifies, after every other cleanup of the test has run (the
// first registered cleanup runs last), that the test left no goroutine.
func checkLeaks(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// fanoutNames lists the subscribers of the FanoutConfig in a response.
func fanoutNames(t *testing.T, r *discovery.DiscoveryResponse) []string {
	t.Helper()
	if len(r.GetResources()) != 1 {
		t.Fatalf("%d FanoutConfig resources, want 1", len(r.GetResources()))
	}
	fc := &angzarr.FanoutConfig{}
	if err := r.GetResources()[0].UnmarshalTo(fc); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range fc.GetSubscriptions() {
		out = append(out, s.GetName())
	}
	return out
}

// TestFanoutRemoval: a subscriber removed from the topology disappears
// from both fan-out caches.
func TestFanoutRemoval(t *testing.T) {
	p := newPublisher(slog.New(slog.DiscardHandler), Options{WasmFile: testWasmFile}, mustMetrics(t), noop.NewTracerProvider().Tracer(""))
	shop := loadShop(t)
	if _, err := p.Apply(context.Background(), shop); err != nil {
		t.Fatal(err)
	}
	fewer := loadShop(t)
	fewer.Sagas = fewer.Sagas[1:]
	if _, err := p.Apply(context.Background(), fewer); err != nil {
		t.Fatal(err)
	}
	if _, ok := p.fanout.GetResources()[shop.Sagas[0].Name]; ok {
		t.Error("the removed saga is still a Subscription resource")
	}
	fc := p.fanoutAll.GetResources()[FanoutName].(*angzarr.FanoutConfig)
	if len(fc.GetSubscriptions()) != 4 {
		t.Errorf("FanoutConfig has %d subscriptions, want 4", len(fc.GetSubscriptions()))
	}
}

// TestDeltaXDS: the same configuration over incremental (delta) ADS,
// including the fan-out subscriptions and the removal of one.
func TestDeltaXDS(t *testing.T) {
	checkLeaks(t)
	tp := startPlane(t, shopYAML(t), nil)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	s, err := discovery.NewAggregatedDiscoveryServiceClient(tp.conn).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&discovery.DeltaDiscoveryRequest{Node: &core.Node{Id: "inventory"},
		TypeUrl: resource.ExtensionConfigType, ResourceNamesSubscribe: []string{FilterName}}); err != nil {
		t.Fatal(err)
	}
	r, err := s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(r.GetResources()) != 1 {
		t.Fatalf("delta ECDS: %v", r)
	}
	tec := &core.TypedExtensionConfig{}
	if err := r.GetResources()[0].GetResource().UnmarshalTo(tec); err != nil {
		t.Fatal(err)
	}
	f, err := xdsclient.DecodeFilter(tec)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.Config.Domains, []string{"inventory"}) {
		t.Errorf("domains %v", f.Config.Domains)
	}
	if err := s.Send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.ExtensionConfigType, ResponseNonce: r.GetNonce()}); err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&discovery.DeltaDiscoveryRequest{TypeUrl: SubscriptionTypeURL, ResourceNamesSubscribe: []string{"*"}}); err != nil {
		t.Fatal(err)
	}
	r, err = s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if r.GetTypeUrl() != SubscriptionTypeURL || len(r.GetResources()) != 5 {
		t.Fatalf("delta subscriptions: %d resources of %s", len(r.GetResources()), r.GetTypeUrl())
	}
	if err := s.Send(&discovery.DeltaDiscoveryRequest{TypeUrl: SubscriptionTypeURL, ResponseNonce: r.GetNonce()}); err != nil {
		t.Fatal(err)
	}
	// Remove the cancellation saga: delta reports the removal.
	top := string(shopYAML(t))
	i := strings.Index(top, "  - name: cancellation")
	writeFile(t, tp.topology, []byte(top[:i]))
	for {
		r, err = s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send(&discovery.DeltaDiscoveryRequest{TypeUrl: r.GetTypeUrl(), ResponseNonce: r.GetNonce()}); err != nil {
			t.Fatal(err)
		}
		if r.GetTypeUrl() == SubscriptionTypeURL {
			break
		}
	}
	if !slices.Equal(r.GetRemovedResources(), []string{"cancellation"}) {
		t.Errorf("removed %v, want [cancellation]", r.GetRemovedResources())
	}
}

// TestFanoutClient: the event service's client receives the fan-out
// configuration, then each change; a configuration it refuses is NACKed
// (logged and counted on the control plane) and the next good one still
// arrives.
func TestFanoutClient(t *testing.T) {
	checkLeaks(t)
	tp := startPlane(t, shopYAML(t), nil)
	got := make(chan *angzarr.FanoutConfig, 8)
	// The configuration with the audit saga is refused once. Decided by
	// its content, not by when the test asks: a flag the test set after
	// the first receive could otherwise reach the first apply.
	var refused atomic.Bool
	c := &xdsclient.FanoutClient{Conn: tp.conn, Node: &core.Node{Id: "angzarr-eventsvc-0"}, Logger: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- c.Run(ctx, func(fc *angzarr.FanoutConfig) error {
			got <- fc
			if len(fc.GetSubscriptions()) == 6 && refused.CompareAndSwap(false, true) {
				return errors.New("dispatcher: cannot reach audit")
			}
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	recv := func() *angzarr.FanoutConfig {
		t.Helper()
		select {
		case fc := <-got:
			return fc
		case <-time.After(wait):
			t.Fatal("no fan-out configuration")
			return nil
		}
	}
	if fc := recv(); len(fc.GetSubscriptions()) != 5 {
		t.Fatalf("first configuration: %v", fc)
	}
	withAudit := append(shopYAML(t), []byte("  - {name: audit, address: \"audit.shop:1\", sources: [order], targets: [customer]}\n")...)
	writeFile(t, tp.topology, withAudit)
	if fc := recv(); len(fc.GetSubscriptions()) != 6 {
		t.Fatalf("second configuration: %v", fc)
	}
	testutil.Eventually(t, "the NACK counted", func() bool {
		return tp.metricSum(t, "angzarr.controlplane.nacks", "type_url="+FanoutTypeURL) == 1
	})
	if !strings.Contains(tp.logs.String(), "cannot reach audit") {
		t.Error("the NACK was not logged")
	}
	writeFile(t, tp.topology, shopYAML(t))
	if fc := recv(); len(fc.GetSubscriptions()) != 5 {
		t.Fatalf("third configuration: %v", fc)
	}
}
