package sdk

// SnapshotPolicy decides whether to ask the framework to store a snapshot
// after a command that moved the aggregate's next sequence from before to
// after (after > before).
type SnapshotPolicy func(before, after uint32) bool

// EveryN snapshots whenever the history passes a multiple of n events, so a
// load never replays more than about n events. n = 0 never snapshots.
func EveryN(n uint32) SnapshotPolicy {
	return func(before, after uint32) bool {
		return n > 0 && after/n > before/n
	}
}
