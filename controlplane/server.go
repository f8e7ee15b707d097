package controlplane

import (
	"context"
	"errors"
	"net"
	"time"

	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	extensionservice "github.com/envoyproxy/go-control-plane/envoy/service/extension/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
)

// serveXDS serves xDS on lis until ctx is done: ADS, and the per-type
// ECDS, CDS, LDS and RDS services, each state of the world and delta, plus
// the gRPC health service (SERVING once a first topology is applied; the
// readiness probe of the Deployment).
func serveXDS(ctx context.Context, lis net.Listener, p *Publisher, opts ...grpc.ServerOption) error {
	xds := serverv3.NewServer(ctx, p.Cache(), newCallbacks(p))
	gs := grpc.NewServer(append(opts,
		grpc.MaxConcurrentStreams(1_000_000),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 5 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 15 * time.Second, PermitWithoutStream: true}),
	)...)
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(gs, xds)
	extensionservice.RegisterExtensionConfigDiscoveryServiceServer(gs, xds)
	clusterservice.RegisterClusterDiscoveryServiceServer(gs, xds)
	listenerservice.RegisterListenerDiscoveryServiceServer(gs, xds)
	routeservice.RegisterRouteDiscoveryServiceServer(gs, xds)
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(gs, hs)

	done, stopped, ready := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ready)
		select {
		case <-p.Applied():
			hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
		case <-done:
		}
	}()
	go func() {
		defer close(stopped)
		select {
		case <-ctx.Done():
		case <-done:
		}
		hs.Shutdown()
		gs.Stop()
	}()
	err := gs.Serve(lis)
	close(done)
	<-stopped
	<-ready
	if errors.Is(err, grpc.ErrServerStopped) || ctx.Err() != nil {
		return nil
	}
	return err
}
