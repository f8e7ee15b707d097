package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/goleak"

	"github.com/angzarr-mesh/angzarr/internal/telemetry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// restoreGlobals puts the global tracer provider and propagator back.
func restoreGlobals(t *testing.T) {
	tp, prop := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	t.Cleanup(func() { otel.SetTracerProvider(tp); otel.SetTextMapPropagator(prop) })
}

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestSetupWithoutEndpointExportsNothing(t *testing.T) {
	restoreGlobals(t)
	otel.SetTracerProvider(noop.NewTracerProvider())
	shutdown, err := telemetry.Config{Getenv: env(nil)}.Setup(context.Background(), "svc")
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(context.Background()) //nolint:errcheck
	if _, ok := otel.GetTracerProvider().(*sdktrace.TracerProvider); ok {
		t.Fatal("a tracer provider was installed without an endpoint")
	}
	// The propagators are installed all the same: trace context flows.
	carrier := propagation.MapCarrier{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	ctx := otel.GetTextMapPropagator().Extract(context.Background(), carrier)
	if got := telemetry.TraceParent(ctx); got != carrier["traceparent"] {
		t.Fatalf("traceparent round trip: %q", got)
	}
}

func TestSetupExportsSpansWithServiceName(t *testing.T) {
	restoreGlobals(t)
	exp := tracetest.NewInMemoryExporter()
	var console bytes.Buffer
	shutdown, err := telemetry.Config{
		Getenv:         env(map[string]string{"OTEL_SERVICE_NAME": "from-env"}),
		Console:        &console,
		SpanProcessors: []sdktrace.SpanProcessor{sdktrace.NewSimpleSpanProcessor(exp)},
	}.Setup(context.Background(), "svc")
	if err != nil {
		t.Fatal(err)
	}
	_, span := otel.Tracer("test").Start(context.Background(), "aggregate.persist")
	span.End()
	spans := exp.GetSpans() // before shutdown, which empties the exporter
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(spans) != 1 || spans[0].Name != "aggregate.persist" {
		t.Fatalf("spans: %v", spans.Snapshots())
	}
	var name string
	for _, kv := range spans[0].Resource.Attributes() {
		if kv.Key == "service.name" {
			name = kv.Value.AsString()
		}
	}
	if name != "from-env" {
		t.Fatalf("service.name = %q, want OTEL_SERVICE_NAME's from-env", name)
	}
	if line := console.String(); !strings.HasPrefix(line, "span aggregate.persist ") || !strings.Contains(line, " trace="+spans[0].SpanContext.TraceID().String()) || !strings.Contains(line, " service=from-env") {
		t.Fatalf("console output lacks the span: %s", console.String())
	}
}

func TestSetupRejectsUnknownProtocol(t *testing.T) {
	restoreGlobals(t)
	_, err := telemetry.Config{Getenv: env(map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon",
	})}.Setup(context.Background(), "svc")
	if err == nil || !strings.Contains(err.Error(), "carrier-pigeon") {
		t.Fatalf("err = %v", err)
	}
}

func TestSetupOTLPProtocols(t *testing.T) {
	for _, proto := range []string{"", "grpc", "http/protobuf"} {
		t.Run(proto, func(t *testing.T) {
			restoreGlobals(t)
			shutdown, err := telemetry.Config{Getenv: env(map[string]string{
				"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": proto,
			})}.Setup(context.Background(), "svc")
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := otel.GetTracerProvider().(*sdktrace.TracerProvider); !ok {
				t.Fatal("no tracer provider installed with an endpoint")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := shutdown(ctx); err != nil { // no span was queued: nothing to send
				t.Fatal(err)
			}
		})
	}
}

func TestLogHandlerAddsTraceAndCorrelation(t *testing.T) {
	var buf bytes.Buffer
	log, err := telemetry.NewLogger(&buf, "json", slog.LevelInfo)
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider()
	defer tp.Shutdown(context.Background()) //nolint:errcheck
	ctx, span := tp.Tracer("test").Start(context.Background(), "x")
	ctx = telemetry.WithCorrelationID(ctx, "corr-1")
	log.InfoContext(ctx, "hello", "k", "v")
	span.End()
	log.Info("no context")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("lines: %q", lines)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	sc := trace.SpanContextFromContext(ctx)
	for k, want := range map[string]string{"trace_id": sc.TraceID().String(), "span_id": sc.SpanID().String(), "correlation_id": "corr-1", "k": "v"} {
		if rec[k] != want {
			t.Errorf("%s = %v, want %s", k, rec[k], want)
		}
	}
	if strings.Contains(lines[1], "trace_id") || strings.Contains(lines[1], "correlation_id") {
		t.Errorf("record without context got ids: %s", lines[1])
	}
}

func TestLogHandlerKeepsExplicitCorrelation(t *testing.T) {
	var buf bytes.Buffer
	log, err := telemetry.NewLogger(&buf, "text", slog.LevelInfo)
	if err != nil {
		t.Fatal(err)
	}
	log.With("svc", "x").InfoContext(telemetry.WithCorrelationID(context.Background(), "ctx"), "m", "correlation_id", "explicit")
	if got := buf.String(); strings.Count(got, "correlation_id") != 1 || !strings.Contains(got, "correlation_id=explicit") || !strings.Contains(got, "svc=x") {
		t.Fatalf("log: %s", got)
	}
	if _, err := telemetry.NewLogger(&buf, "xml", slog.LevelInfo); err == nil {
		t.Fatal("xml accepted")
	}
}

func TestCorrelationIDFromBaggage(t *testing.T) {
	carrier := propagation.MapCarrier{"baggage": "correlation_id=from-baggage"}
	ctx := telemetry.Propagator().Extract(context.Background(), carrier)
	if got := telemetry.CorrelationID(ctx); got != "from-baggage" {
		t.Fatalf("CorrelationID = %q", got)
	}
	if got := telemetry.CorrelationID(telemetry.WithCorrelationID(ctx, "explicit")); got != "explicit" {
		t.Fatalf("CorrelationID = %q", got)
	}
}
