// Package instrumented is the aspect-oriented storage decorator: New wraps
// any event store backend with OpenTelemetry metrics and spans, applied
// when the event service is composed, so the backends stay free of
// instrumentation.
//
//	st := instrumented.New(sqliteStore, "sqlite", instrumented.Options{MeterProvider: mp})
//
// Every operation records angzarr.storage.duration_seconds (backend,
// operation, outcome). Appends count angzarr.events.stored_total and
// angzarr.snapshots.stored_total, loads angzarr.events.loaded_total, fan-out
// checkpoint commits angzarr.positions.updated_total. Load and Append run
// in the spans aggregate.load_events and aggregate.persist with the
// aggregate's domain, root and correlation id (for Load, the correlation id
// of the context: telemetry.WithCorrelationID). docs/observability.md lists
// every name.
package instrumented
