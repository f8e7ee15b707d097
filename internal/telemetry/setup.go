package telemetry

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Config configures Setup beyond the environment.
type Config struct {
	// Console, when set, receives every finished span, one line each: name,
	// duration, trace, span and parent ids, service and attributes
	// (angzarr dev --otel). Default: none.
	Console io.Writer
	// SpanProcessors are added to the tracer provider (tests use an
	// in-memory exporter through sdktrace.NewSimpleSpanProcessor).
	SpanProcessors []sdktrace.SpanProcessor
	// Getenv reads the environment. Default os.Getenv.
	Getenv func(string) string
}

// Setup is Config{}.Setup: OTLP export as the environment says, nothing
// else.
func Setup(ctx context.Context, serviceName string) (func(context.Context) error, error) {
	return Config{}.Setup(ctx, serviceName)
}

// Propagator is the W3C trace-context and baggage propagator Setup installs.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// Setup installs the global propagators (W3C trace context and baggage)
// and, when there is somewhere to send spans (an OTLP endpoint in the
// environment, c.Console or c.SpanProcessors), a global tracer provider
// for serviceName (OTEL_SERVICE_NAME wins). The returned shutdown flushes
// and stops the exporters; it is never nil.
func (c Config) Setup(ctx context.Context, serviceName string) (func(context.Context) error, error) {
	getenv := c.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	otel.SetTextMapPropagator(Propagator())
	nop := func(context.Context) error { return nil }

	var opts []sdktrace.TracerProviderOption
	endpoint := first(getenv, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
	if endpoint != "" {
		exp, err := otlpExporter(ctx, first(getenv, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"))
		if err != nil {
			return nop, err
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	if c.Console != nil {
		opts = append(opts, sdktrace.WithSyncer(&consoleExporter{w: c.Console}))
	}
	for _, p := range c.SpanProcessors {
		opts = append(opts, sdktrace.WithSpanProcessor(p))
	}
	if len(opts) == 0 {
		return nop, nil
	}
	if name := getenv("OTEL_SERVICE_NAME"); name != "" {
		serviceName = name
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", serviceName)))
	if err != nil {
		return nop, fmt.Errorf("telemetry: resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(append(opts, sdktrace.WithResource(res))...)
	otel.SetTracerProvider(tp)
	return tp.Shutdown, nil
}

// otlpExporter returns the OTLP span exporter for protocol; the exporter
// reads its endpoint, headers and TLS settings from the environment.
func otlpExporter(ctx context.Context, protocol string) (sdktrace.SpanExporter, error) {
	var (
		exp sdktrace.SpanExporter
		err error
	)
	switch strings.TrimSpace(protocol) {
	case "", "grpc":
		exp, err = otlptracegrpc.New(ctx)
	case "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	default:
		return nil, fmt.Errorf("telemetry: OTEL_EXPORTER_OTLP_PROTOCOL %q: want grpc or http/protobuf", protocol)
	}
	if err != nil {
		return nil, fmt.Errorf("telemetry: OTLP exporter: %w", err)
	}
	return exp, nil
}

// first returns the first non-empty variable of names.
func first(getenv func(string) string, names ...string) string {
	for _, n := range names {
		if v := getenv(n); v != "" {
			return v
		}
	}
	return ""
}
