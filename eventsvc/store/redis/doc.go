// Package redis is the production event store backend on Redis (go-redis
// v9), for one redis-server or a Redis Cluster. Users scale out by adding
// cluster shards and stateless eventsvc replicas.
//
// # Keys and slots
//
// Every key of an aggregate carries the hash tag {DOMAIN:P}, where P is the
// aggregate's partition: FNV-1a of the root's 16 bytes modulo the store's
// partition count (default 16). The domain's log partition P, its correlation
// index and its root set carry the same tag, so one append touches one slot
// only and runs as one Lua script: compare, idempotency record, pages,
// snapshot, root registration, correlation index and log entry commit
// together or not at all. No command ever spans slots.
//
//	az:ev:{d:P}:ROOT      list   the pages; list index == sequence
//	az:snap:{d:P}:ROOT    string "SEQ STATE" (latest snapshot only)
//	az:idem:{d:P}:ROOT    hash   idempotency key -> "FIRST COUNT NEXT OFFSET"
//	az:log:{d:P}          stream the durable log partition, one entry per append:
//	                      r root, s first sequence, n events, c correlation id,
//	                      t server time, tp traceparent and tst tracestate of
//	                      the append (each only when it had one)
//	az:roots:{d:P}        set    roots of the partition
//	az:corr:{d:P}:CID     list   appends of the partition with correlation id CID
//	az:domains            set    every domain (written before a domain's first append)
//	az:meta               hash   the partition count the keys were laid out with
//
// # Why a partitioned log and not one stream per domain
//
// With keys tagged {domain:root} the aggregate and a per-domain stream live
// in different slots, so appending the events and the log entry could not be
// atomic: an outbox moved to the stream after the script needs a sweeper to
// finish moves interrupted by a crash, and the log would then differ from
// the append order. Tagging by {domain:partition} keeps every write of an
// append in one slot instead. The price: a domain's writes spread over at
// most P slots (P shards), and the partition count is fixed once data exists
// (Open refuses a different one, recorded in az:meta).
//
// # Ordering and durability
//
// Stream entries get IDs 0-N with N counting up per partition (XADD 0-*), so
// a log position is (partition, N). Within a partition the log order is the
// order in which the appends committed, and it contains each aggregate's
// sequence order. Across partitions there is no order; ByCorrelation merges
// partitions by the Redis server time the script recorded (TIME, in
// microseconds), which is append order for causally related appends.
// Durability is Redis's: run redis-server with appendonly yes and appendfsync
// always for every acknowledged append to survive a crash. Commands are never
// retried by the client (MaxRetries -1): a lost reply to an append surfaces
// as UNAVAILABLE, and a retry with the same expected sequence or idempotency
// key is safe.
//
// # Pipelining
//
// Append and Load scripts from concurrent callers are sent in pipelines
// (up to 2 in flight): while one is on the wire, new calls queue and the
// next pipeline carries them all. Each script stays atomic by itself; the
// pipeline only saves round trips and syscalls under load.
package redis
