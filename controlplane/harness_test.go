package controlplane

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	extensionservice "github.com/envoyproxy/go-control-plane/envoy/service/extension/v3"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/structpb"
	"k8s.io/client-go/kubernetes"

	"github.com/angzarr-mesh/angzarr/controlplane/xdsclient"
	"github.com/angzarr-mesh/angzarr/filter/config"
	"github.com/angzarr-mesh/angzarr/internal/identity"
	"github.com/angzarr-mesh/angzarr/internal/testutil"
)

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testPlane is a control plane serving on 127.0.0.1:0 with a topology file
// in a temp dir, its logs and metrics captured.
type testPlane struct {
	cp       *ControlPlane
	addr     string
	topology string
	logs     *syncBuffer
	reader   *sdkmetric.ManualReader
	spans    *tracetest.InMemoryExporter
	conn     *grpc.ClientConn
}

// startPlane starts a control plane and waits (polling the health
// service) until it serves a first topology.
func startPlane(t *testing.T, topology []byte, kube kubernetes.Interface) *testPlane {
	t.Helper()
	return startPlaneWith(t, topology, kube, identity.Config{}, grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// startPlaneWith is startPlane with the control plane's identity (mTLS
// when it names certificate files) and how tp.conn dials it.
func startPlaneWith(t *testing.T, topology []byte, kube kubernetes.Interface, id identity.Config, dial grpc.DialOption) *testPlane {
	t.Helper()
	dir := t.TempDir()
	tp := &testPlane{topology: filepath.Join(dir, "topology.yaml"), logs: &syncBuffer{}, reader: sdkmetric.NewManualReader(),
		spans: tracetest.NewInMemoryExporter()}
	writeFile(t, tp.topology, topology)
	tracer := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tp.spans))
	t.Cleanup(func() { _ = tracer.Shutdown(context.Background()) })
	cp, err := New(Config{
		Topology:         tp.topology,
		KubernetesClient: kube,
		Filter:           Options{WasmFile: testWasmFile},
		PollInterval:     20 * time.Millisecond,
		Logger:           slog.New(slog.NewTextHandler(tp.logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		MeterProvider:    sdkmetric.NewMeterProvider(sdkmetric.WithReader(tp.reader)),
		TracerProvider:   tracer,
		Identity:         id,
	})
	if err != nil {
		t.Fatal(err)
	}
	tp.cp = cp
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tp.addr = lis.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cp.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	tp.conn, err = grpc.NewClient(tp.addr, dial)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tp.conn.Close() })
	health := healthpb.NewHealthClient(tp.conn)
	testutil.Eventually(t, "health SERVING", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		r, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
		return err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING
	})
	return tp
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// metricSum is the sum of an Int64 counter or gauge's points whose
// attributes contain attr (key=value), or all points when attr is "".
func (tp *testPlane) metricSum(t testing.TB, name, attr string) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := tp.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			var points []metricdata.DataPoint[int64]
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				points = d.DataPoints
			case metricdata.Gauge[int64]:
				points = d.DataPoints
			}
			for _, p := range points {
				match := attr == ""
				for _, kv := range p.Attributes.ToSlice() {
					if string(kv.Key)+"="+kv.Value.String() == attr {
						match = true
					}
				}
				if match {
					sum += p.Value
				}
			}
		}
	}
	return sum
}

// xdsStream is a minimal state-of-the-world xDS client over one gRPC
// stream (ADS, or a per-type service such as ECDS): it subscribes, receives
// responses and ACKs or NACKs them, as Envoy does.
type xdsStream struct {
	t      testing.TB
	node   *core.Node
	send   func(*discovery.DiscoveryRequest) error
	recv   func() (*discovery.DiscoveryResponse, error)
	cancel context.CancelFunc
	resps  chan *discovery.DiscoveryResponse
	// per type URL: the names subscribed, the last ACKed version and nonce
	names   map[string][]string
	version map[string]string
	pending map[string][]*discovery.DiscoveryResponse
}

func newStream(t testing.TB, node *core.Node, open func(ctx context.Context) (grpc.ClientStream, error)) *xdsStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cs, err := open(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	s := &xdsStream{
		t: t, node: node, cancel: cancel,
		send: func(r *discovery.DiscoveryRequest) error { return cs.SendMsg(r) },
		recv: func() (*discovery.DiscoveryResponse, error) {
			r := &discovery.DiscoveryResponse{}
			return r, cs.RecvMsg(r)
		},
		resps:   make(chan *discovery.DiscoveryResponse, 64),
		names:   map[string][]string{},
		version: map[string]string{},
		pending: map[string][]*discovery.DiscoveryResponse{},
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			r, err := s.recv()
			if err != nil {
				return
			}
			s.resps <- r
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

// adsStream opens an ADS stream for node.
func adsStream(t testing.TB, conn *grpc.ClientConn, node *core.Node) *xdsStream {
	return newStream(t, node, func(ctx context.Context) (grpc.ClientStream, error) {
		return discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	})
}

// ecdsStream opens a plain ECDS stream, as an Istio sidecar's
// config_discovery does.
func ecdsStream(t testing.TB, conn *grpc.ClientConn, node *core.Node) *xdsStream {
	return newStream(t, node, func(ctx context.Context) (grpc.ClientStream, error) {
		return extensionservice.NewExtensionConfigDiscoveryServiceClient(conn).StreamExtensionConfigs(ctx)
	})
}

// subscribe asks for names of typeURL (none = wildcard).
func (s *xdsStream) subscribe(typeURL string, names ...string) {
	s.t.Helper()
	s.names[typeURL] = names
	if err := s.send(&discovery.DiscoveryRequest{Node: s.node, TypeUrl: typeURL, ResourceNames: names}); err != nil {
		s.t.Fatal(err)
	}
}

// next waits for the next response of typeURL; responses of other types
// that arrive meanwhile are kept for their own next call.
func (s *xdsStream) next(typeURL string, timeout time.Duration) *discovery.DiscoveryResponse {
	s.t.Helper()
	if p := s.pending[typeURL]; len(p) > 0 {
		s.pending[typeURL] = p[1:]
		return p[0]
	}
	deadline := time.After(timeout)
	for {
		select {
		case r := <-s.resps:
			if r.GetTypeUrl() == typeURL {
				return r
			}
			s.pending[r.GetTypeUrl()] = append(s.pending[r.GetTypeUrl()], r)
		case <-deadline:
			s.t.Fatalf("no %s response within %v", typeURL, timeout)
			return nil
		}
	}
}

// ack accepts a response.
func (s *xdsStream) ack(r *discovery.DiscoveryResponse) {
	s.t.Helper()
	s.version[r.GetTypeUrl()] = r.GetVersionInfo()
	if err := s.send(&discovery.DiscoveryRequest{
		TypeUrl: r.GetTypeUrl(), VersionInfo: r.GetVersionInfo(), ResponseNonce: r.GetNonce(),
		ResourceNames: s.names[r.GetTypeUrl()],
	}); err != nil {
		s.t.Fatal(err)
	}
}

// nack rejects a response, keeping the last accepted version.
func (s *xdsStream) nack(r *discovery.DiscoveryResponse, msg string) {
	s.t.Helper()
	if err := s.send(&discovery.DiscoveryRequest{
		TypeUrl: r.GetTypeUrl(), VersionInfo: s.version[r.GetTypeUrl()], ResponseNonce: r.GetNonce(),
		ResourceNames: s.names[r.GetTypeUrl()], ErrorDetail: &rpcstatus.Status{Code: 3, Message: msg},
	}); err != nil {
		s.t.Fatal(err)
	}
}

// resourceNames lists the resource names of a response.
func resourceNames(t testing.TB, r *discovery.DiscoveryResponse) []string {
	t.Helper()
	var out []string
	for _, a := range r.GetResources() {
		m, err := a.UnmarshalNew()
		if err != nil {
			t.Fatal(err)
		}
		n, _ := m.(interface{ GetName() string })
		out = append(out, n.GetName())
	}
	return out
}

// pluginOf decodes the plugin configuration of the ECDS resource named
// name in a response.
func pluginOf(t testing.TB, r *discovery.DiscoveryResponse, name string) *config.Config {
	t.Helper()
	for _, a := range r.GetResources() {
		tec := &core.TypedExtensionConfig{}
		if err := a.UnmarshalTo(tec); err != nil {
			t.Fatal(err)
		}
		if tec.GetName() != name {
			continue
		}
		f, err := xdsclient.DecodeFilter(tec)
		if err != nil {
			t.Fatal(err)
		}
		return f.Config
	}
	t.Fatalf("no extension config %q in %v", name, resourceNames(t, r))
	return nil
}

// istioNode is a node as an Istio sidecar of namespace/workload sends it.
func istioNode(pod, namespace, workload string, extra map[string]any) *core.Node {
	md := map[string]any{
		"ISTIO_VERSION": "1.28.0",
		"NAMESPACE":     namespace,
		"WORKLOAD_NAME": workload,
		"LABELS":        map[string]any{"app": workload},
	}
	for k, v := range extra {
		md[k] = v
	}
	s, err := structpb.NewStruct(md)
	if err != nil {
		panic(err)
	}
	return &core.Node{
		Id:       "sidecar~10.1.2.3~" + pod + "." + namespace + "~" + namespace + ".svc.cluster.local",
		Cluster:  workload + "." + namespace,
		Metadata: s,
	}
}

func shopYAML(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("../examples/topology.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return b
}
