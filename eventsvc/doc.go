// Package eventsvc is the event service: a gRPC server (angzarr.EventQuery,
// angzarr.EventStore, angzarr.CommandGateway, angzarr.FanoutAdmin, health,
// reflection) over a pluggable store, with OpenTelemetry metrics served in
// Prometheus format. Its fan-out dispatcher (package fanout) delivers every
// domain's log to sagas and projectors; the CommandGateway executes commands
// through the domains' coordinators it knows from the same configuration and
// streams what they cause.
//
//	cfg := eventsvc.Config{Store: "sqlite:/var/lib/angzarr/events.db", Listen: ":1313"}
//	err := eventsvc.Run(ctx, cfg) // until ctx is done, then a graceful stop
//
// Store URLs: sqlite:PATH, redis://[user:pass@]HOST:PORT/DB and
// redis+cluster://H1:P1,H2:P2,... (see OpenStore).
package eventsvc
