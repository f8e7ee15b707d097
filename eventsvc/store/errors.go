package store

import (
	"errors"
	"fmt"
)

// ErrConflict is matched (errors.Is) by every *ConflictError.
var ErrConflict = errors.New("sequence conflict")

// ErrInvalid is matched (errors.Is) by every *InvalidError.
var ErrInvalid = errors.New("invalid request")

// ErrUnavailable wraps failures to reach the storage (connection refused,
// timeouts, disk gone): the operation may be retried later.
var ErrUnavailable = errors.New("store unavailable")

// ConflictError says the expected sequence of an append was stale.
type ConflictError struct {
	// Aggregate is the aggregate appended to.
	Aggregate Aggregate
	// Expected is the sequence the caller expected.
	Expected uint32
	// Next is the aggregate's actual next sequence.
	Next uint32
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("sequence conflict on %s: expected %d, next sequence is %d", e.Aggregate, e.Expected, e.Next)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// InvalidError says a request field is unacceptable.
type InvalidError struct {
	// Field is the offending field's path, e.g. "pages[2].num".
	Field string
	// Reason says what is wrong with it.
	Reason string
}

func (e *InvalidError) Error() string { return e.Field + ": " + e.Reason }

// Is makes errors.Is(err, ErrInvalid) true.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

// Invalid returns an *InvalidError for field with a formatted reason.
func Invalid(field, format string, args ...any) error {
	return &InvalidError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// ErrHistoryTooLarge is matched (errors.Is) by every *HistoryError.
var ErrHistoryTooLarge = errors.New("history too large")

// HistoryError says an append without a snapshot would take an
// aggregate's history beyond Limits.MaxHistoryBytes. Nothing was stored.
type HistoryError struct {
	// Aggregate is the aggregate appended to.
	Aggregate Aggregate
	// Bytes is the size of its events after the latest snapshot, Adding
	// that of the refused append's events, Limit the bound.
	Bytes, Adding, Limit int
}

func (e *HistoryError) Error() string {
	return fmt.Sprintf("aggregate %s: these events (%d bytes) would take its history since the last snapshot from %d to %d bytes, "+
		"beyond the %d bytes a command can carry to its business logic (max history bytes). Nothing was stored; the history stays readable "+
		"(angzarr events %s %s). Store snapshots: the logic returns snapshot_state with its events, e.g. every snapshotEvery events "+
		"(the domain's setting in the topology), or append one with snapshot_state",
		e.Aggregate, e.Adding, e.Bytes, e.Bytes+e.Adding, e.Limit, e.Aggregate.Domain, e.Aggregate.Root)
}

// Is makes errors.Is(err, ErrHistoryTooLarge) true.
func (e *HistoryError) Is(target error) bool { return target == ErrHistoryTooLarge }

// Unavailable wraps err so that errors.Is(err, ErrUnavailable) holds.
func Unavailable(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}
