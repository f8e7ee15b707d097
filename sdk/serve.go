package sdk

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// ErrUnknownHandler is returned by Register and Serve for a handler that
// implements none of angzarr.BusinessLogicServer, SagaServer,
// ProjectorServer, UpcasterServer or ProcessManagerServer.
var ErrUnknownHandler = errors.New("sdk: handler implements no Angzarr service")

// StopTimeout bounds a graceful stop: calls still running after it are cut.
const StopTimeout = 10 * time.Second

// Register registers handler on s as the Angzarr service it implements
// (angzarr.BusinessLogicServer, SagaServer, ProjectorServer or
// UpcasterServer or ProcessManagerServer) and returns
// that service's full name.
func Register(s grpc.ServiceRegistrar, handler any) (string, error) {
	switch h := handler.(type) {
	case angzarr.BusinessLogicServer:
		angzarr.RegisterBusinessLogicServer(s, h)
		return angzarr.BusinessLogic_ServiceDesc.ServiceName, nil
	case angzarr.SagaServer:
		angzarr.RegisterSagaServer(s, h)
		return angzarr.Saga_ServiceDesc.ServiceName, nil
	case angzarr.ProjectorServer:
		angzarr.RegisterProjectorServer(s, h)
		return angzarr.Projector_ServiceDesc.ServiceName, nil
	case angzarr.UpcasterServer:
		angzarr.RegisterUpcasterServer(s, h)
		return angzarr.Upcaster_ServiceDesc.ServiceName, nil
	case angzarr.ProcessManagerServer:
		angzarr.RegisterProcessManagerServer(s, h)
		return angzarr.ProcessManager_ServiceDesc.ServiceName, nil
	}
	return "", fmt.Errorf("%w: %T", ErrUnknownHandler, handler)
}

// Serve serves handler (see Register) on lis with the gRPC health service
// (SERVING for "" and the handler's service) and server reflection, until ctx
// is done; then it reports NOT_SERVING and stops gracefully, cutting calls
// still running after StopTimeout. It returns nil after a stop asked for by
// ctx, or the server's error.
func Serve(ctx context.Context, lis net.Listener, handler any, opts ...grpc.ServerOption) error {
	s := grpc.NewServer(opts...)
	service, err := Register(s, handler)
	if err != nil {
		_ = lis.Close()
		return err
	}
	return ServeServer(ctx, lis, s, service)
}

// ServeServer is Serve for a server whose services are already registered:
// it adds health (SERVING for "" and each of services) and reflection, serves
// on lis until ctx is done, then stops gracefully.
func ServeServer(ctx context.Context, lis net.Listener, s *grpc.Server, services ...string) error {
	hs := health.NewServer()
	healthpb.RegisterHealthServer(s, hs)
	reflection.Register(s)
	for _, name := range services {
		hs.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}

	done := make(chan error, 1)
	go func() { done <- s.Serve(lis) }()

	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	hs.Shutdown() // every service NOT_SERVING, so balancers drain us first
	stopped := make(chan struct{})
	go func() {
		s.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(StopTimeout):
		s.Stop()
		<-stopped
	}
	if err := <-done; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}
