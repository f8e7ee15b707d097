// Package sqlite is the embedded event store backend on modernc.org/sqlite
// (pure Go): one database file in WAL mode with synchronous=FULL, so an
// acknowledged append survives a crash of the process or the machine.
//
// Appends are group-committed (groupcommit.go): one goroutine writes them
// through the single writer connection, and appends that arrive while it
// is busy share its next IMMEDIATE transaction and so one WAL fsync. Within
// it each append has its own savepoint: the compare on the aggregate's next
// sequence (which sees the appends before it in the batch), the idempotency
// record, the pages, the snapshot and the aggregate's new next sequence are
// kept together or rolled back together, without touching the other appends
// of the batch. No append is acknowledged before its batch committed.
// Readers use a pool and see committed state only.
//
// The durable per-domain log is the events table itself: its
// AUTOINCREMENT key is a global append order, so the log has one partition
// whose offsets are that key (gaps between offsets of one domain are other
// domains' events). Because writes are serialised, a reader never sees an
// offset before every smaller offset has been committed: a cursor over the
// log misses nothing. Each event row keeps its append's trace context
// (columns traceparent, tracestate), so an entry, a run of rows, has the
// one of the append it comes from.
//
// The schema's version is PRAGMA user_version; Open creates the schema or
// migrates an older file forward (additively) in one transaction.
package sqlite
