package fanout

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrRefused is matched (errors.Is) by every *RefusedError.
var ErrRefused = errors.New("saga command refused")

// RefusedError says a saga returned a command the dispatcher will not
// execute (a domain outside its target_domains, no cover): retrying cannot
// help, so the triggering event is dead-lettered at once.
type RefusedError struct {
	// Saga is the saga's name.
	Saga string
	// Index is the command's index in the saga's response.
	Index int
	// Reason says what is wrong with the command.
	Reason string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("saga %s: command %d refused: %s", e.Saga, e.Index, e.Reason)
}

// Is makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// ErrUnknownSubscriber is returned by admin operations on a subscriber that
// is not in the current configuration.
var ErrUnknownSubscriber = errors.New("unknown subscriber")

// ErrNoEndpoint says a saga command targets a domain whose coordinator
// address is not (yet) in the configuration; the delivery is retried.
var ErrNoEndpoint = errors.New("no coordinator address for domain")

// ErrNotProjector is returned when a rebuild is asked of a saga: its
// commands were executed already, only projectors are rebuilt.
var ErrNotProjector = errors.New("only projectors can be rebuilt")

// BusinessRefusal reports whether err is a business refusal by a command's target:
// a gRPC status FAILED_PRECONDITION, INVALID_ARGUMENT, NOT_FOUND,
// ALREADY_EXISTS, OUT_OF_RANGE or PERMISSION_DENIED, however wrapped. The
// same command would be refused again, so it is not retried. Every other
// failure (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED once
// the target's own conflict retries are exhausted, errors without a
// status, ...) is taken as transient.
func BusinessRefusal(err error) bool {
	var se interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &se) {
		return false
	}
	switch se.GRPCStatus().Code() {
	case codes.FailedPrecondition, codes.InvalidArgument, codes.NotFound,
		codes.AlreadyExists, codes.OutOfRange, codes.PermissionDenied:
		return true
	}
	return false
}
