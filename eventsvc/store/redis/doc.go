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
//	az:size:{d:P}:ROOT    string bytes of the stored pages after the snapshot (absent
//	                      for an aggregate written before it was kept, until its
//	                      next snapshot): a load whose page bound it meets reads
//	                      the pages at once instead of measuring them
//	az:log:{d:P}          stream the durable log partition, one entry per append:
//	                      r root, s first sequence, n events, c correlation id,
//	                      t server time, tp traceparent and tst tracestate of
//	                      the append (each only when it had one)
//	az:rootidx:{d:P}      zset   roots of the partition, score 0: ordered by
//	                      their bytes, paged with ZRANGE BYLEX (earlier
//	                      versions kept a set az:roots:{d:P}; Open moves it)
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
// Commands are never retried by the client (MaxRetries -1): a lost reply to
// an append surfaces as UNAVAILABLE, and a retry with the same expected
// sequence or idempotency key is safe.
//
// # Durability and failover
//
// What an acknowledged append survives depends on the servers' settings
// and on Options.MinReplicas (min-replicas in the store URL):
//
//   - appendonly yes, appendfsync always: a crash of a server that comes
//     back (kill -9, power loss). Each group of appends is one command in
//     the AOF, fsynced before any reply. Costs an fsync per event-loop
//     round, shared by every append of the group.
//   - MinReplicas N (0 by default): a failover, when a replica of a dead
//     master is promoted. Redis replication is asynchronous; without it an
//     append the master acknowledged and had not yet sent is gone after
//     the promotion, the next append to that aggregate reuses its sequence
//     numbers, and the dispatcher may have delivered it already (the
//     failover test measured 52 acknowledged appends lost, 5 sequences
//     given to two events and 7 deliveries of events that no longer exist
//     in one run with 0). With N, the group commit sends each master's
//     script calls, then INCR of the slot's az:confirm:{d:P} and WAIT N
//     (WAITAOF 0 N on Redis 7.2 and later, detected at Open: the replicas
//     have also written it to their AOF; with WAIT, on 7.0, they have it in
//     memory, and a replica that restarts at the same time as its master
//     dies can still lose it), all on one connection to that master, and
//     hands out no reply of the pipeline before N replicas confirm. WAIT
//     counts the replicas that have the connection's last write; the marker
//     write makes that cover what the pipeline read as well (a duplicate's
//     prior result, a load), not only what it wrote. A master without N
//     live replicas takes no appends (each is answered UNAVAILABLE after
//     ReplicaTimeout). Costs a round trip from master to replica per
//     pipeline (BenchmarkReplicatedAppends, 64 clients, 3 masters and 3
//     replicas on one 2-core machine: 0.83, 1.04 and 0.94 of the
//     throughput with 0 in three runs: the group commit shares one wait
//     among many appends), and loads pay it too: a pipeline of
//     loads only also writes the marker (with appendfsync always, an fsync)
//     and waits for the replicas, since what it read may not be on them.
//   - An append whose replicas do not confirm within ReplicaTimeout is
//     answered UNAVAILABLE: it is stored on the master and may reach the
//     replicas later or be lost in a failover, the outcome is unknown. A
//     retry with the same idempotency key (or expected sequence) is safe:
//     it answers the stored append as a duplicate once it is confirmed, or
//     stores it if it was lost.
//   - The fan-out never delivers an entry that a failover can still take
//     back: with MinReplicas N, Fetch reads the consumer group on the
//     partition's master and, on the same connection, confirms (marker and
//     WAIT) before returning entries. We track what is confirmed rather
//     than reading from a replica: XREADGROUP writes (it moves entries to
//     the pending list) and cannot run on a replica, and a replica read
//     would confirm only that one replica. Entries not confirmed stay
//     pending, Fetch answers UNAVAILABLE, and the dispatcher's next Fetch
//     reads them again. ReadLog (EventQuery subscriptions, the schema
//     registry's scans) confirms the same way before it returns entries.
//   - min-replicas-to-write N on the masters keeps a master cut off from
//     its replicas from taking appends at all (they would be answered
//     UNAVAILABLE and discarded when it rejoins); cluster-node-timeout
//     (5000 ms recommended, 1000 to 15000) bounds how long a dead master's
//     slots stay without a master.
//
// Open reads every server's settings (CONFIG GET; masters and replicas) and
// logs a warning naming each unsafe one; servers that refuse CONFIG are
// reported once and not checked. During a slot migration (ASK) appends to
// the migrating slot are answered UNAVAILABLE when MinReplicas is set.
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
