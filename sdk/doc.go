// Package sdk holds optional helpers for writing Angzarr business logic,
// sagas and projectors in Go. Nothing here is required: the contract is the
// gRPC services in proto/angzarr, and any gRPC server implementing them
// works. What the helpers give you:
//
//   - Aggregate: routes each command page to its handler by type URL (On),
//     rebuilds the state from the snapshot and events through registered
//     appliers (Apply), and optionally returns snapshot_state by a
//     SnapshotPolicy (EveryN).
//   - Rejections: Invalid, Precondition and NotFound return errors that reach
//     the caller as INVALID_ARGUMENT, FAILED_PRECONDITION and NOT_FOUND with
//     your message; the framework then stores nothing.
//   - Saga: routes events to reactions (React) that return commands built
//     with Command, which keeps the trigger's correlation id.
//   - NextSequence: the next event sequence of an aggregate's history.
//   - Serve: serves a BusinessLogic, Saga or Projector implementation with
//     gRPC health and reflection, and stops gracefully when ctx is done.
//   - Package sdktest: a given / when / then test kit.
//
// A whole aggregate:
//
//	a := sdk.NewAggregate("counter", func() *pb.Counter { return &pb.Counter{} })
//	sdk.On(a, func(s *pb.Counter, c *pb.Increment) ([]proto.Message, error) {
//		if c.By <= 0 {
//			return nil, sdk.Invalid("increment must be positive, got %d", c.By)
//		}
//		return []proto.Message{&pb.Incremented{By: c.By, Total: s.Total + c.By}}, nil
//	})
//	sdk.Apply(a, func(s *pb.Counter, e *pb.Incremented) { s.Total = e.Total })
//	a.WithSnapshots(sdk.EveryN(100))
//	err := sdk.Serve(ctx, listener, a)
//
// Handlers read the state and must not change it; appliers change it and
// never fail. The examples under examples/go use this package throughout.
package sdk
