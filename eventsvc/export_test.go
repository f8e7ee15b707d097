package eventsvc

import (
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
)

// NewGRPCServer is newGRPCServer for the benchmarks: the gRPC server as
// Serve makes it (without identity and authorization); call serve once
// every service is registered.
func NewGRPCServer(mp metric.MeterProvider, tp trace.TracerProvider) (g *grpc.Server, serve func(), err error) {
	g, h, err := newGRPCServer(mp, tp)
	if err != nil {
		return nil, nil, err
	}
	return g, func() { h.serve(g) }, nil
}
