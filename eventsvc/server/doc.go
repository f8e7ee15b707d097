// Package server is the event service's gRPC surface: the public
// angzarr.EventQuery (GetEvents, Synchronize, GetAggregateRoots) and the
// internal angzarr.EventStore (Load, Append, ReadLog) over a store.Store.
//
// Requests are validated here (an INVALID_ARGUMENT names the field) and the
// store's typed errors are mapped to status codes: *store.ConflictError →
// ABORTED with the next sequence in the message and a SequenceConflict
// detail, *store.InvalidError → INVALID_ARGUMENT, store.ErrUnavailable →
// UNAVAILABLE.
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
