// Package eventsvc is the event service: a gRPC server (angzarr.EventQuery,
// angzarr.EventStore, health, reflection) over a pluggable store, with
// OpenTelemetry metrics served in Prometheus format.
//
//	cfg := eventsvc.Config{Store: "sqlite:/var/lib/angzarr/events.db", Listen: ":1313"}
//	err := eventsvc.Run(ctx, cfg) // until ctx is done, then a graceful stop
//
// Store URLs: sqlite:PATH, redis://[user:pass@]HOST:PORT/DB and
// redis+cluster://H1:P1,H2:P2,... (see OpenStore).
package eventsvc
