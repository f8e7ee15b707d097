// Package fanout is the event service's asynchronous fan-out: a Dispatcher
// reads each source domain's durable log once per subscriber and delivers
// the EventBooks to projectors (angzarr.Projector/Handle) and sagas
// (angzarr.Saga/HandleSync), and executes the commands sagas return against
// the target domain's angzarr.BusinessCoordinator/Handle (in the mesh, that
// domain's own filter).
//
//	d, err := fanout.New(st, fanout.Options{MaxAttempts: 5})
//	err = d.Run(ctx, fanout.FileSource{Path: "fanout.yaml"})
//
// # Guarantees
//
//   - At least once delivery: a subscriber's progress is a durable
//     checkpoint per (subscriber, domain, partition) in the event store
//     (store.Checkpointer: consumer groups on Redis, a table on SQLite),
//     committed only after every entry of a fetched batch was handled.
//     After a crash the uncommitted entries are delivered again.
//   - Exactly-once effects: projectors get pages with their sequences and
//     skip what they have seen; every saga command carries a
//     SagaCommandOrigin (saga, triggering cover, triggering event sequence),
//     auto_resequence and an idempotency key derived from the origin and the
//     command's index (IdempotencyKey), so a redelivered command is applied
//     once by the target's store. Sagas get one page per call, so the
//     origin names the exact triggering event.
//   - Nothing that can still be lost: the dispatcher delivers only what
//     the store's Fetch returns, and a store that replicates returns only
//     entries its replicas confirmed (on Redis with min-replicas=N: WAIT on
//     the partition's master, on the connection that read the entries;
//     see the redis package, "Durability and failover"). Entries not yet
//     confirmed make Fetch fail UNAVAILABLE; they stay pending and are
//     fetched again after the backoff, so a failover never takes back an
//     event a projector or saga has seen.
//   - Order: one partition is read in order by one worker; within a batch,
//     different aggregates are delivered in parallel (Options.Concurrency),
//     each aggregate's entries in order. Partitions and subscribers run in
//     parallel.
//   - Failures: a failed delivery is retried with exponential backoff
//     (Options.BackoffBase doubling up to BackoffMax, with jitter); after
//     Options.MaxAttempts the entry is parked in the dead-letter log
//     (store.DeadLetters) with the error and the subscriber moves on (an
//     entry of several pages is split first, so only failing events are
//     parked). A saga answer with a command for a domain outside the
//     saga's target_domains (or without one) is unusable: nothing of it is
//     executed and the event is parked at once (*RefusedError, cause
//     INVALID). Dead letters are listed and replayed through the
//     FanoutAdmin gRPC service (Admin), which also rebuilds a subscriber
//     from position 0 (ResetSubscriber). A replayed dead letter arrives
//     after the later events of its aggregate: a projector that skips
//     pages below the next sequence it expects will skip it too.
//   - Saga commands are independent: each command a saga returns is
//     executed and retried on its own, in order. A business refusal by its
//     target (BusinessRefusal: FAILED_PRECONDITION, INVALID_ARGUMENT,
//     NOT_FOUND, ALREADY_EXISTS, OUT_OF_RANGE, PERMISSION_DENIED) is not
//     retried: it is compensated (below). A transient failure is retried
//     with the same backoff and parks the command after
//     Options.MaxAttempts (cause EXHAUSTED). Either way the saga's other
//     commands run and the event counts as delivered: a command's dead
//     letter holds the triggering event, the command and its index, and a
//     replay sends that command again, and only it.
//   - Compensation: a refused saga command is described to the aggregate
//     whose event triggered the saga with the framework command
//     angzarr.SagaCompensation (saga, triggering event, refused command,
//     code and reason), sent through that aggregate's own coordinator
//     under its own idempotency key (CompensationKey). Its logic stores
//     compensating events, or asks the framework to act with an
//     angzarr.CompensationRequest (sdk.RequestCompensation: a decision
//     whose only event is the request, which the filter does not store
//     but answers as FAILED_PRECONDITION with the request among the status
//     details; a refusal carrying it in its details works too, except
//     after a write conflict, see below): record the failure
//     (an angzarr.SagaFailed event in FanoutConfig.failure_domain, default
//     DefaultFailureDomain, on the origin's root, once: FailureKey),
//     dead-letter the command (cause REFUSED), escalate (an error log and,
//     with Options.EscalationWebhook, a POST of the SagaFailed as JSON), or
//     stop. A logic that does not know the command, fails or cannot be
//     reached gets Subscription.compensation_fallback (default
//     DefaultCompensationFallback: record, then dead-letter). A request
//     in a decision survives a write conflict, when the filter re-runs the
//     logic by unary gRPC callout: Envoy gives the plugin a unary
//     callout's message, or its code and message, never its trailers, so
//     a request in grpc-status-details-bin would be lost there (and the
//     fallback applied). Dead letters are
//     at least once (a crash before the batch's commit may park a command
//     twice; its idempotency key makes replaying both harmless).
//   - Process managers (SUBSCRIBER_KIND_PROCESS_MANAGER): each event of a
//     source domain that carries a correlation id is one step of the
//     workflow of that id: the dispatcher loads the workflow's stream (in
//     Subscription.domain, default the PM's name; root
//     ProcessManagerRoot, the UUIDv5 of the correlation id, so no client
//     text becomes a key), calls angzarr.ProcessManager/Handle, appends
//     the PM's events and an angzarr.ProcessManagerStep holding the
//     prepared commands in one append (expected sequence, idempotency key
//     StepKey; a conflict with another step of the workflow decides
//     again), and then executes the commands like a saga's, their origin
//     naming the PM's stream and the step's sequence (so their keys derive
//     from the stream's position). A redelivered event finds its step
//     stored and sends the same commands under the same keys: each takes
//     effect once across crashes. A refused command comes back to the PM
//     itself (Handle with the SagaCompensation, stored as a step under
//     CompensationKey); a PM that refuses it gets the fallback as above.
//     SYNC_MODE_CASCADE runs the same step earlier: the domain's filter
//     calls angzarr.ProcessManagerCoordinator/HandleSync
//     (ProcessManagerCoordinator, on the event service, for the writers of
//     the trigger's domain), which decides and stores the step under the
//     same StepKey and answers its prepared commands for the filter to
//     execute with CASCADE; the dispatcher's delivery then finds the step
//     stored, as a redelivery does.
//
// # Telemetry
//
// Each delivery of a log entry runs in a span, saga.orchestrate (with a
// child saga.retry per attempt after the first and orchestration.execute
// per saga command), pm.orchestrate (with orchestration.fetch per load of
// the workflow and orchestration.execute per command) or projector.handle, carrying domain, root and
// correlation_id; the gRPC calls to subscribers and coordinators send the
// W3C trace context on. The delivery continues the trace of the append
// that wrote the entry: its span's parent is the trace context the store
// keeps with the entry (store.LogEntry.Trace, from AppendRequest.Trace),
// whichever process appended it and whenever; an entry without one (or
// with a malformed one) starts a trace of its own. Metrics:
// angzarr.saga.duration, angzarr.saga.retry.total,
// angzarr.saga.compensation.total (by outcome), angzarr.pm.duration,
// angzarr.pm.conflict.total, angzarr.projector.duration,
// angzarr.bus.publish.duration (docs/observability.md).
//
// A subscriber without a checkpoint starts at the beginning of the log
// (START_POSITION_EARLIEST, the default for projectors) or at its end
// (LATEST, the default for sagas).
//
// # Configuration
//
// Subscriptions and the domains' coordinator addresses arrive as
// angzarr.FanoutConfig through a Source and are applied live: new
// subscribers start, removed ones stop, changed ones restart from their
// checkpoints. FileSource reads a file (YAML or protojson) and re-reads it
// when it changes. The control plane's xDS resource is the other source
// still to come: it will implement Source the same way.
//
// Workers wake on Notify (appends made through this process, see
// NotifyingStore) and, for appends made elsewhere, on the store's blocking
// read of the partition's tail (store.TailWatcher: Redis XREAD BLOCK on
// connections of their own), or every Options.PollInterval on a store
// without one (SQLite).
//
// # Replicas
//
// Every event service replica on a store that keeps leases (store.Leaser:
// Redis, Redis Cluster) dispatches a share of the partitions. Replicas
// heartbeat in the store; each partition of a source domain belongs to
// one live replica by rendezvous hashing (a join or a leave moves only
// the partitions of that replica), which holds it through a lease with a
// fencing token (Options.LeaseTTL, renewed every third of it). A
// partition is read in order by one replica at a time: the fetch and the
// commit are refused by the store (store.ErrFenced) unless they come
// with the partition's current lease, checked atomically with the read
// or the acknowledgement; deliveries stop at the lease's local deadline
// (a tenth before the TTL) and carry the token in the gRPC metadata
// FencingHeader. A rebalanced partition is released after its workers
// committed their batch; a stopped replica releases everything and
// leaves, so the others take over at once; a replica killed with -9 loses
// its leases after the TTL, and the next holder continues from the
// checkpoint (what was fetched and not committed is delivered again: the
// effects stay exactly once as above). Held reports this replica's
// share. SQLite is single-node: its one dispatcher holds every partition.
// Dead letters, replays, resets and progress live in the store and work
// through any replica's Admin.
package fanout
