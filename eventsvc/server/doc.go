// Package server is the event service's gRPC surface: the public
// angzarr.EventQuery (GetEvents, Synchronize, GetAggregateRoots) and the
// internal angzarr.EventStore (Load, Append, ReadLog) over a store.Store.
//
// Requests are validated here (an INVALID_ARGUMENT names the field) and the
// store's typed errors are mapped to status codes: *store.ConflictError →
// ABORTED with the next sequence in the message and a SequenceConflict
// detail, *store.InvalidError → INVALID_ARGUMENT, *store.HistoryError →
// FAILED_PRECONDITION, store.ErrUnavailable → UNAVAILABLE.
//
// No answer outgrows a gRPC message: Load answers a long history in pages
// of at most Limits.LoadPageBytes (the first with the snapshot and the
// idempotency lookup, LoadResponse.more_from saying where the rest
// begins, continuations by from_sequence / to_sequence), and the queries
// cut long runs of one aggregate into books of at most maxBookBytes.
//
// Synchronize is a catch-up subscription driven by cursors (a sequence for
// one aggregate, a log offset per partition for a domain, the highest sent
// sequence per aggregate for a correlation id): the replay and the live tail
// are the same loop reading after the cursor, so nothing is skipped or sent
// twice at the switch. The loop wakes on appends made through this process
// and, for appends made through other replicas, on the store's blocking
// read of the domain's log tail (Options.Tail: Redis XREAD BLOCK, one
// watch per partition shared by the streams of a domain, on connections
// of their own); without one (SQLite, or a query by correlation id only)
// every PollInterval.
package server
