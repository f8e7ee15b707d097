package server

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/angzarr-mesh/angzarr/eventsvc/store"
	pb "github.com/angzarr-mesh/angzarr/proto/angzarr"
)

// toStatus maps a store or validation error to a gRPC status error.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	var ce *store.ConflictError
	switch {
	case errors.As(err, &ce):
		st, derr := status.New(codes.Aborted, ce.Error()).WithDetails(&pb.SequenceConflict{
			Cover:            ce.Aggregate.Cover(""),
			ExpectedSequence: ce.Expected,
			NextSequence:     ce.Next,
		})
		if derr != nil {
			return status.Error(codes.Aborted, ce.Error())
		}
		return st.Err()
	case errors.Is(err, store.ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, store.ErrHistoryTooLarge):
		// Not RESOURCE_EXHAUSTED (a quota, or the caller's own message):
		// nothing but a snapshot of the aggregate makes it pass.
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, store.ErrUnavailable):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codes.Internal, err.Error())
}

// ConflictFromStatus extracts the SequenceConflict detail of an ABORTED
// append, for clients; nil when err carries none.
func ConflictFromStatus(err error) *pb.SequenceConflict {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.Aborted {
		return nil
	}
	for _, d := range st.Details() {
		if c, ok := d.(*pb.SequenceConflict); ok {
			return c
		}
	}
	return nil
}

// ErrorFromStatus maps a status error from this service back to the store's
// typed errors, for Go clients: ABORTED with a SequenceConflict detail → a
// *store.ConflictError, INVALID_ARGUMENT → an error matching
// store.ErrInvalid, UNAVAILABLE → one matching store.ErrUnavailable. Other
// errors are returned unchanged.
func ErrorFromStatus(err error) error {
	st, ok := status.FromError(err)
	if !ok || err == nil {
		return err
	}
	switch st.Code() {
	case codes.Aborted:
		if c := ConflictFromStatus(err); c != nil {
			var agg store.Aggregate
			agg.Domain = c.GetCover().GetDomain()
			copy(agg.Root[:], c.GetCover().GetRoot().GetValue())
			return &store.ConflictError{Aggregate: agg, Expected: c.GetExpectedSequence(), Next: c.GetNextSequence()}
		}
	case codes.InvalidArgument:
		field, reason, ok := strings.Cut(st.Message(), ": ")
		if !ok {
			field, reason = "request", st.Message()
		}
		return &store.InvalidError{Field: field, Reason: reason}
	case codes.Unavailable:
		return store.Unavailable(err)
	}
	return err
}
