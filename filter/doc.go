// Package filter is the Angzarr command path as a proxy-wasm HTTP filter's
// logic: a pure state machine, free of host calls of its own, driven through
// the small Host interface. The wasip1 binding (filter/internal/abi) implements
// Host with the proxy-wasm ABI 0.2.1 and forwards the host's callbacks to
// Plugin and Stream; native tests drive the same code with a fake host.
//
// For `/angzarr.BusinessCoordinator/{Handle,HandleSync,Record}` the filter
// rewrites the request to `/angzarr.BusinessLogic/Handle`, buffers and
// validates the CommandBook, loads the aggregate from the event service
// (EventStore.Load by gRPC callout), hands the business logic a
// ContextualCommand, appends the events it answers with the expected sequence
// (EventStore.Append), retries write conflicts by callout when the command
// asks for auto_resequence, and answers the client with a CommandResponse.
//
// A gRPC local reply carries no message, so answers that need a
// CommandResponse but no fresh decision (Record, an idempotent repeat) send
// the business logic a no-op probe — a ContextualCommand whose CommandBook
// has no pages, which the logic answers with an empty EventBook — and
// replace the probe's answer.
package filter
