// Package filter is the Angzarr command path as a proxy-wasm HTTP filter's
// logic: a pure state machine, free of host calls of its own, driven through
// the small Host interface. The wasip1 binding (filter/internal/abi) implements
// Host with the proxy-wasm ABI 0.2.1 and forwards the host's callbacks to
// Plugin and Stream. The tests drive the same scenarios twice against one
// fake host: natively, calling Plugin and Stream, and through the built
// module and its binding (filter/internal/wasmdrive answers the module's
// imports from the fake host).
//
// For `/angzarr.BusinessCoordinator/{Handle,HandleSync,Record}` the filter
// rewrites the request to `/angzarr.BusinessLogic/Handle`, buffers and
// validates the CommandBook, loads the aggregate from the event service
// (EventStore.Load by gRPC callout), hands the business logic a
// ContextualCommand, appends the events it answers with the expected sequence
// (EventStore.Append), retries write conflicts by callout when the command
// asks for auto_resequence, and answers the client with a CommandResponse.
//
// Conflict retries back off: before each, a random wait that grows with the
// retries in units of what the conflicting attempt took (retry_backoff,
// retry_backoff_max), bounded by the command's deadline (grpc-timeout).
// The filter has no timer of its own (it sets no tick), so the event
// service waits for it: the retry's reload asks for the wait
// (LoadRequest.delay_ms).
//
// Record stores an EventBook the client wrote, without the business logic,
// so it stores only events of the domain's declared types (event_types;
// none declared refuses every Record) and, with caller_identity, only for
// the recorders.
//
// A gRPC local reply carries no message, so answers that need a
// CommandResponse but no fresh decision (Record, an idempotent repeat) send
// the business logic a no-op probe — a ContextualCommand whose CommandBook
// has no pages, which the logic answers with an empty EventBook — and
// replace the probe's answer.
//
// A decision whose only event is an angzarr.CompensationRequest (the
// logic's answer to a SagaCompensation asking the framework to act, see
// compensation.proto) is not stored: the filter answers it as
// FAILED_PRECONDITION with the request among the status details
// (compensationRequested says why it travels in the message).
//
// # Long histories
//
// The event service answers a long history in pages (LoadResponse.more_from);
// the filter loads the rest by one callout per page
// (LoadRequest.from_sequence, to_sequence) and adds each page's pages to
// the first page's book, so the logic gets the history whole. Loads that
// need only the next sequence (conflict reports, the check of a decision
// made on the cached history) and idempotent repeats stop at the first
// page. A history and command beyond max_body_bytes are answered
// FAILED_PRECONDITION (historyTooLarge: the aggregate, the size, how to
// snapshot) without calling the logic, and a decision or a Record that
// would take a history without a snapshot beyond max_body_bytes less
// commandRoom is refused the same way before anything is stored (a Record
// without a snapshot loads its aggregate first for this; one with a
// snapshot is the way out for a history no command can carry).
//
// # Aggregate cache
//
// Each VM keeps the histories of the aggregates it wrote last (aggCache,
// bounded by aggregate_cache_bytes): a command that states its expected
// sequence, has no idempotency key and finds an entry at that sequence goes
// to the logic without a load. A stale entry cannot change an answer: the
// append at the stale sequence conflicts (ABORTED after a fresh load), and
// a decision that stores nothing (a rejection, an empty decision) is
// checked against a fresh load before it is answered.
//
// # Sync modes (HandleSync)
//
// SYNC_MODE_SIMPLE: once the events are stored, the filter calls every
// synchronous projector of the domain (config sync_projectors,
// angzarr.Projector/HandleSync, in parallel) with the stored EventBook —
// the cover with the correlation id, the pages with their sequences — and
// answers CommandResponse{events, projections}. Sagas stay asynchronous:
// the event service's dispatcher delivers the events to them.
//
// SYNC_MODE_CASCADE: also, for each stored page (one page per call, as the
// dispatcher does) and each saga fed by the domain (config sagas), the
// filter calls angzarr.Saga/HandleSync and executes the returned commands
// one after the other through the target domain's coordinator
// (angzarr.BusinessCoordinator/HandleSync with CASCADE, config
// coordinators): in the mesh that call passes through the target domain's
// own filter, which stores, runs its own projectors and cascades in turn.
// Each command gets what the dispatcher gives it — saga_origin, auto_resequence,
// the trigger's correlation id and the idempotency key
// internal/sagakey.Key(saga, trigger domain, root, sequence, index) — so
// the dispatcher's later delivery of the same event to the same saga is a
// no-op. Then, for each process manager fed by the domain (config
// process_managers), the filter has the event service run the PM's step
// for the page (angzarr.ProcessManagerCoordinator/HandleSync on the event
// service cluster: the dispatcher's own step, stored under its step key,
// allowed to the domain's writers only) and executes the commands it
// answers, already prepared, the same way; the dispatcher's later
// delivery finds the step stored and repeats those commands under the
// same keys, so they take effect once.
// The response carries the command's events, the events every
// cascaded command stored (CommandResponse.cascade, in execution order) and
// the projections of all of them (this domain's first, then the cascade's in
// execution order). The cascade travels in request metadata:
// x-angzarr-cascade-depth (saga hops; the client's command is 0) and
// x-angzarr-cascade-path (the aggregates already in it, "domain/root"). A
// command deeper than max_cascade_depth, or for an aggregate already on its
// path (a cycle), is refused with FAILED_PRECONDITION naming the path,
// before anything is stored for it.
//
// Failures after the append. Once a sync command's events are stored they
// stay stored and are delivered asynchronously like any other events; the
// failure of a projector, a saga or a cascaded command cannot undo them.
// The filter then answers with the failing part's own status code (e.g.
// UNAVAILABLE for an unreachable projector, the target logic's
// FAILED_PRECONDITION for a rejected cascaded command) and a message that
// starts with "the command's events were stored (domain/root sequences
// a-b)" and names what failed; grpc-status-details-bin carries an
// angzarr.CommandResponse with everything stored and projected so far.
// Why an error rather than OK with fewer projections: a caller that asked
// for SIMPLE or CASCADE relies on the read model or the cascade being done
// when the call returns; answering OK would let it read stale data without
// knowing. Why not hide the stored events: the caller must be able to tell
// "nothing happened" from "happened, not yet projected" — the message and
// the details say so. A caller that retries such a command must give it an
// idempotency_key: the retry then stores nothing new and re-runs the
// synchronous part (every step of it is idempotent).
package filter
