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
// only and runs inside one Lua script call: compare, idempotency record,
// pages, snapshot, root registration, correlation index and log entry
// commit together or not at all. No command ever spans slots.
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
// # Group commit
//
// Append and Load calls from concurrent callers are sent in pipelines (up
// to 2 in flight): while one is on the wire, new calls queue and the next
// pipeline carries them all. The appends of a pipeline to one slot go as
// one script call (appendScript), in arrival order: each is still checked
// against its own expected sequence (after the appends before it), has
// its own idempotency record and log entry and gets its own reply, and one
// that fails (a key of its aggregate of the wrong type) writes nothing and
// fails alone. The group is one command to Redis: it reaches the AOF as
// one transaction, and with appendfsync always no reply leaves Redis before
// the fsync that covers it. Loads of more than 64 pages read the pages
// with a plain LRANGE after the script (lists are append-only).
package redis
