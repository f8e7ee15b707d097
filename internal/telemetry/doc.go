// Package telemetry sets up OpenTelemetry for the Angzarr binaries: a
// tracer provider exporting over OTLP, configured only by the standard
// environment variables, the W3C trace-context and baggage propagators,
// optional console output of spans (angzarr dev --otel), and a log/slog
// handler that stamps every record with the trace and correlation ids of
// its context.
//
//	shutdown, err := telemetry.Setup(ctx, "angzarr-eventsvc")
//	defer shutdown(context.Background())
//
// # Environment
//
//   - OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT):
//     where spans are exported. Unset: nothing is exported, no tracer
//     provider is installed (spans are then non-recording, but the trace
//     context still flows through the propagators).
//   - OTEL_EXPORTER_OTLP_PROTOCOL (or ..._TRACES_PROTOCOL): "grpc" (the
//     default, the Collector's port 4317) or "http/protobuf" (port 4318).
//   - OTEL_SERVICE_NAME: overrides the service name the binary passes.
//   - OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG, OTEL_RESOURCE_ATTRIBUTES
//     and the exporters' own OTEL_EXPORTER_OTLP_* variables (headers,
//     timeout, insecure, ...) are honoured by the SDK as usual.
//
// Metrics are not exported over OTLP (the OTLP metric exporters are not
// available to this build): every server serves Prometheus instead.
package telemetry
