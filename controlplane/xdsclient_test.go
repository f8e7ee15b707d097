package controlplane

import (
	"cmp"
	"testing"
	"time"

	"github.com/angzarr-mesh/angzarr/controlplane/xdsclient"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The xDS-fed proxy reads its stream timeouts from the ingress listener's
// HttpConnectionManager, as Envoy applies them, and the listener's buffer
// limit (Envoy's 1 MiB when unset).
func TestProxyClientReadsListenerTimeouts(t *testing.T) {
	l, err := httpListener(ListenerIngress, 10000, FilterName)
	if err != nil {
		t.Fatal(err)
	}
	other, err := httpListener("elsewhere", 10001, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, limit := range []uint32{0, BufferLimitBytes(0)} {
		if limit != 0 {
			l.PerConnectionBufferLimitBytes = wrapperspb.UInt32(limit)
		}
		resources := []*anypb.Any{mustAny(t, other), mustAny(t, l)}
		var cfg xdsclient.ProxyConfig
		resp := &discovery.DiscoveryResponse{VersionInfo: "v1", TypeUrl: resource.ListenerType, Resources: resources}
		if err := xdsclient.DecodeResponse(resp, &cfg); err != nil {
			t.Fatal(err)
		}
		want := xdsclient.StreamTimeouts{StreamIdle: 5 * time.Minute, Request: 30 * time.Second, RequestHeaders: 10 * time.Second,
			BufferLimitBytes: int(cmp.Or(limit, 1<<20))}
		if cfg.Timeouts == nil || *cfg.Timeouts != want || cfg.ListenersVersion != "v1" {
			t.Fatalf("timeouts %+v version %q, want %+v v1", cfg.Timeouts, cfg.ListenersVersion, want)
		}
	}
}

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
