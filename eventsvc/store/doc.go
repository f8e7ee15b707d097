// Package store defines what the event service needs from a storage backend:
// compare-and-append of aggregate histories, loads with snapshots, event
// queries and a durable, ordered per-domain log for subscriptions and fan-out.
//
// Every backend (sqlite, redis) passes the same conformance suite,
// storetest.Run. Backends return the typed errors of this package (a
// *ConflictError for a stale expected sequence, an *InvalidError naming the
// offending field, ErrUnavailable when the storage cannot be reached); the
// gRPC boundary maps them to status codes.
//
// Semantics every backend guarantees:
//
//   - An append stores all of its pages or none. Sequences are contiguous
//     from 0 per aggregate.
//   - Pages with a sequence (or with none set) are checked: the aggregate's
//     next sequence must equal AppendRequest.Expected, and a page's explicit
//     num must equal Expected + its index. If every page is a force page the
//     pages are appended at the current end without the check.
//   - The store sets created_at of every page; the request's correlation id
//     is stored with every page, and every read returns it (Range as the
//     cover of books of consecutive pages with one correlation id).
//   - A snapshot given with an append is stored as covering every event up
//     to the append's last page (Snapshot.sequence = next sequence after the
//     append). Only the latest snapshot is kept.
//   - An idempotency key is recorded atomically with the append; a repeat of
//     the key for the same aggregate stores nothing and returns the original
//     result with Duplicate set.
//   - Every append with pages also writes one entry in the domain's durable
//     log, atomically with the pages. The log is split in Partitions()
//     partitions; an aggregate always maps to the same partition, so a
//     partition's order is a total order that contains every aggregate's
//     own order.
//   - A load bounded by LoadQuery.MaxBytes returns the snapshot and as many
//     events after it as fit (at least one), and Loaded.More says where the
//     rest begins; a continuation (LoadQuery.From, To) returns the next
//     events up to To, bounded the same way. Events never change once
//     stored, so the pages of one paged load form the history the first
//     page began, whatever was appended or snapshotted in between.
//   - The append's trace context (AppendRequest.Trace) is stored with its
//     log entry, in the same atomic write, and Checkpointer.Fetch returns
//     it with the entry (LogEntry.Trace): an entry never carries the trace
//     context of another append. Entries written without one return it
//     zero.
package store
